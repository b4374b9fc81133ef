"""Fetch what has arrived in a receiving account's IN/: pair, check, store, record, then delete.

The remote pair is deleted only after the local file is complete, fsynced, in place and recorded;
a crash at any point leaves the pair on the server, and the next fetch finds its record (by the
platform's FileTransferUUID) and finishes the job instead of storing the file twice.

Several fetches of one inbox may run at once (a fetch is queued for each delivered send, and
every worker of every cluster may take one): each stages under names of its own, and a pair that
leaves IN/ between a fetch's listing and its turn was taken by another fetch, not lost.

Names are read as transfers.protocol.READING_RULES say: any name the contract allows is received
unless it is unsafe as a file's name, and one that is not a conservative name is stored here
under a name of the portal's (`local_name`), keeping its own in the record.
"""

import contextlib
import dataclasses
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction

from portal.alerts import service as alerts
from portal.core import task_names
from transfers import protocol
from transfers.models import ReceivedFile, Route, SftpAccount
from transfers.sessions import drop_session, session_for
from transfers.sftp import SftpError, SftpSession
from transfers.soon import starting

log = logging.getLogger(__name__)
IN = "IN"
SIDE_FILES = (".metadata", ".sftpreceipt", ".trigger")
# A data file seen without its metadata for this long is quarantined; younger ones may simply be
# waiting for the metadata the platform writes just after.
METADATA_GRACE_SECONDS = 60
# The extension a received file keeps on this disk when its name is not a conservative one.
_PLAIN_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,16}\Z")


@dataclass
class FetchResult:
    received: int = 0
    quarantined: int = 0
    waiting: int = 0
    gone: int = 0  # taken by another fetch of the same inbox after this one listed it


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
            f"no route for InfRef {protocol.printable(routing.infref)} from IT system "
            f"{routing.sender_it_system} to this system for CVR {routing.recipient_authority_cvr}"
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
    starting(task_names.FETCH_INBOX, account.pk, account.key_fingerprint)
    result = FetchResult()
    _sweep_staging(account)
    try:
        session = session or session_for(account)
        names = set(session.listdir(IN))
        for name in sorted(names):
            if name.endswith(".metadata") and name.removesuffix(".metadata") not in names:
                _leftover_metadata(session, account, name.removesuffix(".metadata"))
                continue
            if name.endswith(SIDE_FILES) or name.startswith("."):
                continue
            outcome = _fetch_one(session, account, name, names)
            setattr(result, outcome, getattr(result, outcome) + 1)
    except Exception:
        drop_session(account_id)
        raise
    return result


def _sweep_staging(account: SftpAccount) -> None:
    """Remove what a dead fetch left in the staging folder: files nobody has written to for
    TRANSFER_STALE_SECONDS (a live fetch writes its file all the time)."""
    staging = _store_dir(account) / ".incoming"
    limit = time.time() - settings.TRANSFER_STALE_SECONDS
    try:
        entries = list(os.scandir(staging))
    except FileNotFoundError:
        return
    for entry in entries:
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < limit:
                os.unlink(entry.path)
                log.info("removed %s, left by a fetch that stopped", entry.path)


def _leftover_metadata(session: SftpSession, account: SftpAccount, name: str) -> None:
    """`IN/<name>.metadata` without its data file: a fetch that stopped between its two deletes
    left it. Removed once the file it describes is recorded as received; any other stays."""
    if ReceivedFile.objects.filter(
        account=account, remote_name=name, state=ReceivedFile.State.RECEIVED
    ).exists():
        session.remove(f"{IN}/{name}.metadata", missing_ok=True)


def _fetch_one(session: SftpSession, account: SftpAccount, name: str, names: set[str]) -> str:
    problem = protocol.file_name_problem(name)
    if problem:
        # An unsafe name may be a path, hide control characters or pass for another name: it is
        # never used on this disk nor in a path on the server; a person looks at it.
        _quarantine(
            account,
            protocol.printable(name),
            f"the file name is not one the protocol allows: it {problem}",
        )
        return "quarantined"
    remote = f"{IN}/{name}"
    if f"{name}.metadata" not in names:
        age = session.age(remote)
        if age is None:
            return "gone"
        if age < METADATA_GRACE_SECONDS:
            return "waiting"
        _quarantine(account, name, "the data file arrived without its metadata file")
        return "quarantined"
    metadata_path = f"{remote}.metadata"
    size = session.size(metadata_path)
    # A fetch removes the data file before its metadata: both gone means another fetch has it.
    if size is None and session.size(remote) is None:
        return "gone"
    if size is None or size > protocol.MAX_XML_BYTES:
        _quarantine(account, name, f"the metadata file is missing or too large ({size} bytes)")
        return "quarantined"
    staging = _store_dir(account) / ".incoming"
    staging.mkdir(parents=True, exist_ok=True)
    local_metadata = staging / f"{uuid.uuid4().hex}.metadata"
    try:
        session.get_file(metadata_path, local_metadata)
        raw = local_metadata.read_bytes()
    except SftpError:
        if session.size(remote) is None:
            return "gone"
        raise
    finally:
        local_metadata.unlink(missing_ok=True)
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
    if done is None:
        outcome = _download(session, account, name, metadata, route, raw)
        if outcome != "received":
            return outcome
    # Stored and recorded (now or by an earlier run): only now may the pair leave the server.
    session.remove(remote, missing_ok=True)
    session.remove(metadata_path, missing_ok=True)
    return "received"


def _download(session, account, name, metadata, route, raw: bytes) -> str:
    """Store the data file and record it: "received", or "quarantined" if it proved not to
    match its metadata, or "gone" if another fetch took it first."""
    directory = _store_dir(account)
    final = directory / local_name(metadata.file_transfer_uuid, name)
    partial = directory / ".incoming" / f"{uuid.uuid4().hex}.part"
    try:
        size, sha256 = session.get_file(f"{IN}/{name}", partial)
    except SftpError:
        partial.unlink(missing_ok=True)
        if session.size(f"{IN}/{name}") is None:
            return "gone"
        raise
    if size != metadata.descriptor.size:
        partial.unlink(missing_ok=True)
        _quarantine(
            account,
            name,
            f"the file is {size} bytes but the metadata says {metadata.descriptor.size}",
            raw,
        )
        return "quarantined"
    # A concurrent fetch may replace `final` with its own copy: the same bytes, whole either way.
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
    return "received"


def local_name(file_transfer_uuid: uuid.UUID, name: str) -> str:
    """The name a received file is stored under on this disk. The platform's id keeps it unique;
    a conservative name follows it, and of any other name only a plain extension, so that a
    name with spaces, non-ASCII letters or shell characters never reaches a path here. The name
    itself stays in the record (remote_name), for the pages and the download."""
    if protocol.is_file_name(name):
        # Within the 255 bytes a file name may have here, whatever the remote name's length.
        return f"{file_transfer_uuid}-{name}"[:255]
    extension = _PLAIN_EXTENSION.search(name)
    return f"{file_transfer_uuid}{extension.group() if extension else ''}"


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
