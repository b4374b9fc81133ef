"""The django-q2 tasks that do the SFTP work. Each claims its row, calls the session, records.

A task may run twice (django-q2 re-delivers a task whose worker died, and the sweeper re-queues
a send whose heartbeat stopped), so every step checks what an earlier run already did.
"""

import hashlib
import logging
import os
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task, schedule

from portal.alerts import service as alerts
from portal.audit.log import record
from portal.audit.models import AuditEvent
from portal.core import task_names
from portal.core.logs import transfer_context
from portal.core.queue_broker import others_wait
from portal.onboarding.rules import onboarding_of
from transfers import protocol, states
from transfers.fetch import fetch_inbox
from transfers.keys import KeyUnavailable
from transfers.leftovers import remove_stale
from transfers.models import ReceivedFile, Route, SftpAccount, Transfer
from transfers.queueing import SEND_TASK, enqueue, route_blockers
from transfers.sessions import drop_session, session_for
from transfers.sftp import (
    EndpointRefused,
    HostKeyChanged,
    HostKeyUnknown,
    SftpError,
    SftpRefused,
    SftpSession,
    SftpUnreachable,
)
from transfers.soon import Run, queue_soon, running

log = logging.getLogger(__name__)
FETCH_TASK = task_names.FETCH_INBOX
RECEIPTS_TASK = task_names.COLLECT_ACCOUNT_RECEIPTS
State = Transfer.State
OUT, IN = "OUT", "IN"
# How long a send waits on its open session for the receipt before leaving it to the schedule.
RECEIPT_WAIT_SECONDS = 5.0
HEARTBEAT_SECONDS = 1.0
# How often a send whose private key the worker cannot decrypt looks again.
KEY_WAIT_SECONDS = 300
# Error receipts that say "not now" rather than "not this": the send waits and is tried again,
# like after a network fault (the simulator's codes, docs/simulator.md): 108 the name was still
# being written (a dead connection's handle the server had not closed yet), 199 an internal error.
TRANSIENT_ERROR_CODES = frozenset({108, 199})
# Where an unreadable receipt is kept, byte for byte, for people to look at (the transfer page).
UNREADABLE_RECEIPTS = "unreadable-receipts"


class Lost(Exception):
    """The attempt a worker claimed is no longer the transfer's: the sweeper took the worker for
    dead and handed the send on. The worker stops and leaves the row to whoever has it now."""


def _attempt(transfer: Transfer) -> Q:
    """The attempt this worker claimed: each claim stamps started_at anew, so a worker the
    sweeper gave up on cannot move or write the attempt of the worker that took it over."""
    return Q(started_at=transfer.started_at)


def _move(transfer: Transfer, to_state: str, **fields) -> None:
    """Move the send this worker claimed on; Lost when it is no longer this worker's."""
    if not states.move(transfer.pk, State.SENDING, to_state, where=_attempt(transfer), **fields):
        raise Lost


def _record_progress(transfer: Transfer, **fields) -> None:
    """Write what the claimed attempt has done (never its state); Lost when it is no longer
    this worker's, so that it stops before writing anything more to the server."""
    if not Transfer.objects.filter(_attempt(transfer), pk=transfer.pk, state=State.SENDING).update(
        **fields
    ):
        raise Lost


def _fail(transfer: Transfer, message: str, **fields) -> str:
    _move(transfer, State.FAILED, last_error=message, finished_at=timezone.now(), **fields)
    alerts.transfer_failed(transfer.pk)
    return "failed"


def send_transfer(transfer_id: int) -> str:
    """Upload the data file, then its trigger; a duplicate or retried task never sends twice."""
    with transfer_context(transfer_id):
        now = timezone.now()
        # Each attempt starts the file afresh (started_at), so the rate shown is the current one's.
        claimed = states.move(
            transfer_id,
            State.QUEUED,
            State.SENDING,
            heartbeat_at=now,
            started_at=now,
            attempts=F("attempts") + 1,
        )
        if not claimed:
            return "not queued"
        transfer = _with_route(Transfer.objects).get(pk=transfer_id)
        if _goes_together(transfer):
            fellows = _claim_fellows(transfer)
            if fellows:
                return _send_together([transfer, *fellows])
        try:
            return _send(transfer)
        except Lost:
            log.warning("transfer %s was handed on to another worker; this one stops", transfer_id)
            # It may have stopped mid-upload, with writes still unanswered on the session.
            drop_session(transfer.account_id)
            return "handed on"


def _with_route(transfers):
    return transfers.select_related(
        "route__infref",
        "route__integration",
        "route__sender",
        "route__receiver",
        "route__municipality",
        "account",
    )


def _send(transfer: Transfer) -> str:
    # The account checked is the one the transfer was queued for, and the one it is sent with.
    blockers = route_blockers(transfer.route, account=transfer.account)
    if blockers:
        return _fail(transfer, " ".join(blockers))
    try:
        session = session_for(transfer.account)
        if transfer.trigger_started_at is None:
            if (transfer.attempts > 1 or transfer.receipt_xml) and not _clear_earlier(
                session, transfer
            ):
                _mark_sent(transfer)
                _receipt_now_or_later(session, transfer)
                return "sent"
            _upload_data(session, transfer)
            _write_trigger(session, transfer)
        else:
            _resume_after_trigger(session, transfer)
    except SEND_ERRORS as error:
        return _after_error(transfer, error)
    _receipt_now_or_later(session, transfer)
    return "sent"


