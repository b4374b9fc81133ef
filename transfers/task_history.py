"""The task queue's record of successful tasks, pruned by age (settings.TASK_HISTORY_DAYS).

django-q2 keeps a record of every task that ended. Its own pruning (`save_limit`) reads every
kept success each time a task ends, so it is off; this scheduled task deletes the old ones in
batches instead. Failed tasks stay: they are few, and someone should look at each.
"""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django_q.models import Success

BATCH = 1000


def prune_task_history() -> int:
    """Scheduled daily: delete the successes older than TASK_HISTORY_DAYS; how many went."""
    cutoff = timezone.now() - timedelta(days=settings.TASK_HISTORY_DAYS)
    old = Success.objects.filter(stopped__lt=cutoff)
    deleted = 0
    while ids := list(old.values_list("pk", flat=True)[:BATCH]):
        deleted += Success.objects.filter(pk__in=ids).delete()[0]
    return deleted
