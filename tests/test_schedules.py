"""The portal's schedules are the table in portal.core.schedules whatever the database's past:
every migrate brings them in line with it and leaves the schedules an operator made alone. The
task paths are written once (portal.core.task_names), and each is a function a worker can run."""

import ast
import uuid
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import Schedule

from portal.core import schedules, task_names
from transfers import soon, tasks
from transfers.fetch import fetch_inbox
from transfers.models import Environment, SftpAccount

ROOT = Path(__file__).resolve().parent.parent
COPENHAGEN = ZoneInfo("Europe/Copenhagen")


def in_database() -> list[tuple]:
    return sorted(
        Schedule.objects.values_list(
            "name", "func", "schedule_type", "minutes", "repeats", "kwargs", "args", "cron"
        )
    )


def in_table() -> list[tuple]:
    return sorted(
        (entry.name, entry.task, entry.every, entry.minutes, -1, entry.kwargs, None, None)
        for entry in schedules.table()
    )


def migrate() -> None:
    call_command("migrate", verbosity=0, interactive=False)


def test_a_migrated_database_holds_exactly_the_tables_schedules(db):
    assert in_database() == in_table()
    Schedule.objects.all().delete()
    migrate()
    assert in_database() == in_table()


def test_an_emptied_database_gets_its_schedules_back(db):
    call_command("flush", verbosity=0, interactive=False)
    assert in_database() == in_table()


def test_the_daily_and_weekly_mails_first_run_in_the_danish_morning(db):
    Schedule.objects.all().delete()
    migrate()
    reminders = Schedule.objects.get(func=task_names.REMIND_RENEWALS).next_run
    digest = Schedule.objects.get(func=task_names.WEEKLY_DIGEST).next_run
    today = timezone.now().astimezone(COPENHAGEN).date()
    assert reminders.astimezone(COPENHAGEN).time() == time(6, 0)
    assert reminders.astimezone(COPENHAGEN).date() > today
    assert digest.astimezone(COPENHAGEN).time() == time(7, 0)
    assert digest.astimezone(COPENHAGEN).weekday() == 0
    assert digest.astimezone(COPENHAGEN).date() > today


# What the data migrations that made the schedules until now left in a database.
MADE_BY_THE_OLD_MIGRATIONS = [
    ("transfers: collect receipts", "transfers.tasks.collect_receipts", "I", 1),
    ("transfers: fetch inboxes", "transfers.tasks.fetch_all_inboxes", "I", 1),
    ("transfers: queue abandoned sends again", "transfers.tasks.requeue_abandoned", "I", 1),
    (
        "transfers: delete files past their retention period",
        "transfers.retention.delete_expired_files",
        "D",
        None,
    ),
    (
        "transfers: prune the task queue's history",
        "transfers.task_history.prune_task_history",
        "D",
        None,
    ),
    ("handoff: watched and delivery folders", "handoff.tasks.watch_all", "I", 1),
    ("alerts: check expected deliveries", "portal.alerts.tasks.check_expected_deliveries", "I", 15),
    ("outbox: queue abandoned mail again", "portal.outbox.tasks.requeue_abandoned", "I", 5),
    ("gdpr: reminders of declarations to be renewed", "gdpr.reminders.remind_renewals", "D", None),
    (
        "onboarding: weekly digest of overdue tasks",
        "portal.onboarding.reminders.weekly_digest",
        "W",
        None,
    ),
]


def test_a_database_migrated_before_gets_the_same_schedules_and_keeps_their_runs(db):
    Schedule.objects.all().delete()
    monday_morning = datetime(2026, 3, 2, 7, 0, tzinfo=COPENHAGEN)
    morning = datetime(2026, 3, 3, 6, 0, tzinfo=COPENHAGEN)
    for name, func, every, minutes in MADE_BY_THE_OLD_MIGRATIONS:
        next_run = {"W": monday_morning, "D": morning}.get(every, timezone.now())
        Schedule.objects.create(
            name=name, func=func, schedule_type=every, minutes=minutes, next_run=next_run
        )
    before = dict(Schedule.objects.values_list("name", "next_run"))
    ids = set(Schedule.objects.values_list("pk", flat=True))

    migrate()

    assert in_database() == in_table()
    assert set(Schedule.objects.values_list("pk", flat=True)) == ids
    assert dict(Schedule.objects.values_list("name", "next_run")) == before


def test_a_changed_setting_changes_its_schedule_at_the_next_migrate(db):
    name = "handoff: watched and delivery folders"
    with override_settings(HANDOFF_WATCH_MINUTES=3):
        migrate()
        assert Schedule.objects.get(name=name).minutes == 3
        migrate()
        assert in_database() == in_table()
    migrate()
    assert Schedule.objects.get(name=name).minutes == 1


def test_a_changed_time_of_day_moves_the_next_run(db, monkeypatch):
    name = "gdpr: reminders of declarations to be renewed"
    table = schedules.table
    monkeypatch.setattr(
        schedules,
        "table",
        lambda: [
            schedules.Entry(entry.name, entry.task, entry.every, at=time(5, 30))
            if entry.name == name
            else entry
            for entry in table()
        ],
    )
    migrate()
    next_run = Schedule.objects.get(name=name).next_run.astimezone(COPENHAGEN)
    assert next_run.time() == time(5, 30)


