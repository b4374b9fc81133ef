"""A transfer's states and moves (transfers.states): the table itself, the one function that
moves a transfer, and the races between workers, sweepers, receipt collectors and people.

Each race runs RUNS times on PostgreSQL (the suite's PostgreSQL pass; SQLite writes one at a
time), every side in a thread and a connection of its own, started together with a little
random delay each so that either side wins some runs. In every run exactly one side moves the
transfer, the other is told it did not and does nothing more to the row: no move is lost or
made twice, no alert, fetch, retry or queued task follows from a move that did not happen, and
the audit log holds each user action that took effect.
"""

import ast
import hashlib
import random
import threading
import time
import uuid
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django_q.models import Schedule

from portal.alerts import service as alerts
from portal.audit.models import AuditEvent
from tests.support.records import make_integration, make_route, make_transfers
from transfers import protocol, states, tasks
from transfers.models import Transfer
from transfers.sftp import SftpError
from transfers.states import MOVES, IllegalMove, State

RUNS = 100
JITTER_SECONDS = 0.003
ROOT = Path(__file__).resolve().parent.parent

# The table written out again: a change to the one in transfers.states is made here on purpose.
EXPECTED_MOVES = {
    State.QUEUED: {State.SENDING, State.CANCELLED},
    State.SENDING: {State.SENT, State.QUEUED, State.FAILED},
    State.SENT: {State.DELIVERED, State.FAILED, State.QUEUED, State.NO_RECEIPT},
    State.NO_RECEIPT: {State.DELIVERED, State.FAILED, State.QUEUED, State.NO_RECEIPT},
    State.FAILED: {State.QUEUED},
    State.DELIVERED: set(),
    State.CANCELLED: set(),
}


@pytest.fixture
def route(system_a, system_b, staff_a, aarhus, operator):
    return make_route(make_integration(system_a, system_b, staff_a, [aarhus]), aarhus, operator)


def new_transfer(route, state: str = State.QUEUED, **fields) -> Transfer:
    """A transfer put straight into `state`: how it got there is not what is tested."""
    (pk,) = make_transfers(route, 1, state=state)
    if fields:
        Transfer.objects.filter(pk=pk).update(**fields)
    return Transfer.objects.select_related("route", "account").get(pk=pk)


def state_of(transfer: Transfer) -> str:
    return Transfer.objects.values_list("state", flat=True).get(pk=transfer.pk)


def needs_postgres() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite writes one at a time; the suite's PostgreSQL pass runs the races")


# --- the table --------------------------------------------------------------------------------


def test_the_table_names_every_state_and_the_moves_allowed_from_it():
    assert set(MOVES) == set(State)
    assert {state: set(targets) for state, targets in MOVES.items()} == EXPECTED_MOVES
    assert {State.DELIVERED, State.FAILED, State.CANCELLED} == State.FINAL
    assert {State.SENT, State.NO_RECEIPT} == State.AWAITING_RECEIPT
    assert {State.FAILED, State.NO_RECEIPT} == State.RESUBMITTABLE
    assert all(State.QUEUED in MOVES[state] for state in State.RESUBMITTABLE)
    # Nothing but a person's "send again" leaves a final state.
    assert all(MOVES[state] <= {State.QUEUED} for state in State.FINAL)
    # Every state can be reached from a new transfer, and every one can still end.
    reached, frontier = {State.QUEUED}, [State.QUEUED]
    while frontier:
        for target in MOVES[frontier.pop()] - reached:
            reached.add(target)
            frontier.append(target)
    assert reached == set(State)
    for state in set(State) - State.FINAL:
        ends, frontier = set(), [state]
        while frontier:
            for target in MOVES[frontier.pop()] - ends:
                ends.add(target)
                frontier.append(target)
        assert ends & State.FINAL, state


@pytest.mark.django_db
def test_move_makes_each_allowed_move_and_refuses_every_other(route):
    transfer = new_transfer(route)
    for from_state in State:
        for to_state in State:
            Transfer.objects.filter(pk=transfer.pk).update(state=from_state)
            if to_state in EXPECTED_MOVES[from_state]:
                assert states.move(transfer.pk, from_state, to_state), (from_state, to_state)
                assert state_of(transfer) == to_state
            else:
                with pytest.raises(IllegalMove):
                    states.move(transfer.pk, from_state, to_state)
                assert state_of(transfer) == from_state