SEND_ERRORS = (HostKeyChanged, HostKeyUnknown, KeyUnavailable, SftpError, OSError)


def _after_error(transfer: Transfer, error: Exception) -> str:
    """Where a send goes after `error`: failed, waiting, or queued to be tried again."""
    if isinstance(error, HostKeyChanged | HostKeyUnknown | EndpointRefused):
        # The account's configuration, not a network blip: a retry would get the same answer.
        # Once the account or SFTP_ALLOWED_HOSTS is put right, the transfer is resubmitted.
        return _fail(transfer, str(error))
    if isinstance(error, KeyUnavailable):
        return _wait_for_key(transfer, error)
    drop_session(transfer.account_id)
    if isinstance(error, SftpUnreachable):
        return _wait_for_platform(transfer, str(error))
    return _retry_later(transfer, f"{type(error).__name__}: {error}")


def _wait_for_key(transfer: Transfer, error: KeyUnavailable) -> str:
    """Not the transfer's fault: it waits, uncounted, for workers that hold the right key. The
    time it waits is not time it waited for the platform: a wait for an outage to pass starts
    again at the next fault, so that an hour without the key does not use up the outage's."""
    log.error("transfer %s waits: %s", transfer.pk, error)
    with transaction.atomic():
        _move(
            transfer,
            State.QUEUED,
            last_error=str(error),
            heartbeat_at=None,
            attempts=F("attempts") - 1,
            waiting_since=None,
        )
        _schedule_send(
            transfer, "transfer-key", timezone.now() + timedelta(seconds=KEY_WAIT_SECONDS)
        )
    return "waiting for key"


def _wait_for_platform(transfer: Transfer, message: str) -> str:
    """Not an answer about the file: the attempt is not counted, and the send is tried again
    with capped backoff until the platform answers or TRANSFER_OUTAGE_WAIT_SECONDS have passed
    since the first fault. The account's outage alert is raised by the connection (outage.py)."""
    now = timezone.now()
    waiting = _waiting(transfer, now)
    if waiting is None:
        return _fail(transfer, _gave_up(message), attempts=F("attempts") - 1)
    since, delay = waiting
    with transaction.atomic():
        _move(
            transfer,
            State.QUEUED,
            last_error=message,
            heartbeat_at=None,
            attempts=F("attempts") - 1,
            waiting_since=since,
        )
        _schedule_send(transfer, "transfer-wait", now + delay)
    return "waiting for the platform"


def _waiting(transfer: Transfer, now: datetime) -> tuple[datetime, timedelta] | None:
    """Since when the send waits for the platform, and how long until it tries again: as long
    as it has waited so far, between TRANSFER_RETRY_SECONDS and TRANSFER_RETRY_MAX_SECONDS.
    None once it has waited TRANSFER_OUTAGE_WAIT_SECONDS."""
    since = transfer.waiting_since or now
    limit = since + timedelta(seconds=settings.TRANSFER_OUTAGE_WAIT_SECONDS)
    if now >= limit:
        return None
    waited = (now - since).total_seconds()
    delay = min(max(waited, settings.TRANSFER_RETRY_SECONDS), settings.TRANSFER_RETRY_MAX_SECONDS)
    return since, min(timedelta(seconds=delay), limit - now + timedelta(seconds=1))


def _gave_up(message: str) -> str:
    minutes = settings.TRANSFER_OUTAGE_WAIT_SECONDS // 60
    waited = f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
    return f"Serviceplatformen did not answer for {waited}; given up. Last: {message}"


def _clear_earlier(session: SftpSession, transfer: Transfer) -> bool:
    """Before a send goes again: an earlier trigger's receipt must not be read as this one's,
    and an earlier trigger still waiting must not route the file while it is written anew.
    False when the platform is routing the earlier trigger (it refuses to remove it)."""
    _remove_receipt(session, transfer.remote_name)
    try:
        session.remove(f"{OUT}/{transfer.remote_name}.trigger", missing_ok=True)
    except SftpRefused:
        return False
    return True


# -- small fresh sends of one account, together -------------------------------------------------
#
# Over a link with a round trip of tens of milliseconds a small file's send is its round trips:
# an open, the writes with the close, then the same for the trigger. A worker that finds more
# fresh small sends of the same account queued claims them too and writes their data files at
# once, then their triggers at once: four round trips for the lot. Each transfer's row moves
# exactly as in a lone send, at the same points relative to what the server has, so a worker
# that dies part-way leaves each send where a lone one would be, for the same recovery.

TOGETHER_FILES = 32  # the sends one worker takes at once, their files open in one wave
TOGETHER_FILE_BYTES = 1024 * 1024  # larger files are their bytes' time, not their round trips
# Held in memory while they go, and written with no heartbeat between: a few seconds on a slow
# link, far inside TRANSFER_STALE_SECONDS.
TOGETHER_BYTES = 4 * 1024 * 1024


def _goes_together(transfer: Transfer) -> bool:
    """A first attempt at a small file: nothing of it on the server to look at first."""
    return (
        transfer.attempts == 1
        and transfer.trigger_started_at is None
        and not transfer.receipt_xml
        and transfer.size <= TOGETHER_FILE_BYTES
    )


