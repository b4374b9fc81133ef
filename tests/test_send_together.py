"""Small sends of one account queued at once go together: the worker that takes the first claims
the others that were never tried and writes their data files at once, then their triggers at
once (transfers.tasks._send_together). Each is still sent once, with its own receipt."""

import io
from pathlib import Path

import pytest
from django_q.models import OrmQ

from tests.support.engine import RECEIVER, SENDER
from transfers import tasks
from transfers.fetch import fetch_inbox
from transfers.models import ReceivedFile, Route, Transfer
from transfers.queueing import queue_send, route_blockers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.system]
State = Transfer.State


def queue(route, user, number: int, size: int = 20_000) -> Transfer:
    data = bytes([number % 251]) * size
    return queue_send(route, io.BytesIO(data), original_name=f"fil-{number}.csv", user=user)


def states_of(transfers) -> list[str]:
    return [Transfer.objects.get(pk=transfer.pk).state for transfer in transfers]


def test_sends_queued_at_once_go_together_and_each_is_delivered_once(ready_route):
    ready = ready_route()
    transfers = [queue(ready.route, ready.staff, number) for number in range(6)]

    outcomes = [tasks.send_transfer(transfer.pk) for transfer in transfers]

    assert outcomes == ["sent"] + ["not queued"] * 5
    # The others' tasks still waited in the queue as the batch went: its receipts were left to
    # a round of the account's, queued behind them.
    assert states_of(transfers) == [State.SENT] * 6
    assert tasks.collect_account_receipts(transfers[0].account_id) == 6
    assert states_of(transfers) == [State.DELIVERED] * 6
    # One attempt each, claimed together: the same start, each with its own trigger.
    rows = Transfer.objects.filter(pk__in=[t.pk for t in transfers])
    assert {row.attempts for row in rows} == {1}
    assert len({row.started_at for row in rows}) == 1
    assert all(row.remote_name in row.trigger_xml for row in rows)
    fetch_inbox(ready.receiver.pk)
    for transfer in transfers:
        routed = [o.error for o in ready.sim.router.outcomes if o.name == transfer.remote_name]
        assert routed == [None]
        received = ReceivedFile.objects.get(remote_name=transfer.remote_name)
        assert received.sha256 == transfer.sha256
    for folder in (f"{SENDER}/OUT", f"{SENDER}/IN", f"{RECEIVER}/IN"):
        assert list((ready.sim.data_dir / folder).iterdir()) == [], folder


def test_with_no_other_task_waiting_the_receipts_are_collected_on_the_open_session(ready_route):
    ready = ready_route()
    transfers = [queue(ready.route, ready.staff, number) for number in range(3)]
    # The other sends' tasks taken from the queue already, by workers that found them sent.
    OrmQ.objects.exclude(pk=OrmQ.objects.order_by("pk").first().pk).delete()

    assert tasks.send_transfer(transfers[0].pk) == "sent"

    assert states_of(transfers) == [State.DELIVERED] * 3


def test_only_small_sends_never_tried_of_the_same_account_are_taken(ready_route, monkeypatch):
    monkeypatch.setattr(tasks, "TOGETHER_FILE_BYTES", 50_000)
    ready = ready_route()
    first = queue(ready.route, ready.staff, 0)
    large = queue(ready.route, ready.staff, 1, size=60_000)
    tried = queue(ready.route, ready.staff, 2)
    # Tried before and waiting for its backoff: its own task comes when that is over.
    Transfer.objects.filter(pk=tried.pk).update(started_at=first.queued_at)
    fellow = queue(ready.route, ready.staff, 3)

    assert tasks.send_transfer(first.pk) == "sent"

    assert states_of([first, large, tried, fellow]) == [
        State.SENT,
        State.QUEUED,
        State.QUEUED,
        State.SENT,
    ]
    assert tasks.send_transfer(large.pk) == "sent"  # alone: it is too large to go together


def test_a_batch_holds_no_more_bytes_than_its_bound(ready_route, monkeypatch):
    monkeypatch.setattr(tasks, "TOGETHER_BYTES", 50_000)
    ready = ready_route()
    transfers = [queue(ready.route, ready.staff, number) for number in range(4)]

    assert tasks.send_transfer(transfers[0].pk) == "sent"

    # The newest taken first: their own tasks, at the back of the queue, have nothing to do.
    assert states_of(transfers) == [State.SENT, State.QUEUED, State.QUEUED, State.SENT]


def test_a_changed_local_copy_or_a_blocked_route_holds_back_only_its_own_send(ready_route):
    ready = ready_route(municipalities=2)
    aarhus, odense = ready.routes.values()
    first = queue(aarhus, ready.staff, 0)
    changed = queue(aarhus, ready.staff, 1)
    blocked = queue(odense, ready.staff, 2)
    fellow = queue(aarhus, ready.staff, 3)
    Path(changed.payload).write_bytes(b"other data")
    Route.objects.filter(pk=odense.pk).update(state=Route.State.SUSPENDED)

    assert tasks.send_transfer(first.pk) == "sent"

    assert states_of([first, changed, blocked, fellow]) == [
        State.SENT,
        State.QUEUED,
        State.FAILED,
        State.SENT,
    ]
    changed.refresh_from_db()
    assert "no longer matches" in changed.last_error
    blocked.refresh_from_db()
    odense.refresh_from_db()
    assert blocked.last_error == " ".join(route_blockers(odense, account=ready.sender))
    names = {path.name for path in (ready.sim.data_dir / SENDER / "OUT").iterdir()}
    assert changed.remote_name not in names and blocked.remote_name not in names
