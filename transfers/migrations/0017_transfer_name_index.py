"""On SQLite, an index of the transfers' names by trigrams (FTS5), so that a search for part of
a name reads the few transfers that contain it instead of the whole table (seconds at a million
rows). PostgreSQL has had its trigram indexes since 0007.

The index holds no copy of the names (`content` is the transfers table) and triggers keep it:
every insert, every change of either name and every delete, however the row is written. The
list still applies its own test of each name to what the index finds (`list_filters.search`):
the index folds the case of every letter, SQLite's LIKE only of ASCII ones, so the index finds
a few more and never fewer.

A table rebuilt by a later migration on SQLite loses its triggers, these too: mind the model
comments on `Transfer`.
"""

from django.db import migrations

TABLE = "transfer_names"
_INDEXED = "(rowid, original_name, remote_name)"
_ADD = f"INSERT INTO {TABLE} {_INDEXED} VALUES (NEW.id, NEW.original_name, NEW.remote_name);"
# An external-content index is told what it held: the old names, to take them out again.
_TAKE_OUT = (
    f"INSERT INTO {TABLE} ({TABLE}, rowid, original_name, remote_name) "
    "VALUES ('delete', OLD.id, OLD.original_name, OLD.remote_name);"
)
SQLITE_TABLE = (
    f"CREATE VIRTUAL TABLE {TABLE} USING fts5(original_name, remote_name, "
    "content='transfers_transfer', content_rowid='id', tokenize='trigram')"
)
SQLITE_TRIGGERS = [
    f"CREATE TRIGGER {TABLE}_insert AFTER INSERT ON transfers_transfer BEGIN {_ADD} END",
    f"CREATE TRIGGER {TABLE}_update AFTER UPDATE OF original_name, remote_name, id "
    f"ON transfers_transfer BEGIN {_TAKE_OUT} {_ADD} END",
    f"CREATE TRIGGER {TABLE}_delete AFTER DELETE ON transfers_transfer BEGIN {_TAKE_OUT} END",
]


def count_and_watch(vendor: str, execute) -> None:
    """Index the names there are, then watch every change (bench.scale calls this too, after a
    bulk load written with the triggers set aside)."""
    if vendor != "sqlite":
        return
    execute(f"INSERT INTO {TABLE} ({TABLE}) VALUES ('rebuild')")
    for statement in SQLITE_TRIGGERS:
        execute(statement)


def stop_watching(vendor: str, execute) -> None:
    if vendor != "sqlite":
        return
    for name in ("insert", "update", "delete"):
        execute(f"DROP TRIGGER IF EXISTS {TABLE}_{name}")


def add_index(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return  # PostgreSQL searches through its trigram indexes (0007)
    schema_editor.execute(SQLITE_TABLE)
    count_and_watch("sqlite", schema_editor.execute)


def remove_index(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    stop_watching("sqlite", schema_editor.execute)
    schema_editor.execute(f"DROP TABLE IF EXISTS {TABLE}")


class Migration(migrations.Migration):
    dependencies = [("transfers", "0016_waiting_and_no_receipt")]

    operations = [migrations.RunPython(add_index, remove_index)]
