"""The task queue's history: successes pruned by age by a daily task, failures kept, and no
pruning by django-q2 itself (it read every kept success each time a task ended)."""

import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from django_q.models import Schedule, Task

from transfers import task_history

pytestmark = pytest.mark.django_db


def task(days_ago: float, *, success: bool = True) -> Task:
    stopped = timezone.now() - timedelta(days=days_ago)
    return Task.objects.create(
        id=uuid.uuid4().hex,
        name=uuid.uuid4().hex[:20],
        func="transfers.tasks.send_transfer",
        args=(1,),
        started=stopped - timedelta(seconds=1),
        stopped=stopped,
        success=success,
    )


def test_successes_older_than_the_history_go_and_the_rest_stays(monkeypatch):
    monkeypatch.setattr(task_history, "BATCH", 2)  # more than one batch
    days = settings.TASK_HISTORY_DAYS
    old = [task(days + 1) for _ in range(5)]
    recent = task(days - 1)
    failed = task(days + 30, success=False)
    assert task_history.prune_task_history() == len(old)
    assert set(Task.objects.values_list("pk", flat=True)) == {recent.pk, failed.pk}
    assert task_history.prune_task_history() == 0


def test_django_q2_keeps_every_success_and_the_pruning_is_scheduled_daily():
    assert settings.Q_CLUSTER["save_limit"] == 0
    schedule = Schedule.objects.get(func="transfers.task_history.prune_task_history")
    assert (schedule.schedule_type, schedule.repeats) == (Schedule.DAILY, -1)