def _claim_fellows(transfer: Transfer) -> list[Transfer]:
    """Claim other small sends of the transfer's account that wait in the queue and were never
    tried (none has a backoff to keep or a file on the server): their own tasks then find them
    taken. Claimed one by one, as their tasks would."""
    never_tried = Q(attempts=0, started_at__isnull=True)
    candidates = (
        Transfer.objects.filter(
            never_tried,
            account_id=transfer.account_id,
            state=State.QUEUED,
            size__lte=TOGETHER_FILE_BYTES,
        )
        # The newest first: the tasks this leaves with nothing to do are then at the back of
        # the queue, and the next worker's task is one with work.
        .order_by("-pk")
        .values_list("pk", "size")[: TOGETHER_FILES - 1]
    )
    claimed, room = [], TOGETHER_BYTES - transfer.size
    # Each claim its own transaction, as each move of the batch below: a transaction over
    # several would hold the tallies of one (kept by triggers) while waiting for the next row,
    # which another worker may hold while waiting for those tallies.
    for transfer_id, size in candidates:
        if size > room:
            break
        if states.move(
            transfer_id,
            State.QUEUED,
            State.SENDING,
            where=never_tried,
            heartbeat_at=transfer.started_at,
            started_at=transfer.started_at,
            attempts=F("attempts") + 1,
        ):
            claimed.append(transfer_id)
            room -= size
    return list(_with_route(Transfer.objects).filter(pk__in=claimed).order_by("pk"))


def _send_together(transfers: list[Transfer]) -> str:
    """Send fresh small files of one account at once; the outcome of the first one's."""
    outcome: dict[int, str] = {}
    going: dict[str, Transfer] = {}  # remote path of the data file -> its send
    # What the routes' readiness reads, read once for the lot rather than once a send.
    onboarding = onboarding_of(
        (t.route.integration for t in transfers if t.route.integration_id),
        municipalities=(t.route.municipality_id for t in transfers),
    )
    for transfer in transfers:
        blockers = route_blockers(
            transfer.route,
            onboarding=onboarding.get(transfer.route.integration_id),
            account=transfer.account,
        )
        if blockers:
            outcome[transfer.pk] = _settle(transfer, _fail, " ".join(blockers))
        else:
            going[f"{OUT}/{transfer.remote_name}"] = transfer
    try:
        if going:
            session = session_for(transfers[0].account)
            data = _local_copies(going, outcome)
            written = _write_together(session, data, going, outcome)
            # A data file refused part-way may hold the platform's space that the others'
            # triggers need: it goes, as it would with its next attempt anyway.
            refused = [path for path in data if path not in written]
            if refused:
                _remove_quietly(session, refused)
            triggers = _record_triggers({path: going[path] for path in written}, outcome)
            whose = {f"{path}.trigger": transfer for path, transfer in going.items()}
            sent = _write_together(session, triggers, whose, outcome, acted_on_at_close=True)
            for path in sent:
                outcome[whose[path].pk] = _settle(whose[path], _mark_sent) or "sent"
    except SEND_ERRORS as error:
        for transfer in going.values():
            if transfer.pk not in outcome:
                outcome[transfer.pk] = _settle(transfer, _after_error, error)
    if "sent" in outcome.values():
        _receipts_later(transfers[0].account, [t for t in transfers if outcome.get(t.pk) == "sent"])
    return outcome[transfers[0].pk]


def _settle(transfer: Transfer, step, *args, **fields) -> str | None:
    """One transfer's `step`; "handed on" when the sweeper gave the send to another worker."""
    try:
        return step(transfer, *args, **fields)
    except Lost:
        log.warning("transfer %s was handed on to another worker; this one leaves it", transfer.pk)
        return "handed on"


def _local_copies(going: dict[str, Transfer], outcome: dict[int, str]) -> dict[str, bytes]:
    """The bytes of each local copy that is still what was queued; the others wait for a retry."""
    data = {}
    for path, transfer in going.items():
        try:
            content = Path(transfer.payload).read_bytes()
        except OSError as error:
            message = f"SftpError: Cannot read {transfer.payload}: {error.strerror or error}"
            outcome[transfer.pk] = _settle(transfer, _retry_later, message)
            continue
        if (len(content), hashlib.sha256(content).hexdigest()) != (transfer.size, transfer.sha256):
            # Sending it would deliver other data than was queued.
            message = "SftpError: the local copy no longer matches what was queued"
            outcome[transfer.pk] = _settle(transfer, _retry_later, message)
            continue
        data[path] = content
    return data


def _write_together(
    session: SftpSession,
    files: dict[str, bytes],
    whose: dict[str, Transfer],
    outcome: dict[int, str],
    *,
    acted_on_at_close: bool = False,
) -> list[str]:
    """Write the files at once; the paths written. A send whose file the server refused is
    tried again later, as a lone one would be; the connection, still good, stays open."""
    written = []
    results = session.put_small_files(files, acted_on_at_close=acted_on_at_close)
    for path, error in results.items():
        if error is None:
            written.append(path)
        else:
            message = f"{type(error).__name__}: {error}"
            outcome[whose[path].pk] = _settle(whose[path], _retry_later, message)
    return written


