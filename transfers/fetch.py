"""Fetch what has arrived in a receiving account's IN/: pair, check, store, record, then delete.

The remote pair is deleted only after the local file is complete, fsynced, in place and recorded;
a crash at any point leaves the pair on the server, and the next fetch finds its record (by the
platform's FileTransferUUID) and finishes the job instead of storing the file twice.

The pairs go a batch at a time (PAIRS_AT_ONCE), each step for the whole batch at once over the
one connection (transfers.sftp_batch): their metadata read together with their data files
(staged, and kept only once the metadata is checked), their pairs removed; so a full inbox costs
a handful of round trips per batch (a listing two, the reads two, the removals two), not ten per
pair.

Several fetches of one inbox may run at once (a fetch is queued as a batch's triggers are written
and again when a send is delivered, and every worker of every cluster may take one): each stages
under names of its own, and a pair that leaves IN/ between a fetch's listing and its turn was
taken by another fetch, not lost. A fetch lists again for as long as it finds names it has not
seen, or while the portal's own sends to the inbox are on their way, so files that arrive while
it works are fetched by the same run.

Names are read as transfers.protocol.READING_RULES say: any name the contract allows is received
unless it is unsafe as a file's name, and one that is not a conservative name is stored here
under a name of the portal's (`local_name`), keeping its own in the record.
"""

import dataclasses
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from portal.alerts import service as alerts
from portal.core import task_names
from transfers import protocol
from transfers.leftovers import remove_stale
from transfers.models import ReceivedFile, Route, SftpAccount, Transfer
from transfers.sessions import drop_session, session_for
from transfers.sftp import SftpError, SftpSession
from transfers.soon import Run, running

log = logging.getLogger(__name__)
IN = "IN"
SIDE_FILES = (".metadata", ".sftpreceipt", ".trigger")
# A data file seen without its metadata for this long is quarantined; younger ones may simply be
# waiting for the metadata the platform writes just after.
METADATA_GRACE_SECONDS = 60
# The extension a received file keeps on this disk when its name is not a conservative one.
_PLAIN_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,16}\Z")


# Pairs fetched together, each step for all of them at once (transfers.sftp_batch).
PAIRS_AT_ONCE = 64
# How long one run goes on listing again for files that arrived while it fetched; the schedule
# and the next delivered send queue further runs. A run holds a worker that sends may be waiting
# for, so it gives way after this even while files keep coming.
FOLLOW_SECONDS = 10
# While the portal's own sends to the inbox are on their way, a listing that shows nothing new
# is made again after EXPECTING_POLL_SECONDS, for at most EXPECTING_SECONDS after the last new
# name: a send that stalls must not hold a worker listing, and its delivery queues a fetch of its
# own. A trigger written EXPECTING_SECONDS ago or less counts as on its way.
EXPECTING_POLL_SECONDS = 0.05
EXPECTING_SECONDS = 1.0
# A data file this large is read on its own, over more than one connection (transfers.sftp).
LARGE = 8 * 1024 * 1024
# The folder's entries as listed: name -> (size, modified).
Listing = dict[str, tuple[int | None, float | None]]


@dataclass
class FetchResult:
    received: int = 0
    quarantined: int = 0
    waiting: int = 0
    gone: int = 0  # taken by another fetch of the same inbox after this one listed it
    # The data files counted as waiting for their metadata, which may come while the run goes.
    _waiting: set[str] = dataclasses.field(default_factory=set, repr=False, compare=False)

    def count(self, name: str, outcome: str) -> None:
        """What came of one data file: a file that waited for its metadata and was fetched
        later in the same run counts only as what came of it in the end."""
        if name in self._waiting:
            self._waiting.discard(name)
            self.waiting -= 1
        if outcome == "waiting":
            self._waiting.add(name)
        setattr(self, outcome, getattr(self, outcome) + 1)


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


