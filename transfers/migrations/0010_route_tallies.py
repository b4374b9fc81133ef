"""Transfers per route and state, kept by the database: the municipal review shows each route's
totals from one row per state instead of counting every transfer the route ever carried (15,000
rows for a busy municipality at a million transfers, more every year).

As for the hourly counts (0008), triggers keep them, so every way a transfer is written counts;
an update counts only when the state or the route changes. On PostgreSQL an update moves both
counts in one statement, in the order of their keys: two transfers of a route crossing between
two states at the same moment (a claim beside a retry) otherwise each held one count the other
waited for, a deadlock (0011 does the same for the hourly counts).
"""

import django.db.models.deletion
from django.db import migrations, models

_COUNT_IN = """
INSERT INTO transfers_routetally (route_id, state, count) VALUES (NEW.route_id, NEW.state, 1)
ON CONFLICT (route_id, state) DO UPDATE SET count = transfers_routetally.count + 1;
"""
_COUNT_OUT = """
UPDATE transfers_routetally SET count = count - 1
WHERE route_id = OLD.route_id AND state = OLD.state;
"""
_CHANGED = "OLD.state IS DISTINCT FROM NEW.state OR OLD.route_id IS DISTINCT FROM NEW.route_id"

SQLITE_TRIGGERS = [
    f"CREATE TRIGGER route_tally_insert AFTER INSERT ON transfers_transfer BEGIN {_COUNT_IN} END",
    "CREATE TRIGGER route_tally_update AFTER UPDATE OF state, route_id ON transfers_transfer "
    f"WHEN {_CHANGED.replace('IS DISTINCT FROM', 'IS NOT')} BEGIN {_COUNT_OUT} {_COUNT_IN} END",
    f"CREATE TRIGGER route_tally_delete AFTER DELETE ON transfers_transfer BEGIN {_COUNT_OUT} END",
]
_MOVE = """
INSERT INTO transfers_routetally (route_id, state, count)
SELECT * FROM (VALUES (OLD.route_id, OLD.state, -1), (NEW.route_id, NEW.state, 1))
AS move (route_id, state, change) ORDER BY route_id, state
ON CONFLICT (route_id, state) DO UPDATE SET count = transfers_routetally.count + excluded.count;
"""
POSTGRES_TRIGGERS = [
    "CREATE FUNCTION route_tally_count() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"IF TG_OP = 'INSERT' THEN {_COUNT_IN} ELSIF TG_OP = 'DELETE' THEN {_COUNT_OUT} "
    f"ELSE {_MOVE} END IF; RETURN NULL; END $$",
    "CREATE TRIGGER route_tally_insert AFTER INSERT ON transfers_transfer "
    "FOR EACH ROW EXECUTE FUNCTION route_tally_count()",
    "CREATE TRIGGER route_tally_update AFTER UPDATE OF state, route_id ON transfers_transfer "
    f"FOR EACH ROW WHEN ({_CHANGED}) EXECUTE FUNCTION route_tally_count()",
    "CREATE TRIGGER route_tally_delete AFTER DELETE ON transfers_transfer "
    "FOR EACH ROW EXECUTE FUNCTION route_tally_count()",
]
BACKFILL = """
INSERT INTO transfers_routetally (route_id, state, count)
SELECT route_id, state, COUNT(*) FROM transfers_transfer GROUP BY 1, 2
"""


def count_and_watch(vendor: str, execute) -> None:
    """Count the transfers there are, then watch every change (bench.scale calls this too,
    after a bulk load written with the triggers set aside)."""
    # Counted and watched in one transaction: no transfer written in between is missed.
    execute(BACKFILL)
    for statement in POSTGRES_TRIGGERS if vendor == "postgresql" else SQLITE_TRIGGERS:
        execute(statement)


def stop_watching(vendor: str, execute) -> None:
    postgres = vendor == "postgresql"
    on_table = " ON transfers_transfer" if postgres else ""
    for name in ("insert", "update", "delete"):
        execute(f"DROP TRIGGER IF EXISTS route_tally_{name}{on_table}")
    if postgres:
        execute("DROP FUNCTION IF EXISTS route_tally_count()")


def add_triggers(apps, schema_editor):
    count_and_watch(schema_editor.connection.vendor, schema_editor.execute)


def remove_triggers(apps, schema_editor):
    stop_watching(schema_editor.connection.vendor, schema_editor.execute)


class Migration(migrations.Migration):
    dependencies = [("transfers", "0009_task_history_schedule")]

    operations = [
        migrations.CreateModel(
            name="RouteTally",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
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
                (
                    "route",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="tallies",
                        to="transfers.route",
                        verbose_name="route",
                    ),
                ),
            ],
            options={
                "verbose_name": "transfers on a route",
                "verbose_name_plural": "transfers per route",
                "constraints": [
                    models.UniqueConstraint(fields=("route", "state"), name="route_tally_state")
                ],
            },
        ),
        migrations.RunPython(add_triggers, remove_triggers),
    ]