def _record_triggers(written: dict[str, Transfer], outcome: dict[int, str]) -> dict[str, bytes]:
    """Each trigger recorded as started before any is written, as `_write_trigger` does."""
    triggers = {}
    for path, transfer in written.items():
        trigger = _trigger(transfer)
        now = timezone.now()
        handed_on = _settle(
            transfer,
            _record_progress,
            bytes_done=transfer.size,
            heartbeat_at=now,
            trigger_started_at=now,
            trigger_xml=trigger.decode(),
        )
        if handed_on:
            outcome[transfer.pk] = handed_on
        else:
            triggers[f"{path}.trigger"] = trigger
    return triggers


def _remove_quietly(session: SftpSession, paths: list[str]) -> None:
    try:
        session.remove_many(paths)
    except SftpUnreachable:
        raise
    except SftpError as error:
        log.warning("left for their next attempts: %s", error)


def _receipts_later(account: SftpAccount, sent: list[Transfer]) -> None:
    """The receipts of sends made together, and the fetch of their files where the portal holds
    the receiving account. When other tasks wait for a worker (the batch's fellows, more sends),
    the receipts are left to a round queued behind them and this worker fetches at once: a
    worker that waited here for the receipts held up the fetch of the very files it had sent.
    Else the fetch goes ahead to the other worker and this one collects the receipts."""
    if others_wait():
        _queue_receipts(account)
        _fetch_soon(*sent, here=True)
    else:
        _fetch_soon(*sent, ahead=True)
        collect_account_receipts(account.pk)


def _queue_receipts(account: SftpAccount) -> None:
    """A round of the account's receipts, queued behind the tasks that wait for a worker."""
    queue_soon(RECEIPTS_TASK, account.pk, account.key_fingerprint, group="receipts")


def _mark_sent(transfer: Transfer) -> None:
    _move(transfer, State.SENT, sent_at=timezone.now(), heartbeat_at=None, waiting_since=None)


def _upload_data(session: SftpSession, transfer: Transfer) -> None:
    """Upload the data file, beating the heartbeat while it goes; its completion is recorded
    with the trigger's start (`_write_trigger`)."""
    last_beat = time.monotonic()  # the claim was the first beat

    def progress(done: int) -> None:
        nonlocal last_beat
        if time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
            last_beat = time.monotonic()
            _record_progress(transfer, bytes_done=done, heartbeat_at=timezone.now())

    size, sha256 = session.put_file(
        Path(transfer.payload), f"{OUT}/{transfer.remote_name}", progress=progress
    )
    if (size, sha256) != (transfer.size, transfer.sha256):
        # The local copy changed since it was queued; sending it would deliver other data.
        raise SftpError(
            f"the local copy no longer matches: {size} bytes, SHA-256 {sha256}, "
            f"queued as {transfer.size} bytes, {transfer.sha256}"
        )


def _trigger(transfer: Transfer) -> bytes:
    route = transfer.route
    authority = route.municipality.cvr
    return protocol.build_trigger(
        protocol.Trigger(
            descriptor=protocol.FileDescriptor(
                file_name=transfer.remote_name,
                size=transfer.size,
                sender=transfer.account.username,
                recipients=(protocol.ROUTING_RECIPIENT,),
                senders_file_id=str(transfer.senders_file_id),
            ),
            routing=protocol.RoutingInfo(
                infref=route.infref.name,
                sender_it_system=route.sender.uuid,
                # The municipality moves its own data: it is the authority at both ends.
                sender_authority_cvr=authority,
                transaction_id=transfer.transaction_id,
                sender_timestamp=timezone.now(),
                recipient_authority_cvr=authority,
                recipient_it_system=route.receiver.uuid,
            ),
        )
    )


def _write_trigger(session: SftpSession, transfer: Transfer) -> None:
    trigger = _trigger(transfer)
    # Recorded before writing: from the moment the trigger lands the platform may route the file.
    now = timezone.now()
    _record_progress(
        transfer,
        bytes_done=transfer.size,
        heartbeat_at=now,
        trigger_started_at=now,
        trigger_xml=trigger.decode(),
    )
    session.put_bytes(trigger, f"{OUT}/{transfer.remote_name}.trigger")
    _mark_sent(transfer)


def _resume_after_trigger(session: SftpSession, transfer: Transfer) -> None:
    """An earlier attempt began writing the trigger: find out what the server has, send nothing
    that could be routed twice."""
    name = f"{OUT}/{transfer.remote_name}"
    trigger = f"{name}.trigger"
    if session.size(trigger) is not None:
        # The platform refuses to remove a trigger it is routing. A trigger it lets go of was
        # never finished (the attempt died before closing it), so it would never be routed.
        try:
            session.remove(trigger, missing_ok=True)
        except SftpRefused:
            _mark_sent(transfer)
            return  # in the platform's hands: the receipt will say
    if session.size(name) == transfer.size:
        # The trigger never landed (or was unfinished); the complete data file is waiting.
        session.put_bytes(transfer.trigger_xml.encode(), trigger)
    # Otherwise the platform has taken the file: the receipt will say.
    _mark_sent(transfer)


def retry_delay(attempts: int) -> timedelta:
    base = settings.TRANSFER_RETRY_SECONDS
    return timedelta(
        seconds=min(base * 2 ** max(attempts - 1, 0), settings.TRANSFER_RETRY_MAX_SECONDS)
    )