@pytest.mark.django_db
def test_move_moves_only_from_the_state_its_caller_saw_and_says_so(route):
    transfer = new_transfer(route)
    assert not states.move(transfer.pk, State.SENDING, State.SENT)
    assert not states.move(transfer.pk, State.QUEUED, State.SENDING, where=Q(attempts=5))
    assert state_of(transfer) == State.QUEUED
    assert states.move(transfer.pk, [State.QUEUED], State.SENDING, attempts=1)
    assert Transfer.objects.get(pk=transfer.pk).attempts == 1
    assert not states.move(transfer.pk, State.QUEUED, State.SENDING)  # the second claim
    Transfer.objects.filter(pk=transfer.pk).update(state=State.NO_RECEIPT)
    assert states.move(transfer.pk, State.AWAITING_RECEIPT, State.DELIVERED)
    # Refused whatever the row's state: each state named must allow the move.
    for from_states, to_state, fields in (
        ({State.DELIVERED, State.FAILED}, State.QUEUED, {}),
        ((), State.QUEUED, {}),
        (State.QUEUED, "lost", {}),
        ("lost", State.QUEUED, {}),
        (State.FAILED, State.QUEUED, {"state": State.SENT}),
    ):
        with pytest.raises(IllegalMove):
            states.move(transfer.pk, from_states, to_state, **fields)
    assert state_of(transfer) == State.DELIVERED


