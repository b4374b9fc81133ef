"""The transfers and what follows them, as the workers would have left them.

Each transfer is queued at a moment of the year (`moments`) on a lane of the world, and goes as
far as its age allows: the oldest are delivered or failed, the newest on their way. A delivered
file may have been fetched by the receiving system, a failed one raised an alert, and a file
sent from the portal's form left an audit event. Past one batch, the rows are made by a forked
process while this one writes the batch before (`made_alongside`).
"""

import json
import math
import multiprocessing
import queue
import random
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from datetime import time as clock
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import models

from bench.scale.documents import receipt_format
from bench.scale.rows import RowWriter, Stamps, Table, next_id
from bench.scale.world import Lane, World
from portal.alerts.models import Alert
from portal.audit.models import AuditEvent
from transfers.models import ReceivedFile, Transfer
from transfers.queueing import Channel
from transfers.simulator.router import DESCRIPTIONS, ErrorCode

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
BATCH = 20_000
RECEIVED_SHARE = 0.2  # of the delivered files, fetched by a receiving account in the portal
BY_HAND_SHARE = 0.02  # of the files, sent from the portal's form rather than by an IT system

_SFTP_ERRORS = (
    "SftpError: the connection was lost while writing OUT/",
    "TimeoutError: timed out",
    "SSHException: Error reading SSH protocol banner",
    "OSError: [Errno 113] No route to host",
)
# The simulator's refusals: KOMBIT does not publish its own codes.
_KOMBIT_ERRORS = tuple(
    (int(code), DESCRIPTIONS[code])
    for code in (
        ErrorCode.NO_ROUTE,
        ErrorCode.UNKNOWN_INFREF,
        ErrorCode.SIZE_MISMATCH,
        ErrorCode.NAME_TAKEN,
    )
)

# The states as the rows hold them: plain text, which is what the database is given.
State = Transfer.State
QUEUED, SENDING, SENT = State.QUEUED.value, State.SENDING.value, State.SENT.value
DELIVERED, FAILED = State.DELIVERED.value, State.FAILED.value
NO_RECEIPT, CANCELLED = State.NO_RECEIPT.value, State.CANCELLED.value
FINAL = {state.value for state in State.FINAL}

TRANSFERS = Table(
    Transfer,
    "id", "route_id", "account_id", "state", "original_name", "payload", "size", "sha256",
    "remote_name", "senders_file_id", "transaction_id", "file_transfer_uuid", "bytes_done",
    "attempts", "last_error", "error_code", "error_text", "trigger_xml", "receipt_xml",
    "queued_at", "heartbeat_at", "started_at", "trigger_started_at", "sent_at", "finished_at",
    "created_by_id", "payload_deleted_at",
)  # fmt: skip
RECEIVED = Table(
    ReceivedFile,
    "id", "account_id", "remote_name", "state", "reason", "stored_path", "size", "sha256",
    "infref_name", "sender_username", "route_id", "metadata_xml", "file_transfer_uuid",
    "received_at", "file_deleted_at",
)  # fmt: skip
ALERTS = Table(
    Alert,
    "id", "kind", "dedupe_key", "route_id", "transfer_id", "received_file_id", "legacy_message",
    "params", "raised_at", "resolved_at", "resolved_by_id",
)  # fmt: skip
ALERT_CONCERNS = Table(Alert.concerns.through, "alert_id", "organisation_id")
EVENTS = Table(
    AuditEvent,
    "id", "at", "actor_id", "action", "object_type", "object_id", "summary", "details",
)  # fmt: skip
EVENT_CONCERNS = Table(AuditEvent.concerns.through, "auditevent_id", "organisation_id")
# A batch's rows by table, in the order they are written: each after the rows it refers to.
TABLES = {
    "transfers": TRANSFERS,
    "received": RECEIVED,
    "alerts": ALERTS,
    "alert_concerns": ALERT_CONCERNS,
    "events": EVENTS,
    "event_concerns": EVENT_CONCERNS,
}
WITH_IDS = (Transfer, ReceivedFile, Alert, AuditEvent)
WRITTEN = tuple(table.model for table in TABLES.values())


@dataclass
class Batch:
    """The rows of one batch of transfers, with the rows that follow from them."""

    transfers: list = field(default_factory=list)
    received: list = field(default_factory=list)
    alerts: list = field(default_factory=list)
    alert_concerns: list = field(default_factory=list)
    events: list = field(default_factory=list)
    event_concerns: list = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # of everything made so far

    def sealed(self) -> "Batch":
        """The rows as tuples in their tables' column order: quicker to hand to the writing
        process than dicts, and as the database takes them."""
        return replace(
            self, **{name: table.tuples(getattr(self, name)) for name, table in TABLES.items()}
        )

    def write(self, writer: RowWriter) -> None:
        for name, table in TABLES.items():
            writer.write(table, getattr(self, name))


