"""The queue is taken in the order its tasks fell due, and a fetch of files being sent is queued
ahead of the sends that wait (portal.core.queue_broker, transfers.soon)."""

import pytest
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


def test_a_fetch_is_queued_ahead_unless_one_runs_for_the_account(
    django_capture_on_commit_callbacks,
):
    def queue_fetch() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            soon.queue_soon(FETCH, 7, "fingerprint", group="fetch", ahead=True)

    queue_fetch()
    queue_fetch()  # one waits already: it will see this file too
    assert list(OrmQ.objects.values_list("lock", flat=True)) == [AHEAD]

    with soon.running(FETCH, 7, "fingerprint"):
        # Started: what arrives now needs another, which waits its turn behind the sends.
        queue_fetch()
        [behind] = OrmQ.objects.exclude(lock=AHEAD)
        assert behind.lock > AHEAD
    OrmQ.objects.all().delete()

    with soon.running(FETCH, 7, "fingerprint"):  # the one queued behind runs, and ends
        pass
    queue_fetch()  # none runs: ahead again
    assert list(OrmQ.objects.values_list("lock", flat=True)) == [AHEAD]