def _retry_later(transfer: Transfer, message: str) -> str:
    """The platform refused the file (or the local copy did): counted toward the attempts."""
    if transfer.attempts >= settings.TRANSFER_MAX_ATTEMPTS:
        return _fail(transfer, message)
    # Back in the queue with its row; the next attempt resumes from what the server has.
    with transaction.atomic():
        # It answered: an outage before this refusal is over.
        _move(transfer, State.QUEUED, last_error=message, heartbeat_at=None, waiting_since=None)
        _schedule_send(transfer, "transfer-retry", timezone.now() + retry_delay(transfer.attempts))
    return "retry"


def _schedule_send(transfer: Transfer, kind: str, at: datetime) -> None:
    schedule(
        SEND_TASK,
        transfer.pk,
        name=f"{kind}-{transfer.pk}-{transfer.attempts}-{uuid.uuid4().hex[:8]}",
        schedule_type=Schedule.ONCE,
        next_run=at,
    )


def _receipt_now_or_later(session: SftpSession, transfer: Transfer) -> None:
    """Wait for the receipt on the open session, unless other sends are waiting for a worker:
    then a round of receipts queued behind them collects it, and this worker fetches the file
    where the portal holds the receiving account. Routing and collecting a receipt take a few
    round trips; a worker that waited for each would send a batch at the pace of its receipts.
    While this one waits, the fetch goes ahead to the other worker."""
    if Transfer.objects.filter(state=State.QUEUED).exists():
        _queue_receipts(transfer.account)
        _fetch_soon(transfer, here=True)
    else:
        _fetch_soon(transfer, ahead=True)
        _await_receipt(session, transfer)


def collect_account_receipts(account_id: int) -> int:
    """Queued by sends that left their receipts for later: collect them on one session, one
    listing per round, for as long as receipts keep coming (the schedule takes any later)."""
    account = SftpAccount.objects.get(pk=account_id)
    with running(RECEIPTS_TASK, account.pk, account.key_fingerprint, group="receipts") as run:
        # Another round under way collects what this one was for.
        return 0 if run is None else _collect_rounds(account, run)


def _collect_rounds(account: SftpAccount, run: Run) -> int:
    settled, progress_at = 0, time.monotonic()
    try:
        session = session_for(account)
        while time.monotonic() - progress_at < RECEIPT_WAIT_SECONDS:
            run.looking()
            waiting = Transfer.objects.filter(account=account, state=State.SENT)
            names = dict(waiting.values_list("remote_name", "pk"))
            if not names:
                break
            listed = session.list_entries(IN)
            arrived = {
                f"{IN}/{name}": size
                for name, (size, _modified) in listed.items()
                if name.removesuffix(".sftpreceipt") in names and name.endswith(".sftpreceipt")
            }
            # Every receipt that has arrived read at once, and the recorded ones removed at once
            # after: a round trip or two for the lot instead of a few for each.
            receipts = session.read_small_files(
                {path: size or 0 for path, size in arrived.items()}, protocol.MAX_XML_BYTES
            )
            read = {
                names[path.removeprefix(f"{IN}/").removesuffix(".sftpreceipt")]: raw
                for path, raw in receipts.items()
                if raw is not None  # else taken by another collector meanwhile
            }
            # The sends read at once, as their receipts were; each move is still made from the
            # state read here, so a collector that raced this one wins or loses it cleanly.
            transfers = Transfer.objects.select_related("route").in_bulk(read)
            removals: list[str] = []
            delivered: list[tuple[Transfer, uuid.UUID | None]] = []
            try:
                for transfer_id, raw in read.items():
                    transfer = transfers.get(transfer_id, transfer_id)
                    if _collect_receipt(session, transfer, raw, removals, delivered):
                        settled, progress_at = settled + 1, time.monotonic()
            finally:
                _remove_receipts(session, removals)
                _fetch_unless_received(delivered)
            if not arrived:
                time.sleep(0.1)
    except (SftpError, OSError, HostKeyChanged, HostKeyUnknown, KeyUnavailable) as error:
        log.warning("receipts for %s left to the schedule: %s", account, error)
        drop_session(account.pk)
    return settled


def _await_receipt(session: SftpSession, transfer: Transfer) -> None:
    """Wait briefly for the receipt on the open session; the schedule collects it otherwise.

    The file is sent by now, so a failure here must not put the transfer back in the queue.
    """
    deadline = time.monotonic() + RECEIPT_WAIT_SECONDS
    try:
        while time.monotonic() < deadline:
            if _collect_receipt(session, transfer.pk):
                return
            time.sleep(0.1)
    except (SftpError, OSError) as error:
        log.warning("receipt of %s left to the schedule: %s", transfer.remote_name, error)
        drop_session(transfer.account_id)


def _this_receipt(transfer: Transfer) -> Q:
    """The send whose receipt was read: each new trigger gets a TransactionId of its own, so a
    collector holding the receipt of an earlier trigger cannot settle a send made since."""
    return Q(transaction_id=transfer.transaction_id)