def moments(rng: random.Random, count: int, days: int, now: datetime) -> list[float]:
    """When each transfer was queued, oldest first: busier on weekdays, in the nightly batch and
    as the year went on; the newest few minutes ago, still on their way."""
    today = now.astimezone(COPENHAGEN).date()
    midnights, weights = [], []
    for offset in range(days):
        day = today - timedelta(days=days - 1 - offset)
        midnights.append(datetime.combine(day, clock.min, tzinfo=COPENHAGEN).timestamp())
        growth = 0.6 + 0.4 * offset / max(days - 1, 1)
        weights.append(growth * (1.0 if day.weekday() < 5 else 0.3))
    end, random_ = now.timestamp(), rng.random
    stamps = []
    for day in rng.choices(range(days), weights=weights, k=count):
        # The nightly batch from 01:00 to 04:00, or working hours from 07:00 to 17:00.
        second = 3600 + 10800 * random_() if random_() < 0.55 else 25200 + 36000 * random_()
        stamp = midnights[day] + second
        stamps.append(stamp if stamp < end - 1 else end - 1 - 1800 * random_())
    stamps.sort()
    for back, seconds in enumerate((5, 20, 40, 70, 100, 200, 400), start=1):
        if back <= count:
            stamps[-back] = max(stamps[-back], end - seconds)
    stamps.sort()
    return stamps


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def _uuids(bits: int) -> list[str]:
    """Four random (version 4) UUIDs in their text form, from 512 random bits."""
    text = f"{bits:0128x}"
    return [
        f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"
        for h in (text[0:32], text[32:64], text[64:96], text[96:128])
    ]


def _state(age: float, draw: float) -> str:
    if age < 120:  # the last two minutes: waiting for a worker, on their way, sent
        return QUEUED if age < 30 else SENDING if age < 60 else SENT
    if age < 900:
        return SENT if draw < 0.4 else QUEUED if draw < 0.5 else DELIVERED
    if draw < 0.945 or draw >= 0.995:
        return DELIVERED
    # A few sent long ago that never got their receipt.
    return FAILED if draw < 0.985 else NO_RECEIPT if draw < 0.99 else CANCELLED


