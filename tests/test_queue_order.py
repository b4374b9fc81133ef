"""The queue is taken in the order its tasks fell due, a fetch of files being sent is queued
ahead of the sends that wait, and one account's fetch or receipts run one at a time
(portal.core.queue_broker, transfers.soon)."""

import socket
from pathlib import Path

import pytest
from django.core.cache import cache
from django.db import connection
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signing import SignedPackage
from django_q.tasks import async_task

from portal.core import queue_broker
from portal.core.queue_broker import AHEAD, AheadORM, WakingORM
from transfers import soon

pytestmark = pytest.mark.django_db

FETCH = "transfers.fetch.fetch_inbox"


def take(broker: WakingORM) -> list:
    """What the pusher gets, a claim at a time, until the queue is empty."""
    taken = []
    while claimed := broker._claim():
        taken += [SignedPackage.loads(payload)["args"] for _pk, payload in claimed]
    return taken


def test_tasks_are_taken_in_the_order_they_were_queued_and_one_queued_ahead_first():
    broker = WakingORM(list_key=Conf.CLUSTER_NAME)
    for number in range(3):
        async_task("math.floor", number)
    async_task("math.floor", "ahead", broker=AheadORM(list_key=Conf.CLUSTER_NAME))
    async_task("math.floor", 3)

    assert take(broker) == [("ahead",), (0,), (1,), (2,), (3,)]


def test_the_queue_has_its_index_for_the_order():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "django_q_ormq")
    assert constraints["fdd_ormq_due"]["columns"] == ["key", "lock", "id"]


def test_others_wait_when_the_queue_holds_more_tasks_than_the_workers(monkeypatch):
    monkeypatch.setattr(Conf, "WORKERS", 2)
    async_task("math.floor", 0)  # the task that asks: it stays queued until it has run
    async_task("math.floor", 1)  # the other worker's
    assert not queue_broker.others_wait()
    async_task("math.floor", 2)
    assert queue_broker.others_wait()


def ask_for_fetch() -> None:
    soon.queue_soon(FETCH, 7, "fingerprint", group="fetch", ahead=True)


# In these the transaction commits as the portal's own do: what is queued on commit is queued
# at once, also as a run ends.
@pytest.mark.django_db(transaction=True)
def test_a_fetch_is_queued_ahead_and_not_while_one_runs_for_the_account():
    ask_for_fetch()
    ask_for_fetch()  # one waits already: it will see this file too
    assert list(OrmQ.objects.values_list("lock", flat=True)) == [AHEAD]
    OrmQ.objects.all().delete()

    with soon.running(FETCH, 7, "fingerprint", group="fetch") as run:
        run.looking()
        ask_for_fetch()  # the run under way is asked to look again: nothing is queued
        assert not OrmQ.objects.exists()
        run.looking()  # and it does
    assert not OrmQ.objects.exists()  # nothing was asked for after it looked

    ask_for_fetch()  # none runs: ahead again
    assert list(OrmQ.objects.values_list("lock", flat=True)) == [AHEAD]


@pytest.mark.django_db(transaction=True)
def test_a_run_asked_for_after_it_last_looked_queues_the_next_as_it_ends():
    with soon.running(FETCH, 7, "fingerprint", group="fetch") as run:
        run.looking()
        ask_for_fetch()
        assert not OrmQ.objects.exists()
    [queued] = OrmQ.objects.all()
    assert queued.lock > AHEAD  # behind the tasks that wait, as any other
    assert SignedPackage.loads(queued.payload)["args"] == (7,)


@pytest.mark.django_db(transaction=True)
def test_a_second_run_of_the_same_work_stands_aside_and_the_first_looks_for_it():
    with soon.running(FETCH, 7, "fingerprint", group="fetch") as first:
        first.looking()
        with soon.running(FETCH, 7, "fingerprint", group="fetch") as second:
            assert second is None
        # Another account's, or another key's, is work of its own.
        with soon.running(FETCH, 8, "fingerprint", group="fetch") as other:
            assert other is not None
            other.looking()
        with soon.running(FETCH, 7, "a-new-key", group="fetch") as renewed:
            assert renewed is not None
            renewed.looking()
        assert not OrmQ.objects.exists()
    # The first had not looked since the second stood aside: it queues the next.
    assert OrmQ.objects.count() == 1
    OrmQ.objects.all().delete()
    with soon.running(FETCH, 7, "fingerprint", group="fetch") as again:
        assert again is not None  # the first ended: the work is free
        again.looking()
    assert not OrmQ.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_run_whose_process_has_gone_holds_back_nothing_and_one_elsewhere_does():
    # No process has this number: the kernel gives out numbers below pid_max.
    gone = Path("/proc/sys/kernel/pid_max").read_text().strip()
    running_mark = soon._mark(FETCH, 7, "fingerprint") + ":running"

    cache.set(running_mark, f"{socket.gethostname()}:{gone}")
    ask_for_fetch()
    assert OrmQ.objects.count() == 1
    with soon.running(FETCH, 7, "fingerprint", group="fetch") as run:
        assert run is not None
        run.looking()
    OrmQ.objects.all().delete()

    cache.set(running_mark, "another-host:1")  # its run may well be under way
    ask_for_fetch()
    assert not OrmQ.objects.exists()
    with soon.running(FETCH, 7, "fingerprint", group="fetch") as run:
        assert run is None


@pytest.mark.django_db(transaction=True)
def test_a_run_that_fails_after_it_was_asked_for_queues_the_next():
    """It may have failed on the very files it was asked for, though it looked after the ask."""
    with (
        pytest.raises(ConnectionError),
        soon.running(FETCH, 7, "fingerprint", group="fetch") as run,
    ):
        ask_for_fetch()
        run.looking()
        raise ConnectionError("the inbox could not be read")
    assert OrmQ.objects.count() == 1

    OrmQ.objects.all().delete()
    with (
        pytest.raises(ConnectionError),  # asked for by none: the schedule fetches next
        soon.running(FETCH, 7, "fingerprint", group="fetch") as run,
    ):
        run.looking()
        raise ConnectionError("the inbox could not be read")
    assert not OrmQ.objects.exists()