def _collect_receipt(
    session: SftpSession,
    transfer: Transfer | int,
    read: bytes | None = None,
    removals: list[str] | None = None,
    delivered: list[tuple[Transfer, uuid.UUID | None]] | None = None,
) -> bool:
    """Record the receipt if it has arrived; True when the transfer is settled (or its receipt
    proved unreadable: it is not read again). `transfer`: the send as read with its route a
    moment ago, or its id; `read`: the receipt's bytes, read already (with others at once);
    `removals`: where to leave the names of receipts to remove from the server, and `delivered`
    the sends delivered, whose files may want a fetch: each done for all at once by the caller,
    instead of one by one here.

    Several collectors may read one receipt, and the timeout or the owner may move the transfer
    meanwhile: each outcome is a move from the state read, and a collector whose move loses
    records nothing more and leaves the receipt on the server to whoever moved the transfer.
    """
    if not isinstance(transfer, Transfer):
        transfer = Transfer.objects.select_related("route").get(pk=transfer)
    if transfer.state not in State.AWAITING_RECEIPT:
        return transfer.state in State.FINAL
    path = f"{IN}/{transfer.remote_name}.sftpreceipt"
    size = session.size(path) if read is None else len(read)
    if size is None:
        return False
    if size > protocol.MAX_XML_BYTES:
        # Not fetched: its size alone says it is no receipt, and the disk is not the platform's.
        return _quarantine_receipt(
            session,
            transfer,
            None,
            f"The receipt is {size} bytes, over 1 MiB; not fetched.",
            removals,
        )
    # Each read to a name of its own: two workers may read the same receipt at once.
    local = _receipt_copy(transfer.remote_name)
    local.parent.mkdir(parents=True, exist_ok=True)
    incoming = local.parent / f".{uuid.uuid4()}.part"
    try:
        if read is None:
            session.get_file(path, incoming)
        else:
            incoming.write_bytes(read)
        raw = incoming.read_bytes()
    except BaseException:
        incoming.unlink(missing_ok=True)
        raise
    try:
        receipt = protocol.parse_receipt(raw)
    except protocol.ProtocolError as error:
        unreadable = f"The receipt could not be read: {error}"
        text = raw.decode("utf-8", "replace")
        if (transfer.last_error, transfer.receipt_xml) != (unreadable, text):
            # Seen once: perhaps caught while the platform wrote it. The same bytes read again
            # are the platform's answer.
            incoming.unlink()
            Transfer.objects.filter(
                _this_receipt(transfer), pk=transfer.pk, state=transfer.state
            ).update(last_error=unreadable, receipt_xml=text)
            return False
        return _quarantine_receipt(session, transfer, incoming, unreadable, removals)
    # The local copy marks a receipt recorded but perhaps not yet removed (_receipts_left).
    os.replace(incoming, local)
    first = receipt.errors[0] if receipt.errors else None
    if (
        not receipt.success
        and first is not None
        and first.code in TRANSIENT_ERROR_CODES
        and (waiting := _waiting(transfer, timezone.now())) is not None
    ):
        return _send_again_later(session, transfer, raw, first, waiting, removals)
    fields = {
        "receipt_xml": raw.decode(),
        "file_transfer_uuid": receipt.file_transfer_uuid,
        "finished_at": timezone.now(),
    }
    if receipt.success:
        # last_error stays: what went wrong in an earlier attempt, shown with the delivery.
        outcome = State.DELIVERED
    else:
        outcome = State.FAILED
        fields.update(
            error_code=first.code if first else None,
            error_text="; ".join(f"{e.code_description}: {e.description}" for e in receipt.errors),
            last_error="",
        )
    if not states.move(
        transfer.pk, transfer.state, outcome, where=_this_receipt(transfer), **fields
    ):
        return False
    if transfer.state == State.NO_RECEIPT:
        alerts.clear_no_receipt(transfer.pk)
    if outcome == State.DELIVERED:
        if delivered is None:
            _fetch_unless_received([(transfer, receipt.file_transfer_uuid)])
        else:
            delivered.append((transfer, receipt.file_transfer_uuid))
    else:
        alerts.transfer_failed(transfer.pk)
    # Removed only once recorded: a crash in between reads the same receipt again, or (once
    # settled) leaves the local copy by which collect_receipts removes it.
    _remove_receipt(session, transfer.remote_name, removals)
    return True


def _fetch_unless_received(delivered: list[tuple[Transfer, uuid.UUID | None]]) -> None:
    """A fetch for the delivered files not received yet: as a rule the fetch queued as their
    triggers were written has them by the time the receipts are read, and a fetch queued for
    each receipt found nothing, one after another."""
    uuids = {file_transfer_uuid for _transfer, file_transfer_uuid in delivered}
    uuids.discard(None)
    received = set(
        ReceivedFile.objects.filter(file_transfer_uuid__in=uuids).values_list(
            "file_transfer_uuid", flat=True
        )
    )
    waiting = [transfer for transfer, uuid_ in delivered if uuid_ is None or uuid_ not in received]
    if waiting:
        _fetch_soon(*waiting)


def _send_again_later(
    session: SftpSession,
    transfer: Transfer,
    raw: bytes,
    first: protocol.ReceiptError,
    waiting: tuple[datetime, timedelta],
    removals: list[str] | None = None,
) -> bool:
    """A "not now" error receipt: the platform removed the data file and the trigger, and the
    next attempt sends both anew, as a new trigger with a new TransactionId, uncounted like a
    network fault."""
    since, delay = waiting
    with transaction.atomic():
        requeued = states.move(
            transfer.pk,
            transfer.state,
            State.QUEUED,
            where=_this_receipt(transfer),
            last_error=f"KOMBIT error {first.code} ({first.code_description}): {first.description}",
            receipt_xml=raw.decode(),
            trigger_started_at=None,
            sent_at=None,
            heartbeat_at=None,
            transaction_id=uuid.uuid4(),
            attempts=F("attempts") - 1,
            waiting_since=since,
        )
        if requeued:
            _schedule_send(transfer, "transfer-wait", timezone.now() + delay)
    if not requeued:
        return False
    _remove_receipt(session, transfer.remote_name, removals)
    if transfer.state == State.NO_RECEIPT:
        alerts.clear_no_receipt(transfer.pk)
    return True


