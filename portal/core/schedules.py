"""The portal's periodic tasks in one table, and the database's django-q2 schedules kept to it.

After every `migrate` (and `flush`) `bring_in_line` runs (portal.core.apps): a schedule of the
table that is missing is created, one that differs from its row is changed, and one of the
portal's that is no longer in the table is deleted. A database migrated long ago thus ends with
the same schedules as a new one, and a schedule is changed by changing its row, not by a
migration that would freeze its task's path.

The portal's schedules are told apart by their names, "<owner>: <what it does>" with one of
OWNERS. Any other schedule is left alone: one an operator makes in the admin under a name of
their own, and the one-off retries the tasks make ("transfer-retry-…", "outbox-retry-…"). A
change made in the admin to one of the portal's schedules lasts until the next migrate; what an
operator may tune is a setting (HANDOFF_WATCH_MINUTES).
"""

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from functools import reduce
from operator import or_
from zoneinfo import ZoneInfo

from django.apps import apps as global_apps
from django.apps.registry import Apps
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Model, Q
from django.utils import timezone

from portal.core import task_names

# Prefixes of the portal's schedule names. An owner stays here after its last row is gone, so
# that its schedules are still recognised as the portal's, and deleted.
OWNERS = ("alerts", "gdpr", "handoff", "onboarding", "outbox", "transfers")
# django-q2's schedule types, as stored (django_q.models.Schedule).
MINUTES, DAILY, WEEKLY = "I", "D", "W"
DANISH_TIME = ZoneInfo("Europe/Copenhagen")


@dataclass(frozen=True)
class Entry:
    name: str
    task: str
    every: str
    minutes: int | None = None
    # A daily or weekly run at this Danish time of day (and on this weekday, Monday 0); without
    # it, a new schedule first runs at once and then every day or week from then.
    at: time | None = None
    weekday: int | None = None
    # As django-q2 reads them: "days=30, dry_run=False".
    kwargs: str | None = None

    @property
    def fields(self) -> dict[str, object]:
        """What the schedule's row must hold; its next run is looked after on its own."""
        return {
            "func": self.task,
            "schedule_type": self.every,
            "minutes": self.minutes,
            "kwargs": self.kwargs,
            "args": None,
            "cron": None,
            "repeats": -1,
        }

    def keeps_time(self, next_run: datetime | None) -> bool:
        if next_run is None:
            return False
        if self.at is None:
            return True
        local = next_run.astimezone(DANISH_TIME)
        on_day = self.weekday is None or local.weekday() == self.weekday
        return on_day and local.time() == self.at

    def first_run(self, now: datetime) -> datetime:
        """The next run at the entry's time (from tomorrow on), or now when it has none."""
        if self.at is None:
            return now
        day = now.astimezone(DANISH_TIME).date() + timedelta(days=1)
        while self.weekday is not None and day.weekday() != self.weekday:
            day += timedelta(days=1)
        return datetime.combine(day, self.at, tzinfo=DANISH_TIME)


def table() -> list[Entry]:
    """The portal's schedules, read when they are brought in line, so that settings count."""
    return [
        # Every minute: the receipts, fetches and abandoned sends that nothing queued sooner.
        Entry("transfers: collect receipts", task_names.COLLECT_RECEIPTS, MINUTES, minutes=1),
        Entry("transfers: fetch inboxes", task_names.FETCH_ALL_INBOXES, MINUTES, minutes=1),
        Entry(
            "transfers: queue abandoned sends again",
            task_names.REQUEUE_ABANDONED_SENDS,
            MINUTES,
            minutes=1,
        ),
        Entry(
            "transfers: delete files past their retention period",
            task_names.DELETE_EXPIRED_FILES,
            DAILY,
        ),
        Entry("transfers: prune the task queue's history", task_names.PRUNE_TASK_HISTORY, DAILY),
        # django-q2's scheduler looks at its schedules every 30 seconds, so a minute is the
        # shortest interval; `manage.py watch_folders` loops every few seconds instead.
        Entry(
            "handoff: watched and delivery folders",
            task_names.WATCH_FOLDERS,
            MINUTES,
            minutes=settings.HANDOFF_WATCH_MINUTES,
        ),
        Entry(
            "alerts: check expected deliveries",
            task_names.CHECK_EXPECTED_DELIVERIES,
            MINUTES,
            minutes=15,
        ),
        Entry(
            "outbox: queue abandoned mail again",
            task_names.REQUEUE_ABANDONED_MAIL,
            MINUTES,
            minutes=5,
        ),
        # Every morning, before the day's sends.
        Entry(
            "gdpr: reminders of declarations to be renewed",
            task_names.REMIND_RENEWALS,
            DAILY,
            at=time(6, 0),
        ),
        # Monday morning, when the week's work is planned.
        Entry(
            "onboarding: weekly digest of overdue tasks",
            task_names.WEEKLY_DIGEST,
            WEEKLY,
            at=time(7, 0),
            weekday=0,
        ),
    ]


@dataclass
class Changes:
    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def bring_in_line(schedule_model: type[Model], *, using: str = DEFAULT_DB_ALIAS) -> Changes:
    """Make the portal's schedules in the database those of `table()`. `schedule_model` is
    django-q2's Schedule, as the migration state that has just been reached knows it."""
    entries = {entry.name: entry for entry in table()}
    owned = reduce(or_, (Q(name__startswith=f"{owner}: ") for owner in OWNERS))
    schedules = schedule_model._default_manager.using(using)
    changes = Changes()
    seen: set[str] = set()
    for row in schedules.filter(owned).order_by("pk"):
        entry = entries.get(row.name)
        if entry is None or row.name in seen:
            # Gone from the table, or a second row of one name (the first one stays).
            row.delete()
            changes.deleted.append(row.name)
            continue
        seen.add(row.name)
        wanted = entry.fields
        differs = [name for name, value in wanted.items() if getattr(row, name) != value]
        for name in differs:
            setattr(row, name, wanted[name])
        if not entry.keeps_time(row.next_run):
            row.next_run = entry.first_run(timezone.now())
            differs.append("next_run")
        if differs:
            row.save(update_fields=differs)
            changes.changed.append(row.name)
    for entry in entries.values():
        if entry.name not in seen:
            schedules.create(
                name=entry.name, next_run=entry.first_run(timezone.now()), **entry.fields
            )
            changes.created.append(entry.name)
    return changes


def after_migrate(
    sender, *, apps: Apps = global_apps, using: str = DEFAULT_DB_ALIAS, verbosity: int = 1, **kwargs
) -> None:
    """post_migrate, sent once for django_q: its Schedule is read from the state `migrate` has
    just reached, which has none when django_q was migrated back to zero. `flush` sends it
    too, without a state: the schedules come back with the emptied database's other rows."""
    try:
        schedule_model = apps.get_model("django_q", "Schedule")
    except LookupError:
        return
    changes = bring_in_line(schedule_model, using=using)
    if verbosity >= 2:
        for verb, names in vars(changes).items():
            for name in names:
                print(f"Schedule {verb}: {name}")
