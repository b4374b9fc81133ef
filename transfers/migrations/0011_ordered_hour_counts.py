"""The hourly counts' trigger on PostgreSQL moves a transfer's count from its old hour and state
to its new ones in one statement, in the order of their keys. As two updates, two transfers of
one hour crossing between two states at the same moment (a claim beside a retry) each held one
count the other waited for: a deadlock, and one of the writes failed. SQLite has one writer at
a time and keeps its triggers.
"""

from importlib import import_module

from django.db import migrations

hours = import_module("transfers.migrations.0008_transfer_hours")

_OLD_HOUR = hours.POSTGRES_HOUR.format(row="OLD")
_NEW_HOUR = hours.POSTGRES_HOUR.format(row="NEW")
ORDERED_FUNCTION = f"""
CREATE OR REPLACE FUNCTION transfer_hour_count() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
IF TG_OP = 'INSERT' THEN {hours._COUNT_IN.format(hour=_NEW_HOUR)}
ELSIF TG_OP = 'DELETE' THEN {hours._COUNT_OUT.format(hour=_OLD_HOUR)}
ELSIF ({_OLD_HOUR}, OLD.state) = ({_NEW_HOUR}, NEW.state) THEN
UPDATE transfers_transferhour SET bytes = bytes - OLD.size + NEW.size
WHERE hour = {_NEW_HOUR} AND state = NEW.state;
ELSE
INSERT INTO transfers_transferhour (hour, state, count, bytes)
SELECT * FROM (VALUES ({_OLD_HOUR}, OLD.state, -1, -OLD.size), ({_NEW_HOUR}, NEW.state, 1, NEW.size))
AS move (hour, state, count, bytes) ORDER BY hour, state
ON CONFLICT (hour, state) DO UPDATE
SET count = transfers_transferhour.count + excluded.count,
    bytes = transfers_transferhour.bytes + excluded.bytes;
END IF; RETURN NULL; END $$
"""
# 0008's function, for going back.
UNORDERED_FUNCTION = hours.POSTGRES_TRIGGERS[0].replace(
    "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1
)


def count_and_watch(vendor: str, execute) -> None:
    """0008's counting and triggers, with the ordered function (bench.scale calls this)."""
    hours.count_and_watch(vendor, execute)
    if vendor == "postgresql":
        execute(ORDERED_FUNCTION)


stop_watching = hours.stop_watching


def order(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(ORDERED_FUNCTION)


def unorder(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(UNORDERED_FUNCTION)


class Migration(migrations.Migration):
    dependencies = [("transfers", "0010_route_tallies")]

    operations = [migrations.RunPython(order, unorder)]