@dataclass(frozen=True)
class _Routes:
    """The routes a batch's metadata names, and the SFTP user of each route's sending IT system,
    read for the whole batch at once: two queries per pair were half a full inbox's time."""

    by_routing: dict[tuple[str, uuid.UUID, str], Route]
    sender_users: dict[int, str]  # sending IT system -> its SFTP user in this environment

    @classmethod
    def named_in(cls, account: SftpAccount, parsed: list[protocol.Metadata]) -> "_Routes":
        routings = [metadata.routing for metadata in parsed if metadata.routing is not None]
        if not routings:
            return cls({}, {})
        candidates = (
            Route.objects.filter(
                environment=account.environment,
                receiver_id=account.it_system_id,
                infref__name__in={routing.infref for routing in routings},
                sender__uuid__in={routing.sender_it_system for routing in routings},
                municipality__cvr__in={routing.recipient_authority_cvr for routing in routings},
            )
            .select_related("sender", "infref", "municipality")
            .order_by("pk")
        )
        by_routing: dict[tuple[str, uuid.UUID, str], Route] = {}
        for route in candidates:
            key = (route.infref.name, route.sender.uuid, route.municipality.cvr)
            by_routing.setdefault(key, route)  # the first, as a lookup of one would take it
        accounts = SftpAccount.objects.filter(
            it_system_id__in={route.sender_id for route in by_routing.values()},
            environment=account.environment,
        ).order_by("pk")
        sender_users: dict[int, str] = {}
        for it_system_id, username in accounts.values_list("it_system_id", "username"):
            sender_users.setdefault(it_system_id, username)
        return cls(by_routing, sender_users)


def _check(name: str, metadata: protocol.Metadata, routes: _Routes) -> tuple[Route | None, str]:
    """The route the file came by, or why it is not acceptable."""
    descriptor, routing = metadata.descriptor, metadata.routing
    if descriptor.file_name != name:
        return None, f"the metadata names {descriptor.file_name!r}, not {name!r}"
    if routing is None:
        return None, "the metadata has no routing information (InfRef and sender)"
    route = routes.by_routing.get(
        (routing.infref, routing.sender_it_system, routing.recipient_authority_cvr)
    )
    if route is None:
        return None, (
            f"no route for InfRef {protocol.printable(routing.infref)} from IT system "
            f"{routing.sender_it_system} to this system for CVR {routing.recipient_authority_cvr}"
        )
    if route.state != Route.State.ESTABLISHED:
        return None, f"the route is {route.state}, not established"
    sender = routes.sender_users.get(route.sender_id)
    if sender and descriptor.sender != sender:
        return None, (
            f"the metadata names the sender {descriptor.sender!r}, but the route's sending "
            f"IT system is the SFTP user {sender!r}"
        )
    return route, ""


def fetch_inbox(account_id: int, session: SftpSession | None = None) -> FetchResult:
    account = SftpAccount.objects.get(pk=account_id)
    result = FetchResult()
    with running(task_names.FETCH_INBOX, account.pk, account.key_fingerprint, group="fetch") as run:
        if run is None:
            return result  # the fetch under way looks again for what this one was for
        remove_stale(_store_dir(account) / ".incoming", left_by="a fetch that stopped")
        try:
            _follow(session or session_for(account), account, result, run)
        except Exception:
            drop_session(account_id)
            raise
        return result


def _follow(session: SftpSession, account: SftpAccount, result: FetchResult, run: Run) -> None:
    """Fetch what is listed, and what arrives while this run works: as a batch of sends is
    routed, it lists again while each listing shows names it has not seen, or, for a moment
    after the last new name, while the portal's own sends to this inbox are on their way."""
    seen: set[str] = set()
    following_until = time.monotonic() + FOLLOW_SECONDS
    news_at = time.monotonic()
    while time.monotonic() < following_until:
        run.looking()
        listed = session.list_entries(IN)
        fresh = {name for name in listed if name not in seen}
        if not fresh:
            if time.monotonic() - news_at > EXPECTING_SECONDS or not _expecting(account):
                break
            time.sleep(EXPECTING_POLL_SECONDS)
            continue
        seen.update(fresh)
        # A data file seen waiting for its metadata is looked at again once that is there.
        fresh |= {
            name.removesuffix(".metadata")
            for name in fresh
            if name.endswith(".metadata") and name.removesuffix(".metadata") in listed
        }
        _fetch_listed(session, account, listed, sorted(fresh), result)
        news_at = time.monotonic()


def _expecting(account: SftpAccount) -> bool:
    """Whether the portal is sending to this inbox now, or has just written a trigger for it:
    a platform that routes at once puts those files here in a moment."""
    just = timezone.now() - timedelta(seconds=EXPECTING_SECONDS)
    return Transfer.objects.filter(
        Q(state=Transfer.State.SENDING) | Q(state=Transfer.State.SENT, sent_at__gte=just),
        route__receiver_id=account.it_system_id,
        route__environment=account.environment,
    ).exists()