def _quarantine_receipt(
    session: SftpSession,
    transfer: Transfer,
    local: Path | None,
    reason: str,
    removals: list[str] | None = None,
) -> bool:
    """Keep an unreadable receipt's bytes (fetched to `local`), show the transfer as having no
    receipt, alert once, and take the receipt off the server so that it is not read again.
    False when the transfer moved on first."""
    raw = b""
    if local is not None:
        raw = local.read_bytes()
        kept = unreadable_receipt(transfer.remote_name)
        kept.parent.mkdir(parents=True, exist_ok=True)
        os.replace(local, kept)
    if not states.move(
        transfer.pk,
        transfer.state,
        State.NO_RECEIPT,
        where=_this_receipt(transfer),
        last_error=reason,
        receipt_xml=raw.decode("utf-8", "replace"),
    ):
        return False
    log.warning("unreadable receipt for %s: %s", transfer.remote_name, reason)
    alerts.no_receipt(transfer.pk, unreadable=True)
    _remove_receipt(session, transfer.remote_name, removals)
    return True


def unreadable_receipt(remote_name: str) -> Path:
    """Where the last unreadable receipt of a transfer is kept."""
    return Path(settings.TRANSFER_DATA_DIR) / UNREADABLE_RECEIPTS / f"{remote_name}.sftpreceipt"


def _receipts_folder() -> Path:
    """The receipts recorded and not yet removed from the server (see `_receipts_left`)."""
    return Path(settings.TRANSFER_DATA_DIR) / "receipts"


def _receipt_copy(remote_name: str) -> Path:
    return _receipts_folder() / f"{remote_name}.sftpreceipt"


def _remove_receipt(
    session: SftpSession, remote_name: str, removals: list[str] | None = None
) -> None:
    """Remove a recorded receipt from the server, then its local copy; or, given `removals`,
    leave its name there for the caller to remove with others."""
    if removals is not None:
        removals.append(remote_name)
        return
    session.remove(f"{IN}/{remote_name}.sftpreceipt", missing_ok=True)
    _receipt_copy(remote_name).unlink(missing_ok=True)


def _remove_receipts(session: SftpSession, remote_names: list[str]) -> None:
    """Remove recorded receipts from the server, all at once, then their local copies."""
    if remote_names:
        session.remove_many([f"{IN}/{name}.sftpreceipt" for name in remote_names])
        for name in remote_names:
            _receipt_copy(name).unlink(missing_ok=True)


def _receipts_left() -> dict[int, list[str]]:
    """Receipts recorded but not removed from the server (a worker died in between), by account:
    the local copy is removed only after the remote receipt."""
    folder = _receipts_folder()
    suffix = ".sftpreceipt"
    try:
        names = [
            entry.name.removesuffix(suffix)
            for entry in os.scandir(folder)
            if entry.name.endswith(suffix)
        ]
    except FileNotFoundError:
        return {}
    if not names:
        return {}
    left: dict[int, list[str]] = {}
    settled = Transfer.objects.filter(remote_name__in=names, state__in=State.FINAL).values_list(
        "account_id", "remote_name"
    )
    for account_id, remote_name in settled:
        left.setdefault(account_id, []).append(remote_name)
    return left


def _fetch_soon(*transfers: Transfer, here: bool = False, ahead: bool = False) -> None:
    """Where the portal also holds the receiving accounts, fetch at once instead of at the next
    scheduled round: when a send is delivered, and already when its trigger is written (a
    platform that routes at once has put the file in the inbox by then), so that receiving goes
    on beside sending (a fetch follows the arrivals; a delivery's fetch then mostly finds its
    file taken). As the triggers are written, `here`: in this worker, before it takes another
    task, for a task queued even ahead of the sends that wait would still wait behind those the
    cluster has already taken from the queue, a batch or two of sends; or `ahead` of the tasks
    that wait, when this worker has the receipts to wait for."""
    receivers = {(t.route.receiver_id, t.route.environment) for t in transfers}
    accounts = (
        SftpAccount.objects.filter(it_system_id__in={receiver for receiver, _env in receivers})
        .exclude(private_key_encrypted=b"")
        .order_by("pk")
    )
    for pk, fingerprint, it_system_id, environment in accounts.values_list(
        "pk", "key_fingerprint", "it_system_id", "environment"
    ):
        # The first account of each receiving IT system and environment, as one lookup took it.
        if (it_system_id, environment) in receivers:
            receivers.discard((it_system_id, environment))
            if here:
                _fetch_here(pk, fingerprint)
            else:
                queue_soon(FETCH_TASK, pk, fingerprint, group="fetch", ahead=ahead)


def _fetch_here(account_id: int, fingerprint: str) -> None:
    """The inbox fetched in this worker (or, when a fetch runs for it, that one asked to look
    again). The sends are made whatever comes of it: a fetch that fails here is queued as a task
    of its own, which retries it and keeps its failure on record."""
    try:
        fetch_inbox(account_id)
    except Exception:
        log.warning("fetching account %s beside sends failed; queued", account_id, exc_info=True)
        queue_soon(FETCH_TASK, account_id, fingerprint, group="fetch")


