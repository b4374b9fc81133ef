"""What a transfer carries, made once by the portal's own code and filled in per row.

The trigger, the metadata and the receipts are built and checked by transfers.protocol; the
remote name by transfers.queueing; the audit event's summary by `Transfer.__str__`. Each is made
with markers where a transfer's own values go, then cut into a %-format with a field per marker,
so a million rows cost a million string formats and not a million XML documents.
"""

import re
import uuid
from datetime import UTC, datetime

from django.conf import settings
from django.utils import translation

from transfers import protocol
from transfers.models import ItSystem, Route, SftpAccount, Transfer
from transfers.queueing import remote_name

_NAME, _SIZE, _FILES_ID = "MARKER.csv", "987654321987", "MARKER-FILE-ID"
_TRANSACTION = uuid.UUID("11111111-1111-4111-8111-111111111111")
_FILE_TRANSFER = uuid.UUID("22222222-2222-4222-8222-222222222222")
_STAMP = datetime(1999, 1, 2, 3, 4, 5, tzinfo=UTC)
_USER, _INFREF = "MARKER-USER", "MARKER-INFREF"
_SENDER = uuid.UUID("33333333-3333-4333-8333-333333333333")
_RECEIVER = uuid.UUID("44444444-4444-4444-8444-444444444444")
_FROM_CVR, _TO_CVR = "13572468", "24681357"
_DETAIL = "MARKER-DETAIL"
_ORIGINAL = "MARKER-ORIGINAL"
# The fields of a trigger, in the order they stand in it.
_TRIGGER_FIELDS = (_NAME, _SIZE, _FILES_ID, str(_TRANSACTION), _STAMP.isoformat())
# The random UUID at the end of a remote name, before its extension.
_NAME_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?=\.\w+$)")


def cut(text: str, markers: tuple[str, ...], fixed: dict[str, str] | None = None) -> str:
    """`text` as a %-format: the `fixed` markers replaced, the others fields, in order."""
    text = text.replace("%", "%%")
    for marker, value in (fixed or {}).items():
        text = text.replace(marker, value)
    where = [text.find(marker) for marker in markers]
    if any(text.count(marker) != 1 for marker in markers) or where != sorted(where):
        raise ValueError("a marker is missing from the document, or out of order")
    for marker in markers:
        text = text.replace(marker, "%s")
    return text


def _parts() -> tuple[protocol.FileDescriptor, protocol.RoutingInfo]:
    descriptor = protocol.FileDescriptor(
        file_name=_NAME,
        size=int(_SIZE),
        sender=_USER,
        recipients=(protocol.ROUTING_RECIPIENT,),
        senders_file_id=_FILES_ID,
    )
    routing = protocol.RoutingInfo(
        infref=_INFREF,
        sender_it_system=_SENDER,
        sender_authority_cvr=_FROM_CVR,
        transaction_id=_TRANSACTION,
        sender_timestamp=_STAMP,
        recipient_authority_cvr=_TO_CVR,
        recipient_it_system=_RECEIVER,
    )
    return descriptor, routing


_TRIGGER = protocol.build_trigger(protocol.Trigger(*_parts())).decode()
_METADATA = protocol.build_metadata(protocol.Metadata(_FILE_TRANSFER, *_parts())).decode()


def receipt_format(error: tuple[int, str] | None = None) -> str:
    """Filled with the FileTransferUUID and SendersFileId, and an error's detail."""
    errors = () if error is None else (protocol.ReceiptError(*error, _DETAIL),)
    receipt = protocol.Receipt(_FILE_TRANSFER, _FILES_ID, not errors, errors=errors)
    markers = (str(_FILE_TRANSFER), _FILES_ID) + ((_DETAIL,) if errors else ())
    return cut(protocol.build_receipt(receipt).decode(), markers)


def trigger_and_metadata(
    route: Route, account: SftpAccount, sender: ItSystem, receiver: ItSystem, infref: str
) -> tuple[str, str]:
    """The route's trigger, filled with the remote name, size, SendersFileId, TransactionId and
    timestamp; and the metadata the platform makes of it, with the FileTransferUUID first."""
    cvr = route.municipality.cvr
    fixed = {
        f">{_USER}<": f">{account.username}<",
        _INFREF: infref,
        str(_SENDER): str(sender.uuid),
        str(_RECEIVER): str(receiver.uuid),
        _FROM_CVR: cvr,  # the municipality moves its own data
        _TO_CVR: cvr,
    }
    return (
        cut(_TRIGGER, _TRIGGER_FIELDS, fixed),
        cut(_METADATA, (str(_FILE_TRANSFER), *_TRIGGER_FIELDS), fixed),
    )


def remote_name_format(account: SftpAccount) -> str:
    """The name the portal gives a CSV file the account sends, filled with its UUID."""
    name = remote_name(account, _NAME).replace("%", "%%")
    if len(_NAME_UUID.findall(name)) != 1:
        raise ValueError(f"no UUID at the end of the remote name {name!r}")
    return _NAME_UUID.sub("%s", name)


def queued_summary_format(route: Route) -> str:
    """The summary the audit log keeps of a file queued on the route (`Transfer.__str__`, in
    the portal's language), filled with the file's name."""
    with translation.override(settings.LANGUAGE_CODE):
        text = str(Transfer(original_name=_ORIGINAL, route=route, state=Transfer.State.QUEUED))
    return cut(text, (_ORIGINAL,))