def _fetch_listed(
    session: SftpSession,
    account: SftpAccount,
    listed: Listing,
    names: list[str],
    result: FetchResult,
) -> None:
    """Screen `names` of the listing and fetch the pairs among them, a batch at a time."""
    pairs = []
    for name in names:
        if name.endswith(".metadata") and name.removesuffix(".metadata") not in listed:
            _leftover_metadata(session, account, name.removesuffix(".metadata"))
            continue
        if name.endswith(SIDE_FILES) or name.startswith("."):
            continue
        outcome = _screen(account, name, listed)
        if outcome:
            result.count(name, outcome)
        else:
            pairs.append(name)
    for start in range(0, len(pairs), PAIRS_AT_ONCE):
        batch = pairs[start : start + PAIRS_AT_ONCE]
        for name, outcome in zip(batch, _fetch_pairs(session, account, batch, listed), strict=True):
            result.count(name, outcome)


def _leftover_metadata(session: SftpSession, account: SftpAccount, name: str) -> None:
    """`IN/<name>.metadata` without its data file: a fetch that stopped between its two deletes
    left it. Removed once the file it describes is recorded as received; any other stays."""
    if ReceivedFile.objects.filter(
        account=account, remote_name=name, state=ReceivedFile.State.RECEIVED
    ).exists():
        session.remove(f"{IN}/{name}.metadata", missing_ok=True)


def _screen(account: SftpAccount, name: str, listed: Listing) -> str:
    """What the listing alone says of a data file: "" if it is to be fetched, else the outcome
    (quarantined for an unsafe name or a missing or oversized metadata file, or waiting)."""
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
    if f"{name}.metadata" not in listed:
        _size, modified = listed[name]
        if time.time() - (modified or 0) < METADATA_GRACE_SECONDS:
            return "waiting"
        _quarantine(account, name, "the data file arrived without its metadata file")
        return "quarantined"
    size, _modified = listed[f"{name}.metadata"]
    if size is not None and size > protocol.MAX_XML_BYTES:
        _quarantine(account, name, f"the metadata file is too large ({size} bytes)")
        return "quarantined"
    return ""


def _fetch_pairs(
    session: SftpSession, account: SftpAccount, names: list[str], listed: Listing
) -> list[str]:
    """Fetch these data files with their metadata, each step for all of them at once: read the
    metadata and download the data files beside it (under names of the portal's, kept only
    once the metadata is checked), store and record the accepted files, then remove the pairs.
    The outcome of each."""
    staging = _store_dir(account) / ".incoming"
    staging.mkdir(parents=True, exist_ok=True)
    partial = {name: staging / f"{uuid.uuid4().hex}.part" for name in names}
    try:
        return _fetch_staged(session, account, names, listed, partial)
    finally:
        # A stored file has moved into place; what is left was not kept (a quarantined pair,
        # one recorded by an earlier run, one that failed) or is half-written.
        for path in partial.values():
            path.unlink(missing_ok=True)


def _fetch_staged(
    session: SftpSession,
    account: SftpAccount,
    names: list[str],
    listed: Listing,
    partial: dict[str, Path],
) -> list[str]:
    sizes = {name: listed[name][0] or 0 for name in names}
    # One step, not two: the metadata's reads and the data files' share their round trips.
    raws, got = session.read_and_get_files(
        {f"{IN}/{name}.metadata": listed[f"{name}.metadata"][0] or 0 for name in names},
        protocol.MAX_XML_BYTES,
        {f"{IN}/{name}": (sizes[name], partial[name]) for name in names if sizes[name] < LARGE},
    )
    outcomes: dict[str, str] = {}
    parsed: dict[str, tuple[protocol.Metadata, bytes]] = {}
    for name in names:
        raw = raws[f"{IN}/{name}.metadata"]
        if raw is None:
            # A fetch removes the data file before its metadata: both gone means another
            # fetch has the pair.
            data = f"{IN}/{name}"
            if (got[data] if data in got else session.size(data)) is None:
                outcomes[name] = "gone"
            else:
                _quarantine(account, name, "the metadata file is missing")
                outcomes[name] = "quarantined"
            continue
        metadata = _parse_metadata(account, name, raw)
        if metadata is None:
            outcomes[name] = "quarantined"
        else:
            parsed[name] = (metadata, raw)
    routes = _Routes.named_in(account, [metadata for metadata, _raw in parsed.values()])
    accepted: dict[str, tuple[protocol.Metadata, Route, bytes]] = {}
    for name, (metadata, raw) in parsed.items():
        checked = _accept(account, name, metadata, raw, routes)
        if checked is None:
            outcomes[name] = "quarantined"
        else:
            accepted[name] = checked
    done = set(
        ReceivedFile.objects.filter(
            account=account,
            file_transfer_uuid__in=[
                metadata.file_transfer_uuid for metadata, *_ in accepted.values()
            ],
        ).values_list("file_transfer_uuid", flat=True)
    )
    new = {name: item for name, item in accepted.items() if item[0].file_transfer_uuid not in done}
    for name in new:
        if sizes[name] >= LARGE:
            got[f"{IN}/{name}"] = _download_large(session, name, partial[name])
    stored, failed = _store(account, new, got, partial)
    outcomes.update(stored)
    # Stored and recorded (now or by an earlier run): only now may the pairs leave the server,
    # each data file before its metadata.
    finished = [name for name in accepted if outcomes.setdefault(name, "received") == "received"]
    if finished:
        session.remove_many([f"{IN}/{name}" for name in finished])
        session.remove_many([f"{IN}/{name}.metadata" for name in finished])
    if failed is not None:
        raise failed
    return [outcomes[name] for name in names]


