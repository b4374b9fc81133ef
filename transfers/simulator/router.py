"""Routing: what the simulator does with `OUT/<name>.trigger` (error codes in docs/simulator.md).

A trigger becomes known to the router when an SFTP handle that wrote it is closed (or a file is
renamed to it). From then on until the router is done, the name is *in process*: the SFTP server
refuses to open, remove or rename `OUT/<name>` and `OUT/<name>.trigger`. After `delay` seconds
the router reads the trigger and either delivers the data file, with its metadata, to the
receiver's `IN/` and a SUCCESS receipt to the sender's `IN/`, or writes an error receipt for the
sender only and removes the data file and the trigger from `OUT/`. The router never touches a
data file before its trigger has arrived. One thread routes, one trigger at a time.

A data file may have any name the contract allows that is safe as one path component
(`folders.safe_file_name`), such as "Udtræk Aarhus 2024.csv": `protocol.parse_trigger` and
`protocol.build_metadata` hold `FileName` to that rule. User names and InfRefs stay conservative.

The real platform routes apart from the upload, so a client may still stat or set-stat what it
has just closed (paramiko's `put()` stats by default; WinSCP and `sftp -p` set times): the
`serviceplatform` command waits PLATFORM_DELAY by default. `Router` and `Simulator` default to
no delay, for tests that want a trigger routed at once.
"""

import contextlib
import enum
import heapq
import itertools
import logging
import os
import shutil
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass

from transfers import protocol
from transfers.simulator.folders import (
    Folders,
    read_small,
    regular_file,
    remove_file,
    safe_file_name,
)

log = logging.getLogger("transfers.simulator")

TRIGGER_SUFFIX = ".trigger"
METADATA_SUFFIX = ".metadata"
RECEIPT_SUFFIX = ".sftpreceipt"
# Seconds between a trigger's arrival and its routing when run as the platform: long enough for
# a client's stat or set-stat right after closing it, short against a receipt poll of minutes.
PLATFORM_DELAY = 1.0


class ErrorCode(enum.IntEnum):
    """The simulator's own error codes (KOMBIT's real ones are not published)."""

    INVALID_TRIGGER = 100
    FILE_NAME_MISMATCH = 101
    DATA_FILE_MISSING = 102
    SIZE_MISMATCH = 103
    SENDER_MISMATCH = 104
    UNKNOWN_INFREF = 105
    NO_ROUTE = 106
    AMBIGUOUS_ROUTE = 107
    NAME_IN_PROCESS = 108
    NAME_TAKEN = 109
    UNKNOWN_RECIPIENT = 110
    INTERNAL_ERROR = 199


DESCRIPTIONS = {
    ErrorCode.INVALID_TRIGGER: "Invalid trigger",
    ErrorCode.FILE_NAME_MISMATCH: "File name mismatch",
    ErrorCode.DATA_FILE_MISSING: "Data file missing",
    ErrorCode.SIZE_MISMATCH: "Size mismatch",
    ErrorCode.SENDER_MISMATCH: "Sender is not the logged-in user",
    ErrorCode.UNKNOWN_INFREF: "Unknown or inactive InfRef",
    ErrorCode.NO_ROUTE: "No route",
    ErrorCode.AMBIGUOUS_ROUTE: "Ambiguous route",
    ErrorCode.NAME_IN_PROCESS: "Name still in process",
    ErrorCode.NAME_TAKEN: "Name already delivered and not yet fetched",
    ErrorCode.UNKNOWN_RECIPIENT: "Unknown recipient",
    ErrorCode.INTERNAL_ERROR: "Internal error",
}


