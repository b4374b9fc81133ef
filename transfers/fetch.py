"""Fetch what has arrived in a receiving account's IN/: pair, check, store, record, then delete.

The remote pair is deleted only after the local file is complete, fsynced, in place and recorded;
a crash at any point leaves the pair on the server, and the next fetch finds its record (by the
platform's FileTransferUUID) and finishes the job instead of storing the file twice.
"""

import dataclasses
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction

from portal.alerts import service as alerts
from transfers import protocol
from transfers.models import ReceivedFile, Route, SftpAccount
from transfers.sessions import drop_session, session_for
from transfers.sftp import SftpSession

log = logging.getLogger(__name__)
IN = "IN"
SIDE_FILES = (".metadata", ".sftpreceipt", ".trigger")
# A data file seen without its metadata for this long is quarantined; younger ones may simply be
# waiting for the metadata the platform writes just after.
METADATA_GRACE_SECONDS = 60


@dataclass
class FetchResult:
    received: int = 0
    quarantined: int = 0
    waiting: int = 0


def _store_dir(account: SftpAccount) -> Path:
    return Path(settings.TRANSFER_DATA_DIR) / "received" / account.username


def _quarantine(account: SftpAccount, name: str, reason: str, metadata: bytes = b"") -> bool:
    """Record a file the portal will not accept; the remote files stay for a person to look at."""
    record, created = ReceivedFile.objects.get_or_create(
        account=account,
        remote_name=name,
        state=ReceivedFile.State.QUARANTINED,
        defaults={"reason": reason, "metadata_xml": metadata.decode("utf-8", "replace")},
    )
    if created:
        log.warning("quarantined %s on %s: %s", name, account, reason)
        alerts.fetch_quarantined(record.pk)
    return created


def _check(
    account: SftpAccount, name: str, metadata: protocol.Metadata
) -> tuple[Route | None, str]:
    """The route the file came by, or why it is not acceptable."""
    descriptor, routing = metadata.descriptor, metadata.routing
    if descriptor.file_name != name:
        return None, f"the metadata names {descriptor.file_name!r}, not {name!r}"
    if routing is None:
        return None, "the metadata has no routing information (InfRef and sender)"
    route = (
        Route.objects.filter(
            environment=account.environment,
            infref__name=routing.infref,
            sender__uuid=routing.sender_it_system,
            receiver_id=account.it_system_id,
            municipality__cvr=routing.recipient_authority_cvr,
        )
        .select_related("sender")
        .first()
    )
    if route is None:
        return None, (
            f"no route for InfRef {routing.infref} from IT system {routing.sender_it_system} "
            f"to this system for CVR {routing.recipient_authority_cvr}"
        )
    if route.state != Route.State.ESTABLISHED:
        return None, f"the route is {route.state}, not established"
    sender = (
        SftpAccount.objects.filter(it_system_id=route.sender_id, environment=account.environment)
        .values_list("username", flat=True)
        .first()
    )
    if sender and descriptor.sender != sender:
        return None, (
            f"the metadata names the sender {descriptor.sender!r}, but the route's sending "
            f"IT system is the SFTP user {sender!r}"
        )
    return route, ""


def fetch_inbox(account_id: int, session: SftpSession | None = None) -> FetchResult:
    account = SftpAccount.objects.get(pk=account_id)
    result = FetchResult()
    try:
        session = session or session_for(account)
        names = set(session.listdir(IN))
        for name in sorted(names):
            if name.endswith(SIDE_FILES) or name.startswith("."):
                continue
            outcome = _fetch_one(session, account, name, names)
            setattr(result, outcome, getattr(result, outcome) + 1)
    except Exception:
        drop_session(account_id)
        raise
    return result


def _fetch_one(session: SftpSession, account: SftpAccount, name: str, names: set[str]) -> str:
    remote = f"{IN}/{name}"
    if f"{name}.metadata" not in names:
        age = session.age(remote)
        if age is not None and age < METADATA_GRACE_SECONDS:
            return "waiting"
        _quarantine(account, name, "the data file arrived without its metadata file")
        return "quarantined"
    metadata_path = f"{remote}.metadata"
    size = session.size(metadata_path)
    if size is None or size > protocol.MAX_XML_BYTES:
        _quarantine(account, name, f"the metadata file is missing or too large ({size} bytes)")
        return "quarantined"
    staging = _store_dir(account) / ".incoming"
    staging.mkdir(parents=True, exist_ok=True)
    local_metadata = staging / f"{name}.metadata"
    session.get_file(metadata_path, local_metadata)
    raw = local_metadata.read_bytes()
    local_metadata.unlink()
    try:
        metadata = protocol.parse_metadata(raw)
    except protocol.ProtocolError as error:
        _quarantine(account, name, f"the metadata is not valid: {error}", raw)
        return "quarantined"
    route, problem = _check(account, name, metadata)
    if problem:
        _quarantine(account, name, problem, raw)
        return "quarantined"
    if metadata.file_transfer_uuid is None:
        # Metadata written as a Trigger carries no FileTransferUUID; a stable stand-in keeps a
        # repeated fetch of the same file from storing it twice.
        declared = metadata.descriptor.size
        stand_in = uuid.uuid5(uuid.NAMESPACE_URL, f"sftp:{account.username}/{name}/{declared}")
        metadata = dataclasses.replace(metadata, file_transfer_uuid=stand_in)
    done = ReceivedFile.objects.filter(
        account=account, file_transfer_uuid=metadata.file_transfer_uuid
    ).first()
    if done is None and not _download(session, account, name, metadata, route, raw):
        return "quarantined"
    # Stored and recorded (now or by an earlier run): only now may the pair leave the server.
    session.remove(remote)
    session.remove(metadata_path)
    return "received"


def _download(session, account, name, metadata, route, raw: bytes) -> bool:
    """Store the data file and record it; False if it proved not to match its metadata."""
    directory = _store_dir(account)
    final = directory / f"{metadata.file_transfer_uuid}-{name}"
    partial = directory / ".incoming" / f"{name}.part"
    size, sha256 = session.get_file(f"{IN}/{name}", partial)
    if size != metadata.descriptor.size:
        partial.unlink(missing_ok=True)
        _quarantine(
            account,
            name,
            f"the file is {size} bytes but the metadata says {metadata.descriptor.size}",
            raw,
        )
        return False
    os.replace(partial, final)
    _fsync_directory(directory)
    try:
        with transaction.atomic():
            ReceivedFile.objects.create(
                account=account,
                remote_name=name,
                state=ReceivedFile.State.RECEIVED,
                stored_path=str(final),
                size=size,
                sha256=sha256,
                metadata_xml=raw.decode(),
                file_transfer_uuid=metadata.file_transfer_uuid,
                infref_name=metadata.routing.infref,
                sender_username=metadata.descriptor.sender,
                route=route,
            )
    except IntegrityError:
        pass  # recorded by a concurrent fetch of the same file: the same bytes, kept once
    return True


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
