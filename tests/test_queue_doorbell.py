"""The queue's doorbell (portal.core.queue_broker): a pusher waiting out its poll is rung when a
task is queued on this host and its transaction commits, and at rest it asks the database no
more often than the plain ORM broker does.
"""

import os
import threading

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django_q.conf import Conf
from django_q.tasks import async_task

from portal.core import queue_broker
from portal.core.queue_broker import WakingORM

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]

LONG_POLL = 60.0  # far longer than any wait below: a pusher that returns was rung


@pytest.fixture
def long_poll(monkeypatch, settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    monkeypatch.setattr(Conf, "POLL", LONG_POLL)


class Pusher(threading.Thread):
    """A pusher's dequeue in a thread of its own, as the cluster's pusher process runs it."""

    def __init__(self, broker: WakingORM):
        super().__init__(daemon=True)
        self.broker, self.result, self.ready = broker, None, threading.Event()

    def run(self) -> None:
        self.broker.doorbell()  # listening before the test queues anything
        self.ready.set()
        try:
            self.result = self.broker.dequeue()
        finally:
            connection.close()


def waiting_pusher() -> Pusher:
    pusher = Pusher(WakingORM(list_key=Conf.CLUSTER_NAME))
    pusher.start()
    assert pusher.ready.wait(10)
    return pusher


def test_a_queued_task_rings_the_waiting_pusher_once_it_commits(long_poll):
    pusher = waiting_pusher()
    with transaction.atomic():
        async_task("portal.core.task_names.__name__")
        pusher.join(1.0)
        assert pusher.is_alive()  # not yet committed: not rung
    pusher.join(10)
    assert not pusher.is_alive()
    [(_task_id, payload)] = pusher.result
    assert payload


def test_at_rest_a_poll_is_one_query_and_a_wait(settings, tmp_path, monkeypatch):
    settings.DATA_DIR = tmp_path / "data"
    monkeypatch.setattr(Conf, "POLL", 0.2)
    broker = WakingORM(list_key=Conf.CLUSTER_NAME)
    with CaptureQueriesContext(connection) as queries:
        assert broker.dequeue() is None
    assert len(queries) == 1


def test_a_pusher_that_has_stopped_is_forgotten_when_the_bell_rings(long_poll, settings):
    listeners = settings.DATA_DIR / "queue-doorbells"
    listeners.mkdir(parents=True)
    (listeners / "999999999").touch()  # no such process listens
    pusher = waiting_pusher()
    queue_broker.ring()
    pusher.join(10)
    assert not pusher.is_alive() and pusher.result is None  # rung, and nothing was queued
    assert sorted(p.name for p in listeners.iterdir()) == [str(os.getpid())]
