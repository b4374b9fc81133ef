"""A send form queues its file once.

Going Back after a send and pressing send again, or a double click, posts the same form twice.
Each form shown carries a one-time token; the transfer it queues records the token's key
(`Transfer.form_token`, unique), and the same form posted again finds that transfer instead of
queueing a copy. Two posts at the same moment both get past the first look; the unique
constraint decides which one stands, and the other removes the copy of the file it stored.

A token is signed with the user it was made for. One lifted from another user's form counts as
no token at all: it can neither show that user's transfer nor stop their send.
"""

import secrets
from dataclasses import dataclass
from pathlib import Path

from django.core import signing
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction

from transfers.models import Route, Transfer
from transfers.queueing import Channel, queue_send

_SIGNER = signing.Signer(salt="transfers.send_once")


@dataclass(frozen=True)
class Queued:
    transfer: Transfer
    again: bool  # True: the form had queued this transfer before


def _new_key() -> str:
    return secrets.token_urlsafe(24)


def token_for(user, key: str) -> str:
    """What the form shown to `user` carries for `key`."""
    return _SIGNER.sign(f"{user.pk}:{key}")


def key_of(user, token: str) -> str:
    """The key to queue under: the token's own if it was made for `user`, else a fresh one (a
    form shown for the first time, an old page without a token, another user's token), which
    queues as a send never seen before."""
    try:
        user_id, _, key = _SIGNER.unsign(token).partition(":")
    except signing.BadSignature:
        return _new_key()
    return key if key and user_id == str(user.pk) else _new_key()


def queued_with(user, key: str) -> Transfer | None:
    return Transfer.objects.filter(form_token=key, created_by=user).first()


def queue_once(route: Route, upload: UploadedFile, *, user, key: str) -> Queued:
    """The transfer for this form: queued now, or the one an earlier post of it queued.

    Raises ValidationError when the route refuses the file, as `queue_send` does.
    """
    earlier = queued_with(user, key)
    if earlier is not None:
        return Queued(earlier, again=True)
    transfer = None
    try:
        with transaction.atomic():
            transfer = queue_send(
                route, upload, original_name=upload.name, user=user, channel=Channel.PAGE
            )
            # An update of this column alone: the triggers that count transfers stay still.
            Transfer.objects.filter(pk=transfer.pk).update(form_token=key)
    except IntegrityError:
        # The same form, posted at the same moment, won: its transfer stands, this copy goes.
        if transfer is not None:
            Path(transfer.payload).unlink(missing_ok=True)
        earlier = queued_with(user, key)
        if earlier is None:
            raise
        return Queued(earlier, again=True)
    except BaseException:
        if transfer is not None:
            Path(transfer.payload).unlink(missing_ok=True)
        raise
    transfer.form_token = key
    return Queued(transfer, again=False)
