"""Queue a send: check the route may carry it, keep a local copy, create the row, queue its id."""

import hashlib
import os
import uuid
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _
from django_q.tasks import async_task

from portal.core.text import file_label
from portal.onboarding.rules import Onboarding, onboarding_of, readiness
from transfers.models import Route, SftpAccount, Transfer

SEND_TASK = "transfers.tasks.send_transfer"
CHUNK = 1 << 20
# KOMBIT recommends files under 2 GB; larger ones are refused before anything is stored.
MAX_FILE_BYTES = 2 * 10**9


_UNREAD = object()


def route_blockers(
    route: Route,
    *,
    onboarding: Onboarding | None = None,
    account: SftpAccount | object | None = _UNREAD,
) -> list[str]:
    """Why the route may not carry a send now; empty when it may. `onboarding` and `account`,
    if given, were read for many routes at once (`blockers_of`)."""
    blockers = []
    if route.state != Route.State.ESTABLISHED:
        blockers.append(
            _("The route is %(state)s, not established.") % {"state": route.get_state_display()}
        )
    if route.integration_id is None:
        blockers.append(_("The route is not tied to an integration."))
    else:
        blockers += readiness(
            route.integration,
            route.municipality,
            environment=route.environment,
            onboarding=onboarding,
        ).blockers
    if account is _UNREAD:
        account = sender_account(route)
    if account is None:
        blockers.append(_("The sending IT system has no SFTP account in this environment."))
    elif not account.private_key_encrypted:
        blockers.append(_("The SFTP account has no key."))
    elif account.host_key_mismatch_at:
        blockers.append(_("The server's host key changed; an operator must check it."))
    elif not account.host_key:
        blockers.append(_("The server's host key has not been confirmed."))
    return blockers


def blockers_of(routes: list[Route]) -> list[list[str]]:
    """`route_blockers` of each route, in four queries however many routes: what readiness
    reads is read per integration, and the sending accounts all at once."""
    onboarding = onboarding_of(route.integration for route in routes if route.integration_id)
    accounts = {
        (account.it_system_id, account.environment): account
        for account in SftpAccount.objects.filter(
            it_system_id__in={route.sender_id for route in routes}
        )
    }
    return [
        route_blockers(
            route,
            onboarding=onboarding.get(route.integration_id),
            account=accounts.get((route.sender_id, route.environment)),
        )
        for route in routes
    ]


def sender_account(route: Route) -> SftpAccount | None:
    return SftpAccount.objects.filter(
        it_system_id=route.sender_id, environment=route.environment
    ).first()


def remote_name(account: SftpAccount, original_name: str) -> str:
    """`<sftpuser>_FDD_<uuid>.<ext>`, KOMBIT's suggested unique form."""
    extension = Path(original_name).suffix.lower().lstrip(".")
    extension = "".join(c for c in extension if c.isascii() and c.isalnum())[:10] or "dat"
    return f"{account.username}_FDD_{uuid.uuid4()}.{extension}"


def _store(source: BinaryIO, destination: Path) -> tuple[int, str]:
    """Copy into the payload store, hashing on the way; a partial copy never stays behind."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    move_to = getattr(source, "move_to", None)
    if callable(move_to):
        # An upload already on disk and hashed on its way (handoff.uploads) is moved, not
        # copied: a 2 GB file is not written twice.
        return move_to(destination)
    partial = destination.with_name(destination.name + ".part")
    digest, size = hashlib.sha256(), 0
    try:
        with partial.open("wb") as out:
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if size > MAX_FILE_BYTES:
                    raise ValidationError(
                        _("The file is larger than %(limit)s GB, which KOMBIT advises against.")
                        % {"limit": MAX_FILE_BYTES // 10**9}
                    )
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        partial.rename(destination)
    finally:
        partial.unlink(missing_ok=True)
    return size, digest.hexdigest()


def queue_send(route: Route, source: BinaryIO, *, original_name: str, user=None) -> Transfer:
    """One transfer of one file for the route's municipality; refused with reasons if not ready."""
    blockers = route_blockers(route)
    if blockers:
        raise ValidationError(blockers)
    account = sender_account(route)
    name = remote_name(account, original_name)
    payload = Path(settings.TRANSFER_DATA_DIR) / "outgoing" / name
    size, sha256 = _store(source, payload)
    if size == 0:
        payload.unlink()
        raise ValidationError(_("The file is empty."))
    try:
        with transaction.atomic():
            transfer = Transfer.objects.create(
                route=route,
                account=account,
                original_name=file_label(original_name),
                payload=str(payload),
                size=size,
                sha256=sha256,
                remote_name=name,
                created_by=user,
            )
            transaction.on_commit(lambda: enqueue(transfer.pk))
    except BaseException:
        payload.unlink(missing_ok=True)
        raise
    return transfer


def enqueue(transfer_id: int) -> None:
    async_task(SEND_TASK, transfer_id, group="transfers")


def queue_file(route: Route, path: Path, *, user=None) -> Transfer:
    with path.open("rb") as source:
        return queue_send(route, source, original_name=path.name, user=user)
