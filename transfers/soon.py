"""One task per account for work that covers all its files: a round of receipts, a fetch.

Without it a batch of 98 sends queued 98 fetches of one inbox (each a task, a session round trip
and a listing, most finding nothing, the rest racing each other for the same files), and as
many receipt rounds. With it, asking for the work (`queue_soon`) queues a task unless one will
see the new file anyway: one for the same work and account that is queued and has not started,
or one that runs. A run notes when it looks (`Run.looking`); one that ends and was asked for
after it last looked queues the next itself. So two runs of one account's work do not go side
by side, each downloading what the other does, and nothing asked for is left behind.

The marks are in the shared cache (files on the embedded default, Redis across hosts). The
queued mark is set when the task is queued and cleared when it starts; it expires after
MARK_SECONDS, so a task lost with its worker costs at most that long (and the scheduled rounds
collect and fetch anyway). The running mark names the run's host and process: on the same host
a run whose process has gone (a worker killed mid-run) holds back nothing; one on another host
keeps its mark fresh while it looks, and a run lost there holds back the next at most
RUNNING_SECONDS after it last looked. A mark is a hint, not a lock: the file cache's `add` is
not atomic, and two runs that start at once both go ahead, which the work allows for. The
account's key fingerprint is part of each mark, so a new account (or a new key) never inherits
one.

Both sides name the work by its task's constant in portal.core.task_names, and `_mark` alone
makes the marks from it: the task clears the very mark its queueing set.
"""

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterator

from django.core.cache import cache
from django.db import transaction
from django_q.conf import Conf
from django_q.tasks import async_task

from portal.core.queue_broker import AheadORM

MARK_SECONDS = 10
RUNNING_SECONDS = 60


def _mark(task: str, account_id: int, fingerprint: str) -> str:
    return f"transfers:soon:{task}:{account_id}:{fingerprint}"


def _ask(mark: str) -> None:
    # A new value each time, not a time: the clocks of hosts that share the cache may differ.
    cache.set(f"{mark}:asked", uuid.uuid4().hex, RUNNING_SECONDS)


def queue_soon(
    task: str, account_id: int, fingerprint: str, *, group: str, ahead: bool = False
) -> None:
    """Queue `task(account_id)` once the transaction commits, unless one is already waiting, or
    one runs: that one looks again, or queues the next as it ends.

    `ahead`: before the tasks already waiting (a batch's sends)."""

    def queue() -> None:
        mark = _mark(task, account_id, fingerprint)
        # Asked before the running mark is read: a run that ends meanwhile reads the ask after
        # clearing its mark, so one of the two sees the other.
        _ask(mark)
        if _held(f"{mark}:running"):
            return
        if cache.add(mark, True, MARK_SECONDS):
            options = {"broker": AheadORM(list_key=Conf.CLUSTER_NAME)} if ahead else {}
            async_task(task, account_id, group=group, **options)

    transaction.on_commit(queue)


class Run:
    """One run of the work for an account, as `running` grants it."""

    def __init__(self, mark: str):
        self._mark = mark
        self._seen = self._at_start = self._last_ask()
        self._refreshed_at = time.monotonic()

    def _last_ask(self) -> str | None:
        return cache.get(f"{self._mark}:asked")

    def looking(self) -> None:
        """Called just before the run looks (lists, reads): what was asked for until now it
        will see. Keeps the running mark fresh."""
        self._seen = self._last_ask()
        if time.monotonic() - self._refreshed_at > RUNNING_SECONDS / 4:
            cache.set(f"{self._mark}:running", _me(), RUNNING_SECONDS)
            self._refreshed_at = time.monotonic()

    def asked_since_looking(self) -> bool:
        return self._last_ask() != self._seen

    def failed(self) -> None:
        """The run stopped on an error: what it looked at may not be done, so whatever was
        asked for since it started needs the next run."""
        self._seen = self._at_start


def _me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _held(key: str) -> bool:
    """Whether a run holds the mark: one on another host until the mark expires, one on this
    host only while its process lives (a worker killed mid-run holds back nothing)."""
    holder = cache.get(key)
    if holder is None:
        return False
    host, _, pid = str(holder).rpartition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        pass  # another user's process, or a mark not written here: taken as held
    return True


def _claim(key: str) -> bool:
    if cache.add(key, _me(), RUNNING_SECONDS):
        return True
    if _held(key):
        return False
    cache.set(key, _me(), RUNNING_SECONDS)  # from a run whose process has gone
    return True


@contextlib.contextmanager
def running(task: str, account_id: int, fingerprint: str, *, group: str) -> Iterator[Run | None]:
    """Around the task's work: the Run, or None when another run of the same work for the
    account is under way, which then sees what this one was for. What arrives from the start on
    needs another look: the run's own, or the next task it queues as it ends."""
    mark = _mark(task, account_id, fingerprint)
    cache.delete(mark)
    if not _claim(f"{mark}:running"):
        # Asked before claiming again: a run that ends meanwhile reads the ask after clearing
        # its mark, so either this claim succeeds or that run queues the next.
        _ask(mark)
        if not _claim(f"{mark}:running"):
            yield None
            return
    run = Run(mark)
    try:
        yield run
    except BaseException:
        run.failed()
        raise
    finally:
        cache.delete(f"{mark}:running")
        if run.asked_since_looking():
            queue_soon(task, account_id, fingerprint, group=group)