class RoutingRefused(Exception):
    def __init__(self, code: ErrorCode, detail: str):
        super().__init__(f"{int(code)} {DESCRIPTIONS[code]}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Outcome:
    """What became of one trigger (for logs and tests)."""

    sender: str
    name: str
    delivered_to: tuple[str, ...] = ()
    error: ErrorCode | None = None
    detail: str = ""
    file_transfer_uuid: uuid.UUID | None = None


# The most a name's companions add to it: `<name>.sftpreceipt` is the longest.
_LONGEST_SUFFIX = max(len(suffix) for suffix in (TRIGGER_SUFFIX, METADATA_SUFFIX, RECEIPT_SUFFIX))
_MAX_NAME_BYTES = 255


def trigger_base(filename: str) -> str | None:
    """`name` for `name.trigger` when the router can route and answer it: `name` is a served
    file name (`safe_file_name`) and so is each of its companions, the longest being
    `name.sftpreceipt` (no file system holds a name over 255 bytes). Else None."""
    if filename.endswith(TRIGGER_SUFFIX):
        base = filename[: -len(TRIGGER_SUFFIX)]
        fits = len(base.encode("utf-8", "surrogatepass")) + _LONGEST_SUFFIX <= _MAX_NAME_BYTES
        if safe_file_name(base) and fits:
            return base
    return None


class Router:
    def __init__(self, folders: Folders, registry, delay: float = 0.0, cleanup_after: float = 0.0):
        self.folders = folders
        self.registry = registry  # a source with get() -> Registry
        self.delay = max(0.0, float(delay))
        self.cleanup_after = max(0.0, float(cleanup_after))
        self._condition = threading.Condition()
        self._busy: set[tuple[str, str]] = set()
        self._writers: Counter[tuple[str, str]] = Counter()
        self._queue: list[tuple[float, int, str, str]] = []
        self._sequence = itertools.count()
        self._working = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.outcomes: list[Outcome] = []  # the last few, newest last

    # --- life cycle ---

    def start(self) -> None:
        for user in self.folders.usernames():
            # Triggers left behind by a simulator that stopped before routing them.
            with contextlib.suppress(OSError):
                for entry in os.scandir(self.folders.outbox(user)):
                    base = trigger_base(entry.name)
                    if base and entry.is_file(follow_symlinks=False):
                        self.trigger_arrived(user, base)
        self._thread = threading.Thread(target=self._run, name="simulator-router", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def idle(self) -> bool:
        """Nothing queued or being routed."""
        with self._condition:
            return not self._queue and not self._busy and not self._working

    def wait_idle(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._queue or self._busy or self._working:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(min(remaining, 0.1))
            return True

    # --- what the SFTP server tells and asks ---

    def is_busy(self, user: str, filename: str) -> bool:
        """True while `OUT/filename` is a trigger or data file in process."""
        with self._condition:
            if (user, filename) in self._busy:
                return True
            base = trigger_base(filename)
            return base is not None and (user, base) in self._busy

    def is_being_written(self, user: str, filename: str) -> bool:
        """True while a session, perhaps one whose client has died, holds `OUT/filename` open."""
        with self._condition:
            return self._writers.get((user, filename), 0) > 0

    def writer_opened(self, user: str, filename: str) -> None:
        with self._condition:
            self._writers[(user, filename)] += 1

    def writer_closed(self, user: str, filename: str, complete: bool = True) -> None:
        with self._condition:
            self._writers[(user, filename)] -= 1
            if self._writers[(user, filename)] <= 0:
                del self._writers[(user, filename)]
        base = trigger_base(filename)
        if complete and base is not None:
            self.trigger_arrived(user, base)

    def trigger_arrived(self, user: str, name: str) -> None:
        with self._condition:
            if (user, name) in self._busy:
                # Written again (by a race between sessions) before routing: routed once.
                log.info("Trigger %s of %s is already in process", name, user)
                return
            self._busy.add((user, name))
            due = time.monotonic() + self.delay
            heapq.heappush(self._queue, (due, next(self._sequence), user, name))
            self._condition.notify_all()

    # --- the routing thread ---

    def _sweep_interval(self) -> float:
        return min(max(self.cleanup_after / 4, 0.2), 30.0)

    def _run(self) -> None:
        next_sweep = time.monotonic() + self._sweep_interval() if self.cleanup_after else None
        while True:
            with self._condition:
                job = None
                while not self._stopping:
                    now = time.monotonic()
                    if next_sweep is not None and now >= next_sweep:
                        break
                    if self._queue and self._queue[0][0] <= now:
                        _, _, user, name = heapq.heappop(self._queue)
                        job = (user, name)
                        self._working = True
                        break
                    wake = [
                        t for t in (next_sweep, self._queue[0][0] if self._queue else None) if t
                    ]
                    self._condition.wait(max(0.0, min(wake) - now) if wake else None)
                if self._stopping:
                    return
            if job is None:
                try:
                    self.sweep()
                except Exception:
                    log.exception("The clean-up of IN folders failed")
                next_sweep = time.monotonic() + self._sweep_interval()
                continue
            user, name = job
            try:
                self.route(user, name)
            except Exception:
                log.exception("Routing %s of %s failed", name, user)
            finally:
                with self._condition:
                    self._busy.discard((user, name))
                    self._working = False
                    self._condition.notify_all()

    # --- routing one trigger ---

    def route(self, user: str, name: str) -> Outcome | None:
        out = self.folders.outbox(user)
        trigger_path = out / f"{name}{TRIGGER_SUFFIX}"
        raw = read_small(trigger_path, protocol.MAX_XML_BYTES)
        if raw is None:
            log.info("Trigger %s of %s is gone; nothing to route", name, user)
            return None
        senders_file_id = None
        try:
            with self._condition:
                still_writing = self._writers.get((user, name), 0) > 0
            if still_writing:
                raise RoutingRefused(
                    ErrorCode.NAME_IN_PROCESS,
                    f"the data file {name} is still open for writing; "
                    "upload the trigger after the data file is complete",
                )
            try:
                trigger = protocol.parse_trigger(raw)
            except protocol.ProtocolError as error:
                raise RoutingRefused(ErrorCode.INVALID_TRIGGER, str(error)) from None
            descriptor = trigger.descriptor
            senders_file_id = descriptor.senders_file_id
            receivers = self._check(user, name, trigger)
            return self._deliver(user, name, trigger, receivers)
        except RoutingRefused as refusal:
            return self._refuse(user, name, refusal.code, refusal.detail, senders_file_id)
        except Exception as error:
            log.exception("Routing %s of %s failed", name, user)
            return self._refuse(
                user, name, ErrorCode.INTERNAL_ERROR, f"{type(error).__name__}", senders_file_id
            )

    def _check(self, user: str, name: str, trigger: protocol.Trigger) -> list[str]:
        """The receiving users, or RoutingRefused with the reason."""
        descriptor = trigger.descriptor
        if descriptor.file_name != name:
            raise RoutingRefused(
                ErrorCode.FILE_NAME_MISMATCH,
                f"FileName is {descriptor.file_name!r} but the trigger is for {name!r}",
            )
        if descriptor.sender != user:
            raise RoutingRefused(
                ErrorCode.SENDER_MISMATCH,
                f"Sender is {descriptor.sender!r} but the logged-in user is {user!r}",
            )
        info = regular_file(self.folders.outbox(user) / name)
        if info is None:
            raise RoutingRefused(ErrorCode.DATA_FILE_MISSING, f"there is no data file OUT/{name}")
        if info.st_size != descriptor.size:
            raise RoutingRefused(
                ErrorCode.SIZE_MISMATCH,
                f"SizeInBytes is {descriptor.size} but OUT/{name} has {info.st_size} bytes",
            )
        registry = self.registry.get()
        sender = registry.user(user)
        if sender is None:
            raise RoutingRefused(
                ErrorCode.SENDER_MISMATCH, f"the user {user!r} is no longer registered"
            )
        routing = trigger.routing
        if routing is None:
            receivers = list(dict.fromkeys(descriptor.recipients))
            unknown = [r for r in receivers if registry.user(r) is None]
            if unknown:
                raise RoutingRefused(
                    ErrorCode.UNKNOWN_RECIPIENT, f"no SFTP user {', '.join(unknown)}"
                )
        else:
            if routing.sender_it_system != sender.it_system:
                raise RoutingRefused(
                    ErrorCode.SENDER_MISMATCH,
                    f"SenderIt-system is {routing.sender_it_system} but the IT system of "
                    f"{user!r} is {sender.it_system}",
                )
            active = registry.infref_active(routing.infref)
            if not active:
                state = "unknown" if active is None else "not active"
                raise RoutingRefused(
                    ErrorCode.UNKNOWN_INFREF, f"the InfRef {routing.infref} is {state}"
                )
            routes = registry.matching_routes(
                routing.infref,
                sender.it_system,
                routing.recipient_authority_cvr,
                routing.recipient_it_system,
            )
            flow = (
                f"InfRef {routing.infref} from IT system {sender.it_system} to "
                f"urn:oio:cvr-nr:{routing.recipient_authority_cvr}"
                + (
                    f" and IT system {routing.recipient_it_system}"
                    if routing.recipient_it_system
                    else ""
                )
            )
            systems = list(dict.fromkeys(route.receiver_it_system for route in routes))
            if not systems:
                raise RoutingRefused(ErrorCode.NO_ROUTE, f"no established route for {flow}")
            if len(systems) > 1:
                raise RoutingRefused(
                    ErrorCode.AMBIGUOUS_ROUTE,
                    f"{len(systems)} receiving IT systems match {flow}; "
                    "name RecipientIt-system to choose one",
                )
            users = registry.users_of_it_system(systems[0])
            if not users:
                raise RoutingRefused(
                    ErrorCode.UNKNOWN_RECIPIENT,
                    f"the receiving IT system {systems[0]} has no SFTP user",
                )
            if len(users) > 1:
                raise RoutingRefused(
                    ErrorCode.AMBIGUOUS_ROUTE,
                    f"the receiving IT system {systems[0]} has {len(users)} SFTP users",
                )
            receivers = [users[0].username]
        for receiver in receivers:
            inbox = self.folders.user_root(receiver) / "IN"
            for taken in (name, f"{name}{METADATA_SUFFIX}"):
                if os.path.lexists(inbox / taken):
                    raise RoutingRefused(
                        ErrorCode.NAME_TAKEN,
                        f"{receiver}'s IN still holds {taken}; use a new, unique name",
                    )
        return receivers

    def _deliver(
        self, user: str, name: str, trigger: protocol.Trigger, receivers: list[str]
    ) -> Outcome:
        file_transfer_uuid = uuid.uuid4()
        metadata = protocol.build_metadata(
            protocol.Metadata(file_transfer_uuid, trigger.descriptor, trigger.routing)
        )
        out = self.folders.outbox(user)
        first = None
        placed: list[str] = []
        try:
            for receiver in receivers:
                self.folders.ensure_user(receiver)
                target = self.folders.inbox(receiver) / name
                placed.append(receiver)
                if first is None:
                    os.rename(out / name, target)
                    first = target
                else:
                    try:
                        os.link(first, target)
                    except OSError:
                        shutil.copyfile(first, target)
                os.utime(target)  # its age in IN counts from delivery (for --cleanup-after)
                self.folders.write_atomic(
                    self.folders.inbox(receiver), f"{name}{METADATA_SUFFIX}", metadata
                )
        except BaseException:
            # Nothing half delivered (a full disk, say): the failure's receipt goes to the
            # sender and no receiver keeps a data file without its metadata.
            for receiver in placed:
                inbox = self.folders.inbox(receiver)
                remove_file(inbox / name)
                remove_file(inbox / f"{name}{METADATA_SUFFIX}")
            raise
        receipt = protocol.build_receipt(
            protocol.Receipt(
                file_transfer_uuid=file_transfer_uuid,
                senders_file_id=trigger.descriptor.senders_file_id,
                success=True,
                message=protocol.SUCCESS,
            )
        )
        remove_file(out / f"{name}{TRIGGER_SUFFIX}")
        self._send_receipt(user, name, receipt)
        log.info(
            "Routed %s from %s to %s (FileTransferUUID %s)",
            name,
            user,
            ", ".join(receivers),
            file_transfer_uuid,
        )
        return self._remember(
            Outcome(user, name, tuple(receivers), file_transfer_uuid=file_transfer_uuid)
        )

    def _refuse(
        self, user: str, name: str, code: ErrorCode, detail: str, senders_file_id: str | None
    ) -> Outcome:
        file_transfer_uuid = uuid.uuid4()
        receipt = protocol.build_receipt(
            protocol.Receipt(
                file_transfer_uuid=file_transfer_uuid,
                senders_file_id=senders_file_id,
                success=False,
                errors=(protocol.ReceiptError(int(code), DESCRIPTIONS[code], detail),),
            )
        )
        out = self.folders.outbox(user)
        remove_file(out / name)
        remove_file(out / f"{name}{TRIGGER_SUFFIX}")
        self._send_receipt(user, name, receipt)
        log.warning("Refused %s from %s: %s %s: %s", name, user, int(code), code.name, detail)
        return self._remember(
            Outcome(user, name, error=code, detail=detail, file_transfer_uuid=file_transfer_uuid)
        )

    def _send_receipt(self, user: str, name: str, receipt: bytes) -> None:
        """The last step: the name is free again before the sender can see the receipt."""
        with self._condition:
            self._busy.discard((user, name))
        self.folders.ensure_user(user)
        self.folders.write_atomic(self.folders.inbox(user), f"{name}{RECEIPT_SUFFIX}", receipt)

    def _remember(self, outcome: Outcome) -> Outcome:
        with self._condition:
            self.outcomes.append(outcome)
            del self.outcomes[:-1000]
        return outcome

    # --- clean-up ---

    def sweep(self, now: float | None = None) -> int:
        """Remove files older than `cleanup_after` seconds from every IN; return how many."""
        if not self.cleanup_after:
            return 0
        limit = (time.time() if now is None else now) - self.cleanup_after
        removed = 0
        for user in self.folders.usernames():
            try:
                entries = list(os.scandir(self.folders.inbox(user)))
            except OSError:
                continue
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if entry.is_file(follow_symlinks=False) and info.st_mtime < limit:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                        removed += 1
                        log.info(
                            "Removed %s from %s's IN: unread after %ss",
                            entry.name,
                            user,
                            self.cleanup_after,
                        )
        return removed