def _state_writes(path: Path) -> list[str]:
    """Each `x.update(state=…)`, `x.create(state=…)` and `x.state = …` in a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"update", "create", "get_or_create", "update_or_create"}
            and any(keyword.arg == "state" for keyword in node.keywords)
        ):
            found.append((node.lineno, ast.unparse(node.func.value)))
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for part in ast.walk(target):
                    if isinstance(part, ast.Attribute) and part.attr == "state":
                        found.append((node.lineno, ast.unparse(part)))
    return [f"{path.relative_to(ROOT)}:{line} {what}" for line, what in found]


def test_a_transfers_state_is_written_in_transfers_states_alone():
    """A new write of a state outside transfers.states shows here; a write of another model's
    state is named below once someone has looked at it."""
    others = (
        "ReceivedFile.objects",
        "OutgoingMail.objects",
        "Route.objects",
        "route.state",
        "task.state",
    )
    writes = [
        write
        for folder in ("transfers", "portal", "handoff", "gdpr", "bench", "scripts")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if "migrations" not in path.parts
        for write in _state_writes(path)
        if not write.split(" ", 1)[1].startswith(others)
    ]
    assert writes and all(write.startswith("transfers/states.py:") for write in writes), writes


# --- a worker the sweeper gave up on ------------------------------------------------------------


class FakeServer:
    """The SFTP session, as far as these tests need it: one receipt to read, and a record of
    what was written and removed."""

    def __init__(self, receipt: bytes | None = None):
        self.receipt = receipt
        self.written: list[str] = []
        self.removed: list[str] = []
        self._lock = threading.Lock()

    def size(self, path: str) -> int | None:
        receipt = self.receipt
        return len(receipt) if path.endswith(".sftpreceipt") and receipt is not None else None

    def get_file(self, path: str, local, progress=None) -> tuple[int, str]:
        receipt = self.receipt
        if receipt is None:
            raise SftpError(f"{path} does not exist")
        Path(local).write_bytes(receipt)
        return len(receipt), hashlib.sha256(receipt).hexdigest()

    def put_bytes(self, data: bytes, path: str) -> None:
        self.written.append(path)

    def remove(self, path: str, *, missing_ok: bool = False) -> None:
        with self._lock:
            self.removed.append(path)
            if path.endswith(".sftpreceipt"):
                self.receipt = None


@pytest.mark.django_db
def test_a_worker_handed_over_by_the_sweeper_writes_no_trigger_and_moves_nothing(
    route, settings, monkeypatch
):
    """The sweeper takes a slow worker for dead and another worker claims the send: the first
    may still think it holds the send, but nothing it does reaches the row or the server."""
    settings.TRANSFER_STALE_SECONDS = 60
    transfer = new_transfer(route)
    server, workers = FakeServer(), []

    def send(claimed: Transfer) -> str:
        workers.append(claimed)
        if len(workers) == 1:
            # The first worker stalls: its heartbeat goes quiet, the sweeper hands the send on
            # and a second worker claims it, before the first writes its trigger.
            Transfer.objects.filter(pk=claimed.pk).update(
                heartbeat_at=timezone.now() - timedelta(hours=1)
            )
            assert tasks.requeue_abandoned() == 1
            assert tasks.send_transfer(claimed.pk) == "sent"
            tasks._write_trigger(server, claimed)
        return "sent"

    monkeypatch.setattr(tasks, "_send", send)
    assert tasks.send_transfer(transfer.pk) == "handed on"
    first, second = workers
    assert first.started_at != second.started_at
    assert server.written == []  # no trigger after losing the send
    row = Transfer.objects.get(pk=transfer.pk)
    assert (row.state, row.started_at, row.trigger_started_at, row.attempts) == (
        State.SENDING,
        second.started_at,
        None,
        2,
    )
    for late in (
        lambda: tasks._mark_sent(first),
        lambda: tasks._fail(first, "too late"),
        lambda: tasks._record_progress(first, bytes_done=1),
    ):
        with pytest.raises(tasks.Lost):
            late()
    assert Transfer.objects.get(pk=transfer.pk).state == State.SENDING
    tasks._mark_sent(second)
    assert state_of(transfer) == State.SENT


# --- the races ----------------------------------------------------------------------------------


def race(rng: random.Random, *actions) -> list:
    """Run the actions at once, each in a thread with its own connection, after a small random
    delay each; what each returned, or the exception it raised."""
    barrier = threading.Barrier(len(actions))
    results: list = [None] * len(actions)
    delays = [rng.uniform(0, JITTER_SECONDS) for _ in actions]

    def run(index: int) -> None:
        try:
            Transfer.objects.exists()  # connected before the start, not during the race
            barrier.wait(30)
            time.sleep(delays[index])
            results[index] = actions[index]()
        except BaseException as error:  # handed to the test to judge
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(actions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def unexpected(results: list, *allowed: type[BaseException]) -> None:
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, allowed):
            raise result


class Calls:
    """What the tasks set off (alerts, fetches, queued sends), recorded from any thread."""

    def __init__(self, monkeypatch):
        self.made: list[tuple[str, int]] = []
        for name in ("transfer_failed", "no_receipt", "clear_no_receipt"):
            monkeypatch.setattr(alerts, name, self._recorder(name))
        monkeypatch.setattr(tasks, "enqueue", self._recorder("enqueue"))
        monkeypatch.setattr(tasks, "_fetch_soon", self._recorder("fetch", lambda t: t.pk))

    def _recorder(self, name: str, key=lambda first: first):
        def record(first, *_args, **_kwargs) -> None:
            self.made.append((name, key(first)))  # list.append is atomic

        return record

    def count(self, name: str, transfer: Transfer) -> int:
        return self.made.count((name, transfer.pk))


def audited(action: str, transfer: Transfer) -> int:
    return AuditEvent.objects.filter(
        action=action, object_type="transfers.Transfer", object_id=str(transfer.pk)
    ).count()


@pytest.fixture
def racing(settings, tmp_path):
    needs_postgres()
    settings.TRANSFER_DATA_DIR = tmp_path
    return random.Random(19)  # noqa: S311 - delays, not secrets


def _claims(monkeypatch) -> list[int]:
    """The sends that got past the claim in send_transfer: what a worker would then upload."""
    claimed: list[int] = []

    def send(transfer: Transfer) -> str:
        claimed.append(transfer.pk)
        return "sent"

    monkeypatch.setattr(tasks, "_send", send)
    return claimed


@pytest.mark.django_db(transaction=True)
def test_a_cancel_and_a_workers_claim_of_one_transfer_one_wins(racing, route, staff_a, monkeypatch):
    claimed, wins = _claims(monkeypatch), {"cancel": 0, "claim": 0}
    for _run in range(RUNS):
        transfer = new_transfer(route)
        cancelled, sent = race(
            racing,
            partial(tasks.cancel, transfer, by=staff_a),
            partial(tasks.send_transfer, transfer.pk),
        )
        unexpected([cancelled, sent])
        row = Transfer.objects.get(pk=transfer.pk)
        if cancelled:
            assert (sent, row.state, row.attempts) == ("not queued", State.CANCELLED, 0)
            assert row.finished_at is not None
            wins["cancel"] += 1
        else:
            assert (sent, row.state, row.attempts) == ("sent", State.SENDING, 1)
            wins["claim"] += 1
        assert claimed.count(transfer.pk) == (0 if cancelled else 1)
        assert audited(AuditEvent.Action.CANCEL, transfer) == (1 if cancelled else 0)
    assert all(wins.values()), wins


@pytest.mark.django_db(transaction=True)
def test_two_workers_claiming_one_transfer_send_it_once(racing, route, monkeypatch):
    claimed = _claims(monkeypatch)
    for _run in range(RUNS):
        transfer = new_transfer(route)
        results = race(racing, *[partial(tasks.send_transfer, transfer.pk)] * 2)
        unexpected(results)
        assert sorted(results) == ["not queued", "sent"]
        assert claimed.count(transfer.pk) == 1
        assert Transfer.objects.values_list("state", "attempts").get(pk=transfer.pk) == (
            State.SENDING,
            1,
        )


@pytest.mark.django_db(transaction=True)
def test_the_stale_sweep_and_a_live_workers_move_to_sent_one_wins(
    racing, route, settings, monkeypatch
):
    """The sweeper sees a heartbeat older than TRANSFER_STALE_SECONDS just as the worker,
    alive after all, records its trigger."""
    settings.TRANSFER_STALE_SECONDS = 60
    calls, wins = Calls(monkeypatch), {"sweep": 0, "worker": 0}
    for _run in range(RUNS):
        quiet = timezone.now() - timedelta(hours=1)
        worker = new_transfer(
            route, State.SENDING, attempts=1, started_at=quiet, heartbeat_at=quiet
        )

        swept, marked = race(racing, tasks.requeue_abandoned, partial(mark_sent, worker))
        unexpected([swept, marked])
        row = Transfer.objects.get(pk=worker.pk)
        if swept:
            assert (swept, marked, row.state, row.sent_at) == (1, "lost", State.QUEUED, None)
            wins["sweep"] += 1
        else:
            assert (marked, row.state) == ("sent", State.SENT)
            assert row.sent_at is not None
            wins["worker"] += 1
        assert calls.count("enqueue", worker) == swept
    assert all(wins.values()), wins


def mark_sent(worker: Transfer) -> str:
    try:
        tasks._mark_sent(worker)
    except tasks.Lost:
        return "lost"
    return "sent"


def _receipt(transfer: Transfer, code: int | None = None) -> bytes:
    errors = () if code is None else (protocol.ReceiptError(code, "Fejl", "Ikke nu"),)
    return protocol.build_receipt(
        protocol.Receipt(
            file_transfer_uuid=uuid.uuid4(),
            senders_file_id=str(transfer.senders_file_id),
            success=code is None,
            message=protocol.SUCCESS if code is None else None,
            errors=errors,
        )
    )


RECEIPT_PATH = "IN/{}.sftpreceipt"


@pytest.mark.parametrize(
    ("code", "outcome"), [(None, State.DELIVERED), (106, State.FAILED), (108, State.QUEUED)]
)
@pytest.mark.django_db(transaction=True)
def test_two_collectors_reading_one_receipt_settle_the_transfer_once(
    racing, route, monkeypatch, code, outcome
):
    """Delivered, failed, or (a transient error) queued to be sent again: once, whichever of
    two collectors gets there first, from "sent" or from "no receipt"."""
    calls = Calls(monkeypatch)
    for run in range(RUNS):
        before = State.SENT if run % 2 else State.NO_RECEIPT
        transfer = new_transfer(route, before, attempts=1, sent_at=timezone.now())
        server = FakeServer(_receipt(transfer, code))
        results = race(racing, *[partial(tasks._collect_receipt, server, transfer.pk)] * 2)
        # The loser may find the receipt gone already.
        unexpected(results, SftpError)
        assert True in results
        row = Transfer.objects.get(pk=transfer.pk)
        assert row.state == outcome
        assert server.removed == [RECEIPT_PATH.format(transfer.remote_name)]
        assert calls.count("fetch", transfer) == (outcome == State.DELIVERED)
        assert calls.count("transfer_failed", transfer) == (outcome == State.FAILED)
        assert calls.count("clear_no_receipt", transfer) == (before == State.NO_RECEIPT)
        retries = Schedule.objects.filter(name__startswith=f"transfer-wait-{transfer.pk}-")
        assert retries.count() == (outcome == State.QUEUED)
        if outcome == State.QUEUED:
            # Uncounted once, with one new TransactionId.
            assert row.attempts == 0 and row.transaction_id != transfer.transaction_id
        else:
            assert row.finished_at is not None


@pytest.mark.django_db(transaction=True)
def test_a_late_receipt_and_the_owners_send_again_one_wins(racing, route, staff_a, monkeypatch):
    """A transfer with no receipt: its receipt turns up just as its owner sends it again."""
    calls, wins = Calls(monkeypatch), {"receipt": 0, "resubmit": 0}
    for _run in range(RUNS):
        transfer = new_transfer(route, State.NO_RECEIPT, attempts=1, sent_at=timezone.now())
        server = FakeServer(_receipt(transfer))
        collected, resubmitted = race(
            racing,
            partial(tasks._collect_receipt, server, transfer.pk),
            partial(tasks.resubmit, transfer, by=staff_a),
        )
        unexpected([collected, resubmitted])
        row = Transfer.objects.get(pk=transfer.pk)
        if resubmitted:
            assert (row.state, row.trigger_started_at, row.sent_at) == (State.QUEUED, None, None)
            # The collector recorded nothing and left the receipt, which the new attempt
            # removes before it sends (_clear_earlier).
            assert server.removed == [] and server.receipt is not None
            wins["resubmit"] += 1
        else:
            assert row.state == State.DELIVERED
            assert server.removed == [RECEIPT_PATH.format(transfer.remote_name)]
            wins["receipt"] += 1
        assert audited(AuditEvent.Action.RESUBMIT, transfer) == resubmitted
        assert calls.count("enqueue", transfer) == resubmitted
        assert calls.count("fetch", transfer) == (not resubmitted)
        assert calls.count("clear_no_receipt", transfer) == 1
    assert all(wins.values()), wins


@pytest.mark.django_db(transaction=True)
def test_two_people_sending_one_failed_transfer_again_queue_it_once(
    racing, route, staff_a, monkeypatch
):
    """A double click, or two colleagues at once: one new attempt, one line in the audit log."""
    calls = Calls(monkeypatch)
    for run in range(RUNS):
        before = State.FAILED if run % 2 else State.NO_RECEIPT
        transfer = new_transfer(route, before, attempts=1, finished_at=timezone.now())
        results = race(racing, *[partial(tasks.resubmit, transfer, by=staff_a)] * 2)
        unexpected(results)
        assert sorted(results) == [False, True]
        row = Transfer.objects.get(pk=transfer.pk)
        assert (row.state, row.finished_at) == (State.QUEUED, None)
        assert audited(AuditEvent.Action.RESUBMIT, transfer) == 1
        assert calls.count("enqueue", transfer) == 1
        assert calls.count("clear_no_receipt", transfer) == (before == State.NO_RECEIPT)


@pytest.mark.django_db(transaction=True)
def test_the_receipt_timeout_and_a_collector_one_wins_and_the_receipt_is_not_lost(
    racing, route, settings, monkeypatch
):
    """The receipt arrives just as TRANSFER_RECEIPT_TIMEOUT_SECONDS runs out. If the timeout
    wins, the transfer shows "no receipt" and is alerted once; the collector records nothing
    and leaves the receipt, which the next round settles."""
    settings.TRANSFER_RECEIPT_TIMEOUT_SECONDS = 60
    calls, wins = Calls(monkeypatch), {"receipt": 0, "timeout": 0}
    for _run in range(RUNS):
        sent_at = timezone.now() - timedelta(hours=1)
        transfer = new_transfer(route, State.SENT, attempts=1, sent_at=sent_at)
        server = FakeServer(_receipt(transfer))
        marked, collected = race(
            racing, tasks.mark_no_receipt, partial(tasks._collect_receipt, server, transfer.pk)
        )
        unexpected([marked, collected])
        assert calls.count("no_receipt", transfer) == marked
        if state_of(transfer) == State.NO_RECEIPT:
            # The collector read "sent" and lost its move to the timeout.
            assert (marked, collected) == (1, False)
            assert calls.count("fetch", transfer) == 0 and server.receipt is not None
            assert tasks._collect_receipt(server, transfer.pk)  # the next round
        wins["timeout" if marked else "receipt"] += 1
        # A "no receipt" alert raised is cleared by the delivery, once.
        assert calls.count("clear_no_receipt", transfer) == marked
        assert state_of(transfer) == State.DELIVERED
        assert calls.count("fetch", transfer) == 1
        assert server.removed == [RECEIPT_PATH.format(transfer.remote_name)]
    assert all(wins.values()), wins


@pytest.mark.django_db(transaction=True)
def test_a_move_that_waited_for_anothers_lock_sees_the_new_state(racing, route):
    """No timing luck: the cancel holds the row, uncommitted, while the claim waits for it;
    once the cancel commits, the claim's UPDATE reads the row again and does not move it."""
    transfer = new_transfer(route)
    holding, release = threading.Event(), threading.Event()

    def cancel() -> bool:
        with transaction.atomic():
            moved = states.move(transfer.pk, State.QUEUED, State.CANCELLED)
            holding.set()
            release.wait(10)
        return moved

    def claim() -> tuple[bool, float]:
        assert holding.wait(10)
        started = time.monotonic()
        return states.move(transfer.pk, State.QUEUED, State.SENDING), time.monotonic() - started

    def let_go() -> None:
        assert holding.wait(10)
        time.sleep(0.5)
        release.set()

    results = race(random.Random(0), cancel, claim, let_go)  # noqa: S311
    unexpected(results)
    cancelled, (claimed, waited), _ = results
    assert (cancelled, claimed, state_of(transfer)) == (True, False, State.CANCELLED)
    assert waited >= 0.3  # it did wait for the cancel's lock
