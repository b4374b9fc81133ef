"""django-q2's database queue, with a doorbell: a task queued on this host is taken at once.

The ORM broker looks for tasks every Q_CLUSTER `poll` seconds and sleeps in between, so a click
on "send" waited up to that long in the queue, and the fetch its delivery queues as long again.
Here each cluster's pusher waits on a socket of its own for the same interval instead of
sleeping, and whatever queues a task on this host (a page, the API, a worker queueing a fetch)
rings every waiting pusher once the task's transaction has committed. At rest the database is
asked exactly as often as before. A cluster on another host is not rung and finds the task at
its next poll, as before; a ring that goes astray costs nothing but that.

The doorbells are Linux abstract Unix sockets (no file to clean up, no path length limit),
named after the data folder and the pusher's process id; a folder under the data folder lists
the pushers that listen, so that the ringer knows whom to ring.

Tasks are taken in the order they fell due (a queued task's `lock` is when it was queued), through
an index of the portal's own on django-q2's table. A task queued ahead (`AheadORM`) is due from
long before any other, so the next free worker takes it before the sends that wait: a batch of
sends queues a hundred tasks at once, and the fetch of what they deliver would otherwise wait
until every one of them had run.
"""

import contextlib
import hashlib
import os
import select
import socket
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ

# When a task queued ahead fell due: before any other task can have.
AHEAD = datetime(2000, 1, 1, tzinfo=UTC)


def _listeners() -> Path:
    return Path(settings.DATA_DIR) / "queue-doorbells"


def _address(pid: int) -> bytes:
    folder = hashlib.sha256(str(Path(settings.DATA_DIR).resolve()).encode()).hexdigest()[:16]
    return f"\0fdd-portal-queue-{folder}-{pid}".encode()


class Doorbell:
    """One pusher's socket: rung by whoever queues a task, waited on between polls."""

    def __init__(self):
        self.pid = os.getpid()
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(_address(self.pid))
        self.socket.setblocking(False)
        _listeners().mkdir(parents=True, exist_ok=True)
        (_listeners() / str(self.pid)).touch()

    def wait(self, seconds: float) -> bool:
        """Wait until rung or `seconds` have passed; whether it was rung. Rings that came
        meanwhile are all answered by the one look at the queue that follows."""
        rung, _, _ = select.select([self.socket], [], [], seconds)
        with contextlib.suppress(BlockingIOError):
            while self.socket.recv(16):
                pass
        return bool(rung)

    def close(self) -> None:
        (_listeners() / str(self.pid)).unlink(missing_ok=True)
        self.socket.close()


def ring() -> None:
    """Ring every pusher listening on this host; forget those that have gone."""
    try:
        pids = [int(entry.name) for entry in os.scandir(_listeners()) if entry.name.isdigit()]
    except FileNotFoundError:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as bell:
        bell.setblocking(False)
        for pid in pids:
            try:
                bell.sendto(b"!", _address(pid))
            except (ConnectionRefusedError, FileNotFoundError):
                (_listeners() / str(pid)).unlink(missing_ok=True)  # a pusher that has stopped
            except BlockingIOError:
                pass  # rung already and not yet answered: one ring is enough


class WakingORM(ORM):
    """The ORM broker, rung when a task is queued instead of sleeping out its poll, and taken
    in the order the tasks fell due (django-q2's own takes whichever row the database finds
    first)."""

    _doorbell: Doorbell | None = None

    def enqueue(self, task) -> int:
        key = self.list_key or Conf.CLUSTER_NAME
        package = self.get_connection().create(key=key, payload=task, lock=self.due())
        transaction.on_commit(ring, using=Conf.ORM)
        return package.pk

    def due(self):
        return timezone.now()

    def dequeue(self):
        """The tasks due, claimed; else a wait of up to `poll` seconds, and, if rung meanwhile,
        the tasks due then."""
        tasks = self._claim()
        if tasks is None and self.doorbell().wait(Conf.POLL):
            tasks = self._claim()
        return tasks

    def _claim(self) -> list | None:
        due = self.get_connection().filter(key=self.list_key, lock__lt=timezone.now())
        tasks = list(due.order_by("lock", "id")[: Conf.BULK])
        if not tasks:
            return None
        return [
            (task.pk, task.payload)
            for task in tasks
            # Another cluster may claim a task first: only one update matches its lock.
            if self.get_connection()
            .filter(id=task.id, lock=task.lock)
            .update(lock=self.timeout(task))
        ]

    def doorbell(self) -> Doorbell:
        # Made in the process that waits on it: the broker is made before the pusher forks.
        if self._doorbell is None or self._doorbell.pid != os.getpid():
            self._doorbell = Doorbell()
        return self._doorbell


class AheadORM(WakingORM):
    """Queues a task ahead of those waiting: due since long before any of them. For short work
    that finishes what is under way, such as the fetch of files being sent (transfers.soon)."""

    def due(self):
        return AHEAD


def others_wait() -> bool:
    """Whether a task waits for a worker: more tasks queued or running than this host's workers
    (a task claimed by a worker stays in the queue until it has run)."""
    return OrmQ.objects.using(Conf.ORM).filter(key=Conf.CLUSTER_NAME).count() > Conf.WORKERS


def keep_order_index(**_kwargs) -> None:
    """After every migrate: the index that takes the queue in order of when tasks fell due. Made
    here rather than by a migration because django-q2 owns the table, and on SQLite a table it
    alters is rebuilt without the indexes it does not know."""
    with connections[Conf.ORM].cursor() as cursor:
        cursor.execute(
            'CREATE INDEX IF NOT EXISTS fdd_ormq_due ON django_q_ormq ("key", "lock", "id")'
        )
