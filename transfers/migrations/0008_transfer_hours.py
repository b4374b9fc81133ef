"""Transfers per hour and state, kept by the database: the day charts of a user who sees every
transfer read a month of hours (at most 720 × 6 rows) instead of counting a month of transfers
(80,000 at a million a year, 100-250 ms).

Triggers keep the counts, so every way a transfer is written counts: the ORM's save, update and
bulk_create, the workers' conditional updates, retention's deletes, a query typed by hand. An
update counts only when the state, queued_at or size changes: heartbeats cost nothing. The hour
is queued_at truncated to the hour in UTC, the same on both databases (SQLite holds UTC text).
"""

from django.db import migrations, models

SQLITE_HOUR = "substr({row}.queued_at, 1, 13) || ':00:00'"
POSTGRES_HOUR = "date_trunc('hour', {row}.queued_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"

# Counted in: one more transfer in the row's hour and state.
_COUNT_IN = """
INSERT INTO transfers_transferhour (hour, state, count, bytes)
VALUES ({hour}, NEW.state, 1, NEW.size)
ON CONFLICT (hour, state) DO UPDATE
SET count = transfers_transferhour.count + 1,
    bytes = transfers_transferhour.bytes + excluded.bytes;
"""
# Counted out: the row was there (inserted after this migration, or counted by its backfill).
_COUNT_OUT = """
UPDATE transfers_transferhour SET count = count - 1, bytes = bytes - OLD.size
WHERE hour = {hour} AND state = OLD.state;
"""
_CHANGED = (
    "OLD.state IS DISTINCT FROM NEW.state OR OLD.queued_at IS DISTINCT FROM NEW.queued_at "
    "OR OLD.size IS DISTINCT FROM NEW.size"
)

SQLITE_TRIGGERS = [
    "CREATE TRIGGER transfer_hour_insert AFTER INSERT ON transfers_transfer BEGIN"
    + _COUNT_IN.format(hour=SQLITE_HOUR.format(row="NEW"))
    + "END",
    "CREATE TRIGGER transfer_hour_update AFTER UPDATE OF state, queued_at, size "
    f"ON transfers_transfer WHEN {_CHANGED.replace('IS DISTINCT FROM', 'IS NOT')} BEGIN"
    + _COUNT_OUT.format(hour=SQLITE_HOUR.format(row="OLD"))
    + _COUNT_IN.format(hour=SQLITE_HOUR.format(row="NEW"))
    + "END",
    "CREATE TRIGGER transfer_hour_delete AFTER DELETE ON transfers_transfer BEGIN"
    + _COUNT_OUT.format(hour=SQLITE_HOUR.format(row="OLD"))
    + "END",
]
POSTGRES_TRIGGERS = [
    "CREATE FUNCTION transfer_hour_count() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF TG_OP IN ('UPDATE', 'DELETE') THEN"
    + _COUNT_OUT.format(hour=POSTGRES_HOUR.format(row="OLD"))
    + "END IF; IF TG_OP IN ('INSERT', 'UPDATE') THEN"
    + _COUNT_IN.format(hour=POSTGRES_HOUR.format(row="NEW"))
    + "END IF; RETURN NULL; END $$",
    "CREATE TRIGGER transfer_hour_insert AFTER INSERT ON transfers_transfer "
    "FOR EACH ROW EXECUTE FUNCTION transfer_hour_count()",
    "CREATE TRIGGER transfer_hour_update AFTER UPDATE OF state, queued_at, size "
    f"ON transfers_transfer FOR EACH ROW WHEN ({_CHANGED}) EXECUTE FUNCTION transfer_hour_count()",
    "CREATE TRIGGER transfer_hour_delete AFTER DELETE ON transfers_transfer "
    "FOR EACH ROW EXECUTE FUNCTION transfer_hour_count()",
]
BACKFILL = """
INSERT INTO transfers_transferhour (hour, state, count, bytes)
SELECT {hour}, t.state, COUNT(*), SUM(t.size) FROM transfers_transfer t GROUP BY 1, 2
"""


def count_and_watch(vendor: str, execute) -> None:
    """Count the transfers there are, then watch every change (bench.scale calls this too,
    after a bulk load written with the triggers set aside)."""
    postgres = vendor == "postgresql"
    hour = (POSTGRES_HOUR if postgres else SQLITE_HOUR).format(row="t")
    # Counted and watched in one transaction: no transfer written in between is missed.
    execute(BACKFILL.format(hour=hour))
    for statement in POSTGRES_TRIGGERS if postgres else SQLITE_TRIGGERS:
        execute(statement)


def stop_watching(vendor: str, execute) -> None:
    postgres = vendor == "postgresql"
    on_table = " ON transfers_transfer" if postgres else ""
    for name in ("insert", "update", "delete"):
        execute(f"DROP TRIGGER IF EXISTS transfer_hour_{name}{on_table}")
    if postgres:
        execute("DROP FUNCTION IF EXISTS transfer_hour_count()")


def add_triggers(apps, schema_editor):
    count_and_watch(schema_editor.connection.vendor, schema_editor.execute)


def remove_triggers(apps, schema_editor):
    stop_watching(schema_editor.connection.vendor, schema_editor.execute)


class Migration(migrations.Migration):
    dependencies = [("transfers", "0007_scale_indexes")]

    operations = [
        migrations.CreateModel(
            name="TransferHour",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("hour", models.DateTimeField(verbose_name="hour")),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("queued", "Queued"),
                            ("sending", "Sending"),
                            ("sent", "Sent"),
                            ("delivered", "Delivered"),
                            ("failed", "Failed"),
                            ("cancelled", "Cancelled"),
                        ],
                        max_length=16,
                        verbose_name="state",
                    ),
                ),
                ("count", models.BigIntegerField(default=0, verbose_name="transfers")),
                ("bytes", models.BigIntegerField(default=0, verbose_name="bytes")),
            ],
            options={
                "verbose_name": "transfers in an hour",
                "verbose_name_plural": "transfers per hour",
                "constraints": [
                    models.UniqueConstraint(fields=("hour", "state"), name="transfer_hour_state")
                ],
            },
        ),
        migrations.RunPython(add_triggers, remove_triggers),
    ]
