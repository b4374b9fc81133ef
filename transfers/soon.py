"""One queued task per account for work that covers all its files: a round of receipts, a fetch.

Without it a batch of 98 sends queued 98 fetches of one inbox (each a task, a session round trip
and a listing, most finding nothing, the rest racing each other for the same files), and as
many receipt rounds. With it: a task is queued unless one for the same work and account is
queued and has not started, since that one will see this file too.

The mark is in the shared cache (files on the embedded default, Redis across hosts), set when
the task is queued and cleared when it starts: from then on a new file needs a new task. It
expires after MARK_SECONDS, so a task lost with its worker costs at most that long (and the
scheduled rounds collect and fetch anyway); a mark that expires while its task still waits
only lets a second one be queued. The account's key fingerprint is part of the mark, so a new
account (or a new key) never inherits one.

Both sides name the work by its task's constant in portal.core.task_names, and `_mark` alone
makes the mark from it: the task clears the very mark its queueing set.
"""

import contextlib
from collections.abc import Iterator

from django.core.cache import cache
from django.db import transaction
from django_q.conf import Conf
from django_q.tasks import async_task

from portal.core.queue_broker import AheadORM

MARK_SECONDS = 10
# How long a task that has started counts as running, for `ahead` (a hint, not a lock): past
# it, a fetch that follows a long batch of arrivals may get a twin, which costs only its look.
RUNNING_SECONDS = 60


def _mark(task: str, account_id: int, fingerprint: str) -> str:
    return f"transfers:soon:{task}:{account_id}:{fingerprint}"


def queue_soon(
    task: str, account_id: int, fingerprint: str, *, group: str, ahead: bool = False
) -> None:
    """Queue `task(account_id)` once the transaction commits, unless one is already waiting.

    `ahead`: before the tasks already waiting (a batch's sends), unless one is running for the
    account: then the new one waits its turn behind them instead of running beside it."""

    def queue() -> None:
        mark = _mark(task, account_id, fingerprint)
        if cache.add(mark, True, MARK_SECONDS):
            first = ahead and not cache.get(f"{mark}:running")
            options = {"broker": AheadORM(list_key=Conf.CLUSTER_NAME)} if first else {}
            async_task(task, account_id, group=group, **options)

    transaction.on_commit(queue)


@contextlib.contextmanager
def running(task: str, account_id: int, fingerprint: str) -> Iterator[None]:
    """Around the task's work, with its own name: what arrives from its start on needs another
    one, and while it runs another is queued behind the waiting tasks, not ahead of them."""
    mark = _mark(task, account_id, fingerprint)
    cache.delete(mark)
    cache.set(f"{mark}:running", True, RUNNING_SECONDS)
    try:
        yield
    finally:
        cache.delete(f"{mark}:running")