def fetch_all_inboxes() -> int:
    """Scheduled: one fetch task per receiving account that has a key."""
    accounts = SftpAccount.objects.filter(it_system__is_receiver=True).exclude(
        private_key_encrypted=b""
    )
    for account_id in accounts.values_list("pk", flat=True):
        async_task(FETCH_TASK, account_id, group="fetch")
    return accounts.count()


def collect_receipts() -> int:
    """Scheduled: look for receipts of every sent transfer still waiting for one, and remove
    the receipts of settled ones that a dead worker left on the server."""
    mark_no_receipt()
    remove_stale(_receipts_folder(), suffix=".part", left_by="a receipt read that stopped")
    settled = 0
    waiting = Transfer.objects.filter(state__in=State.AWAITING_RECEIPT).select_related("account")
    left = _receipts_left()
    accounts = set(waiting.values_list("account_id", flat=True).distinct()) | set(left)
    for account_id in sorted(accounts):
        account = SftpAccount.objects.get(pk=account_id)
        try:
            session = session_for(account)
            for remote_name in left.get(account_id, ()):
                _remove_receipt(session, remote_name)
            for transfer in waiting.filter(account=account).select_related("route"):
                settled += _collect_receipt(session, transfer)
        except (SftpError, HostKeyChanged, HostKeyUnknown, OSError) as error:
            log.warning("receipts for %s: %s", account, error)
            drop_session(account_id)
    return settled


def mark_no_receipt() -> int:
    """Sends still without a receipt TRANSFER_RECEIPT_TIMEOUT_SECONDS after their trigger: shown
    as "no receipt" and alerted, once each. Their receipts are still looked for."""
    cutoff = timezone.now() - timedelta(seconds=settings.TRANSFER_RECEIPT_TIMEOUT_SECONDS)
    late = Q(sent_at__lt=cutoff)
    marked = 0
    for transfer_id in list(
        Transfer.objects.filter(late, state=State.SENT).values_list("pk", flat=True)
    ):
        # Late still at the move: a send that was queued again and sent since is not.
        if states.move(transfer_id, State.SENT, State.NO_RECEIPT, where=late):
            alerts.no_receipt(transfer_id)
            marked += 1
    return marked


def requeue_abandoned() -> int:
    """Scheduled: a send whose worker stopped showing signs of life is queued again."""
    stale = timezone.now() - timedelta(seconds=settings.TRANSFER_STALE_SECONDS)
    silent = Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True)
    requeued = 0
    for transfer_id in list(
        Transfer.objects.filter(silent, state=State.SENDING).values_list("pk", flat=True)
    ):
        # Silent still at the move: a worker that beat since is alive and keeps its send. One
        # move at a time: a transaction over several would hold the route's tallies while
        # waiting for the next row, which a worker may hold while waiting for those tallies.
        if states.move(transfer_id, State.SENDING, State.QUEUED, where=silent):
            requeued += 1
            transaction.on_commit(lambda transfer_id=transfer_id: enqueue(transfer_id))
    return requeued


def resubmit(transfer: Transfer, *, by=None) -> bool:
    """Its owner sends a failed transfer, or one with no receipt, again: a new attempt, the
    same record. An earlier trigger the platform has not taken up yet is removed first.
    False when the transfer is in neither state. With `by`, the user is recorded in the audit
    log in the same transaction."""
    again = {
        "trigger_started_at": None,
        "sent_at": None,
        "finished_at": None,
        "bytes_done": 0,
        "error_code": None,
        "error_text": "",
        "last_error": "",
        "waiting_since": None,
        "transaction_id": uuid.uuid4(),
    }
    with transaction.atomic():
        # One state at a time, to know which alert to clear; "no receipt" first, as a late
        # receipt may fail it in between, while a failed transfer never turns "no receipt".
        was = next(
            (
                state
                for state in (State.NO_RECEIPT, State.FAILED)
                if states.move(transfer.pk, state, State.QUEUED, **again)
            ),
            None,
        )
        if was is not None:
            if by is not None:
                audit(by, AuditEvent.Action.RESUBMIT, transfer)
            transaction.on_commit(lambda: enqueue(transfer.pk))
    if was == State.NO_RECEIPT:
        alerts.clear_no_receipt(transfer.pk)
    return was is not None


def cancel(transfer: Transfer, *, by=None) -> bool:
    """Its owner cancels a send that no worker has taken yet. False when a worker has it (or it
    has ended). With `by`, the user is recorded in the audit log in the same transaction."""
    with transaction.atomic():
        cancelled = states.move(
            transfer.pk, State.QUEUED, State.CANCELLED, finished_at=timezone.now()
        )
        if cancelled and by is not None:
            audit(by, AuditEvent.Action.CANCEL, transfer)
    return cancelled


def audit(user, action: str, transfer: Transfer) -> None:
    """Record what a user did to a transfer, for the organisations on its route."""
    route = Route.objects.select_related("sender__vendor", "receiver__vendor", "municipality").get(
        pk=transfer.route_id
    )
    record(user, action, transfer, concerns=route.parties(), sha256=transfer.sha256)