class Traffic:
    """Transfers as the workers would have left them, in the database's text forms."""

    def __init__(self, rng: random.Random, now: datetime, writer: RowWriter) -> None:
        self.rng, self.end, self.writer = rng, now.timestamp(), writer
        self.data_dir = settings.TRANSFER_DATA_DIR
        # The daily retention run deletes the files, keeping the records (transfers.retention).
        self.payload_kept = settings.TRANSFER_PAYLOAD_RETENTION_DAYS * 86400
        self.received_kept = settings.RECEIVED_FILE_RETENTION_DAYS * 86400
        self.iso = Stamps("T")
        self.local_days: dict[int, str] = {}
        self.success = receipt_format()
        self.errors = [(code, text, receipt_format((code, text))) for code, text in _KOMBIT_ERRORS]
        self.ids = {model: next_id(model) for model in WITH_IDS}
        self.counts = dict.fromkeys(
            ("transfers", "received files", "alerts", "audit events", *State.values), 0
        )

    def _take(self, model: type[models.Model]) -> int:
        self.ids[model] += 1
        return self.ids[model] - 1

    def _day(self, epoch: float) -> str:
        """The Danish date, for the file name."""
        hour = int(epoch // 3600)
        text = self.local_days.get(hour)
        if text is None:
            text = self.local_days[hour] = datetime.fromtimestamp(epoch, COPENHAGEN).strftime(
                "%Y%m%d"
            )
        return text

    def add(self, queued: float, lane: Lane, batch: Batch) -> None:
        rng, moment, as_uuid = self.rng, self.writer.moment, self.writer.uuid
        random_ = rng.random
        pk = self._take(Transfer)
        age = self.end - queued
        size = int(math.exp(rng.gauss(12.2, 1.6))) + 1  # median ~200 KB, a long tail
        original = f"{lane.word}_{lane.code}_{self._day(queued)}_{pk % 1000:03d}.csv"
        name_id, files_id, transaction, file_transfer = _uuids(rng.getrandbits(512))
        remote = lane.remote % name_id
        sha256 = f"{rng.getrandbits(256):064x}"
        draw = random_()
        state = _state(age, draw)
        self.counts[state] += 1

        attempts = 0 if state in (QUEUED, CANCELLED) else 1
        started = trigger_at = sent = finished = heartbeat = None
        trigger = receipt = last_error = error_text = ""
        error_code, done, platform_id = None, 0, None
        if state == QUEUED and age >= 120:
            # Back in the queue after the connection dropped, waiting to try again.
            attempts, started = 1 + int(draw * 100) % 3, queued
            last_error = rng.choice(_SFTP_ERRORS)
        elif attempts:
            started = queued + 0.2 + 4 * random_()
            if random_() < 0.03:
                attempts, started = 2, started + 30  # a retry that went through
        by_receipt = state == FAILED and draw < 0.97
        if state == SENDING:
            done, heartbeat = int(size * random_()), self.end - random_()
        elif state in (SENT, NO_RECEIPT, DELIVERED) or by_receipt:
            done, trigger_at = size, started + size / 20e6 + 0.1
            sent = trigger_at + 0.05
            trigger = lane.trigger % (remote, size, files_id, transaction, self.iso(trigger_at))
        if state == DELIVERED or by_receipt:
            finished, platform_id = sent + 2 + 40 * random_(), file_transfer
            if state == DELIVERED:
                receipt = self.success % (file_transfer, files_id)
            else:
                error_code, description, receipt_text = rng.choice(self.errors)
                detail = f"{lane.infref}: {description.lower()}"
                receipt = receipt_text % (file_transfer, files_id, detail)
                # As the receipt collector words a refusal (transfers.tasks).
                error_text = f"{description}: {detail}"
        elif state == FAILED:
            attempts, last_error, finished = 5, rng.choice(_SFTP_ERRORS), started + 600
        elif state == CANCELLED:
            finished = queued + 60 + 3600 * random_()
        creator = rng.choice(lane.staff) if random_() < BY_HAND_SHARE else None
        deleted = None
        if state in FINAL:
            deleted = finished + self.payload_kept + 86400 * random_()
            deleted = deleted if deleted < self.end else None
        batch.transfers.append(
            {
                "id": pk,
                "route_id": lane.route_id,
                "account_id": lane.account_id,
                "state": state,
                "original_name": original,
                "payload": f"{self.data_dir}/outgoing/{remote}",
                "size": size,
                "sha256": sha256,
                "remote_name": remote,
                "senders_file_id": as_uuid(files_id),
                "transaction_id": as_uuid(transaction),
                "file_transfer_uuid": platform_id and as_uuid(platform_id),
                "bytes_done": done,
                "attempts": attempts,
                "last_error": last_error,
                "error_code": error_code,
                "error_text": error_text,
                "trigger_xml": trigger,
                "receipt_xml": receipt,
                "queued_at": moment(queued),
                "heartbeat_at": heartbeat and moment(heartbeat),
                "started_at": started and moment(started),
                "trigger_started_at": trigger_at and moment(trigger_at),
                "sent_at": sent and moment(sent),
                "finished_at": finished and moment(finished),
                "created_by_id": creator,
                "payload_deleted_at": deleted and moment(deleted),
            }
        )
        self.counts["transfers"] += 1
        if state == DELIVERED and random_() < RECEIVED_SHARE:
            metadata = lane.metadata % (
                file_transfer,
                remote,
                size,
                files_id,
                transaction,
                self.iso(trigger_at),
            )
            self._received(lane, batch, remote, size, sha256, metadata, file_transfer, finished)
        if state == FAILED:
            reason = f"{error_code}: {error_text}" if error_code is not None else last_error
            self._alert(lane, batch, pk, attempts, original, reason, finished, age)
        if creator is not None:
            self._sent_by_hand(lane, batch, pk, original, sha256, creator, queued)

    def _received(self, lane, batch, remote, size, sha256, metadata, platform_id, finished) -> None:
        """Fetched by the receiving system's account in the portal a few minutes later."""
        received = finished + 5 + 300 * self.rng.random()
        deleted = received + self.received_kept + 86400 * self.rng.random()
        batch.received.append(
            {
                "id": self._take(ReceivedFile),
                "account_id": lane.receiver_account_id,
                "remote_name": remote,
                "state": ReceivedFile.State.RECEIVED.value,
                "reason": "",
                "stored_path": (
                    f"{self.data_dir}/received/{lane.receiver_account_id}/{platform_id}-{remote}"
                ),
                "size": size,
                "sha256": sha256,
                "infref_name": lane.infref,
                "sender_username": lane.username,
                "route_id": lane.route_id,
                "metadata_xml": metadata,
                "file_transfer_uuid": self.writer.uuid(platform_id),
                "received_at": self.writer.moment(received),
                "file_deleted_at": self.writer.moment(deleted) if deleted < self.end else None,
            }
        )
        self.counts["received files"] += 1

    def _alert(self, lane, batch, pk, attempts, original, reason, finished, age) -> None:
        """The failure's alert; looked at within a day, but the last fortnight's are open."""
        # The key and the values the alert service keeps for a failed transfer
        # (portal.alerts.service.transfer_failed), worded when read.
        params = {"file": original, "municipality": lane.municipality_name, "reason": reason}
        resolved = finished + 86400 * self.rng.random() if age > 14 * 86400 else None
        alert = self._take(Alert)
        batch.alerts.append(
            {
                "id": alert,
                "kind": Alert.Kind.TRANSFER_FAILED.value,
                "dedupe_key": f"failed:{pk}:{attempts}",
                "route_id": lane.route_id,
                "transfer_id": pk,
                "received_file_id": None,
                "legacy_message": "",
                "params": json.dumps(params),
                "raised_at": self.writer.moment(finished),
                "resolved_at": resolved and self.writer.moment(resolved),
                "resolved_by_id": lane.staff[0] if resolved else None,
            }
        )
        batch.alert_concerns += [
            {"alert_id": alert, "organisation_id": party} for party in lane.parties
        ]
        self.counts["alerts"] += 1

    def _sent_by_hand(self, lane, batch, pk, original, sha256, creator, queued) -> None:
        """Queued from the portal's form: the audit event of a send, as the form leaves it."""
        event = self._take(AuditEvent)
        batch.events.append(
            {
                "id": event,
                "at": self.writer.moment(queued),
                "actor_id": creator,
                "action": AuditEvent.Action.SEND.value,
                "object_type": Transfer._meta.label,
                "object_id": str(pk),
                "summary": lane.summary % original,
                # What a send from the form keeps (transfers.queueing), as `record` stores it.
                "details": json.dumps({"sha256": sha256, "via": Channel.PAGE.value}),
            }
        )
        batch.event_concerns += [
            {"auditevent_id": event, "organisation_id": party} for party in lane.parties
        ]
        self.counts["audit events"] += 1


def fill_traffic(
    world: World, *, transfers: int, days: int, seed: int, now: datetime
) -> dict[str, int]:
    """The transfers and what follows them, a batch at a time; the counts of what was made."""
    rng = random.Random(seed + 1)  # noqa: S311 - repeatable, not secret
    writer = RowWriter()
    traffic = Traffic(rng, now, writer)
    queued = moments(rng, transfers, days, now)
    lanes = rng.choices(world.lanes, world.weights, k=transfers)

    def batches() -> Iterator[Batch]:
        for first in range(0, transfers, BATCH):
            batch = Batch()
            for position in range(first, min(first + BATCH, transfers)):
                traffic.add(queued[position], lanes[position], batch)
            batch.counts = dict(traffic.counts)
            yield batch.sealed()

    counts = traffic.counts
    # A single batch has no batch before it to overlap with: it is made in this process.
    for batch in made_alongside(batches) if transfers > BATCH else batches():
        batch.write(writer)
        counts = batch.counts
    return counts


def made_alongside(batches: Callable[[], Iterator[Batch]]) -> Iterator[Batch]:
    """The batches, made by a forked process while this one writes the one before: building
    rows in Python costs about what writing them does, and threads would fight over the GIL.
    The child only computes; it never touches the database connection it inherits."""
    context = multiprocessing.get_context("fork")
    channel = context.Queue(maxsize=2)

    def make() -> None:
        try:
            for batch in batches():
                channel.put(batch)
            channel.put(None)
        except BaseException:
            channel.put(traceback.format_exc())

    maker = context.Process(target=make, name="fill-scale-maker", daemon=True)
    maker.start()
    try:
        while True:
            try:
                batch = channel.get(timeout=1)
            except queue.Empty:
                if not maker.is_alive():
                    raise RuntimeError("The process making the rows died.") from None
                continue
            if batch is None:
                return
            if isinstance(batch, str):
                raise RuntimeError(f"Making the rows failed:\n{batch}")
            yield batch
    finally:
        if maker.is_alive():
            maker.terminate()
        maker.join()
