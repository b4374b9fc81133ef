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

from django.core.cache import cache
from django.db import transaction
from django_q.tasks import async_task

MARK_SECONDS = 10


def _mark(task: str, account_id: int, fingerprint: str) -> str:
    return f"transfers:soon:{task}:{account_id}:{fingerprint}"


def queue_soon(task: str, account_id: int, fingerprint: str, *, group: str) -> None:
    """Queue `task(account_id)` once the transaction commits, unless one is already waiting."""

    def queue() -> None:
        if cache.add(_mark(task, account_id, fingerprint), True, MARK_SECONDS):
            async_task(task, account_id, group=group)

    transaction.on_commit(queue)


def starting(task: str, account_id: int, fingerprint: str) -> None:
    """Called by the task as it starts, with its own name: what arrives from now on needs
    another one."""
    cache.delete(_mark(task, account_id, fingerprint))