def test_a_schedule_changed_in_the_admin_is_put_back(db):
    name = "alerts: check expected deliveries"
    Schedule.objects.filter(name=name).update(minutes=60, func="math.floor", repeats=3)
    migrate()
    assert in_database() == in_table()


def test_a_schedule_gone_from_the_table_is_deleted(db, monkeypatch):
    gone = "transfers: fetch inboxes"
    table = schedules.table
    monkeypatch.setattr(schedules, "table", lambda: [e for e in table() if e.name != gone])
    Schedule.objects.create(name="outbox: a schedule of an older version", func="math.floor")

    migrate()

    assert not Schedule.objects.filter(name=gone).exists()
    assert not Schedule.objects.filter(name="outbox: a schedule of an older version").exists()
    assert in_database() == in_table()


def test_a_second_row_of_one_schedule_is_deleted(db):
    name = "transfers: collect receipts"
    first = Schedule.objects.get(name=name)
    Schedule.objects.create(name=name, func=task_names.COLLECT_RECEIPTS, schedule_type="I")
    migrate()
    assert list(Schedule.objects.filter(name=name).values_list("pk", flat=True)) == [first.pk]


def test_schedules_made_by_hand_or_by_a_task_are_left_alone(db):
    by_hand = [
        Schedule.objects.create(
            name="nightly extra fetch", func=task_names.FETCH_ALL_INBOXES, schedule_type="D"
        ),
        Schedule.objects.create(name=None, func="math.floor", schedule_type="I", minutes=9),
        # Not "transfers: ": an owner's name alone is no mark of the portal's.
        Schedule.objects.create(name="transfers weekly report", func="math.floor"),
        Schedule.objects.create(
            name="transfer-retry-7-1-0a1b2c3d",
            func=task_names.SEND_TRANSFER,
            args="7",
            schedule_type=Schedule.ONCE,
        ),
    ]
    kept = {row.pk: (row.name, row.func, row.schedule_type, row.minutes) for row in by_hand}

    migrate()

    rows = Schedule.objects.filter(pk__in=kept)
    assert {row.pk: (row.name, row.func, row.schedule_type, row.minutes) for row in rows} == kept


def test_every_task_path_is_a_function_a_worker_can_import():
    for path in task_names.ALL:
        assert callable(import_string(path)), path
    assert len(set(task_names.ALL)) == len(task_names.ALL)
    assert {entry.task for entry in schedules.table()} <= set(task_names.ALL)


def test_every_schedule_is_named_as_the_portals():
    for entry in schedules.table():
        owner, _, what = entry.name.partition(": ")
        assert owner in schedules.OWNERS and what, entry.name


def _product_modules() -> list[Path]:
    return [
        path
        for folder in ("portal", "transfers", "gdpr", "handoff", "bench", "scripts")
        for path in (ROOT / folder).rglob("*.py")
        if path != ROOT / "portal" / "core" / "task_names.py"
    ]


def test_no_task_path_is_written_outside_task_names():
    paths = set(task_names.ALL)
    written = [
        f"{module.relative_to(ROOT)}:{node.lineno} {node.value}"
        for module in _product_modules()
        for node in ast.walk(ast.parse(module.read_text(), str(module)))
        if isinstance(node, ast.Constant) and node.value in paths
    ]
    assert not written


@pytest.fixture
def account(system_a):
    return SftpAccount.objects.create(
        it_system=system_a,
        environment=Environment.SIMULATOR,
        username=f"alfa_{uuid.uuid4().hex[:8]}",
        host="127.0.0.1",
        key_fingerprint=f"SHA256:{uuid.uuid4().hex}",
    )


class EmptyInbox:
    def list_entries(self, path: str) -> dict:
        return {}


def test_a_fetch_clears_the_mark_its_queueing_set(
    account, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr(soon, "async_task", lambda *args, **options: queued.append(args))

    def queue_fetch() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            soon.queue_soon(tasks.FETCH_TASK, account.pk, account.key_fingerprint, group="fetch")

    queue_fetch()
    queue_fetch()
    assert len(queued) == 1  # the first is still waiting
    fetch_inbox(account.pk, session=EmptyInbox())
    queue_fetch()
    assert len(queued) == 2


def test_a_round_of_receipts_clears_the_mark_its_queueing_set(
    account, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr(soon, "async_task", lambda *args, **options: queued.append(args))

    def unreachable(account):
        raise OSError("no server in this test")

    monkeypatch.setattr(tasks, "session_for", unreachable)

    def queue_round() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            soon.queue_soon(
                tasks.RECEIPTS_TASK, account.pk, account.key_fingerprint, group="receipts"
            )

    queue_round()
    queue_round()
    assert len(queued) == 1
    tasks.collect_account_receipts(account.pk)
    queue_round()
    assert len(queued) == 2
