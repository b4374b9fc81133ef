"""Queue a send that came through the API, once per Idempotency-Key.

The key is remembered with the route, name, size and SHA-256 of what it queued. A retry with
the same key and the same file gets the first transfer back; the same key with anything else is
refused, because the client has confused two sends.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction

from handoff.models import ApiSend
from handoff.tokens import TokenPrincipal
from transfers.models import Route, Transfer
from transfers.queueing import CHUNK, Channel, RouteCheck, queue_send


@dataclass(frozen=True)
class Content:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Queued:
    transfer: Transfer
    replayed: bool  # True: the key had queued this transfer before


class KeyReused(Exception):
    """The Idempotency-Key was used before for another file or route."""

    def __init__(self, earlier: ApiSend, differences: list[str]):
        self.earlier = earlier
        self.differences = differences
        super().__init__(
            f"The Idempotency-Key was used for transfer {earlier.transfer_id} with another "
            f"{' and '.join(differences)}."
        )


def content_of(upload: UploadedFile) -> Content:
    """Name, size and SHA-256; read again only when no upload handler of ours hashed it."""
    sha256 = getattr(upload, "sha256", None)
    if sha256 is None:
        digest = hashlib.sha256()
        for chunk in upload.chunks(CHUNK):
            digest.update(chunk)
        upload.seek(0)
        sha256 = digest.hexdigest()
    return Content(name=(upload.name or "")[:255], size=upload.size, sha256=sha256)


def earlier_send(principal: TokenPrincipal, key: str) -> ApiSend | None:
    if not key:
        return None
    return (
        ApiSend.objects.select_related("transfer")
        .filter(it_system_id=principal.it_system_id, key=key)
        .first()
    )


def replay(earlier: ApiSend, route: Route, content: Content) -> Queued:
    differences = []
    if earlier.route_id != route.pk:
        differences.append("route")
    if (earlier.size, earlier.sha256) != (content.size, content.sha256):
        differences.append("content")
    if earlier.original_name != content.name:
        differences.append("file name")
    if differences:
        raise KeyReused(earlier, differences)
    return Queued(transfer=earlier.transfer, replayed=True)


def queue_from_api(
    principal: TokenPrincipal,
    route: Route,
    upload: UploadedFile,
    key: str,
    *,
    checked: RouteCheck | None = None,
) -> Queued:
    """The transfer for this key: queued now, or the one an earlier call with it queued.

    `checked` is the route as the call found it before it read the file. Raises
    ValidationError when the route refuses the file, KeyReused on a confused key.
    """
    content = content_of(upload)
    earlier = earlier_send(principal, key)
    if earlier is not None:
        return replay(earlier, route, content)
    transfer = None
    try:
        with transaction.atomic():
            transfer = queue_send(
                route,
                upload,
                original_name=content.name,
                user=principal,
                channel=Channel.API,
                checked=checked,
            )
            ApiSend.objects.create(
                it_system_id=principal.it_system_id,
                key=key,
                transfer=transfer,
                route=route,
                original_name=content.name,
                size=content.size,
                sha256=content.sha256,
                token=principal.token,
            )
    except IntegrityError:
        # A retry with the same key raced this call and won: its transfer stands, this copy goes.
        if transfer is not None:
            Path(transfer.payload).unlink(missing_ok=True)
        earlier = earlier_send(principal, key)
        if earlier is None:
            raise
        return replay(earlier, route, content)
    except BaseException:
        if transfer is not None:
            Path(transfer.payload).unlink(missing_ok=True)
        raise
    return Queued(transfer=transfer, replayed=False)