def _parse_metadata(account: SftpAccount, name: str, raw: bytes) -> protocol.Metadata | None:
    """The metadata as read; None, and the pair quarantined, if it cannot be read."""
    if len(raw) > protocol.MAX_XML_BYTES:
        _quarantine(account, name, f"the metadata file is too large ({len(raw)} bytes)")
        return None
    try:
        return protocol.parse_metadata(raw)
    except protocol.ProtocolError as error:
        _quarantine(account, name, f"the metadata is not valid: {error}", raw)
        return None


def _accept(
    account: SftpAccount, name: str, metadata: protocol.Metadata, raw: bytes, routes: _Routes
) -> tuple[protocol.Metadata, Route, bytes] | None:
    """The metadata checked, with the route the file came by; None, and the pair quarantined,
    if it fails."""
    route, problem = _check(name, metadata, routes)
    if problem:
        _quarantine(account, name, problem, raw)
        return None
    if metadata.file_transfer_uuid is None:
        # Metadata written as a Trigger carries no FileTransferUUID; a stable stand-in keeps a
        # repeated fetch of the same file from storing it twice.
        declared = metadata.descriptor.size
        stand_in = uuid.uuid5(uuid.NAMESPACE_URL, f"sftp:{account.username}/{name}/{declared}")
        metadata = dataclasses.replace(metadata, file_transfer_uuid=stand_in)
    return metadata, route, raw


def _store(
    account: SftpAccount,
    files: dict[str, tuple[protocol.Metadata, Route, bytes]],
    got: dict[str, tuple[int, str] | OSError | None],
    partial: dict[str, Path],
) -> tuple[dict[str, str], SftpError | None]:
    """Put each complete data file downloaded (`got`, from `partial`) in its place and record
    it: "received", or "quarantined" if it proved not to match its metadata, or "gone" if
    another fetch took it first, or "failed" if it could not be stored here (with the first
    such failure)."""
    if not files:
        return {}, None
    directory = _store_dir(account)
    outcomes, complete = {}, []
    failed: SftpError | None = None
    for name, (metadata, _route, raw) in files.items():
        result = got[f"{IN}/{name}"]
        if result is None or isinstance(result, OSError):
            if result is None:
                outcomes[name] = "gone"
            else:
                # Not stored here (a full disk): the pair stays on the server for a later
                # fetch; the files that were stored are kept and their pairs removed.
                outcomes[name] = "failed"
                failed = failed or SftpError(f"Storing {name} failed: {result}")
            continue
        size, sha256 = result
        if size != metadata.descriptor.size:
            _quarantine(
                account,
                name,
                f"the file is {size} bytes but the metadata says {metadata.descriptor.size}",
                raw,
            )
            outcomes[name] = "quarantined"
            continue
        # A concurrent fetch may replace `final` with its own copy: the same bytes, whole
        # either way.
        final = directory / local_name(metadata.file_transfer_uuid, name)
        os.replace(partial[name], final)
        complete.append((name, final, size, sha256))
    if complete:
        _fsync_directory(directory)
    records = []
    for name, final, size, sha256 in complete:
        metadata, route, raw = files[name]
        records.append(
            ReceivedFile(
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
        )
        outcomes[name] = "received"
    _record(records)
    return outcomes, failed


def _record(records: list[ReceivedFile]) -> None:
    """The stored files recorded: all in one insert, or, where a concurrent fetch of the same
    files recorded one of them first, each on its own."""
    try:
        with transaction.atomic():
            ReceivedFile.objects.bulk_create(records)
    except IntegrityError:
        for record in records:
            record.pk = None
            try:
                with transaction.atomic():
                    record.save(force_insert=True)
            except IntegrityError:
                pass  # recorded by the concurrent fetch: the same bytes, kept once


def _download_large(session: SftpSession, name: str, partial: Path) -> tuple[int, str] | None:
    try:
        return session.get_file(f"{IN}/{name}", partial)
    except SftpError:
        if session.size(f"{IN}/{name}") is None:
            return None
        raise


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
