"""The database readied for a bulk load and settled after it, and emptied for a new fill."""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib import import_module

from django.apps import apps
from django.core.management.color import no_style
from django.db import connection, models

from portal.accounts.models import Organisation
from transfers.models import RouteTally, TransferHour

# Columns of random identifiers: an index over one of them is written all over at every row.
_RANDOM_COLUMNS = ("remote_name", "senders_file_id", "transaction_id", "file_transfer_uuid")

# What a portal keeps when it is emptied: the reference organisations (the municipalities and
# KOMBIT; vendors are deleted), the task schedules, content types, groups and permissions.
_KEPT = {
    "contenttypes.contenttype",
    "auth.permission",
    "auth.group",
    "auth.group_permissions",
    "accounts.organisation",
    "django_q.schedule",
}

# The migrations whose triggers keep counts of the transfers, and the tables they keep.
_COUNTED_BY = {
    "transfers.migrations.0011_ordered_hour_counts": TransferHour,
    "transfers.migrations.0010_route_tallies": RouteTally,
}
COUNTS = tuple(_COUNTED_BY.values())
# The migrations whose triggers keep an index of the transfers (SQLite's index of the names).
_INDEXED_BY = ("transfers.migrations.0017_transfer_name_index",)


@contextmanager
def indexes_set_aside(tables: list[str]) -> Iterator[None]:
    """On PostgreSQL: write first, index after, where that is cheaper. A foreign key checked
    row by row costs more than one join afterwards, and an index over random identifiers is
    built once faster than it is kept up to date a million times (so is a trigram index); the
    indexes over times, states and routes grow at a few places and stay. Everything comes back
    under its own name. SQLite keeps every index: there, a build reads the whole table."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        # Pending deferred checks would forbid the ALTER TABLEs; run them now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE conrelid::regclass::text = ANY(%s) "
            "AND contype IN ('f', 'u') ORDER BY contype",  # foreign keys first
            [tables],
        )
        constraints = cursor.fetchall()
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes i WHERE tablename = ANY(%s) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
            "WHERE c.conindid = format('%%I.%%I', i.schemaname, i.indexname)::regclass)",
            [tables],
        )
        indexes = [
            (name, definition)
            for name, definition in cursor.fetchall()
            if "USING gin" in definition or any(c in definition for c in _RANDOM_COLUMNS)
        ]
        for table, name, _definition in constraints:
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _definition in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
    yield
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '256MB'")
        for _name, definition in indexes:
            cursor.execute(definition)
        for table, name, definition in reversed(constraints):  # unique ones first
            cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        cursor.execute("RESET maintenance_work_mem")


@contextmanager
def counted_after() -> Iterator[None]:
    """The triggers that count transfers per hour and per route, and that index their names,
    set aside while the transfers are written, then everything counted and indexed in one pass
    and the triggers back, as their migrations do it: one count over the table costs far less
    than a trigger run for each of a million rows."""
    migrations = {import_module(name): model for name, model in _COUNTED_BY.items()}
    indexes = [import_module(name) for name in _INDEXED_BY]
    with connection.cursor() as cursor:
        for migration in [*migrations, *indexes]:
            migration.stop_watching(connection.vendor, cursor.execute)
    yield
    with connection.cursor() as cursor:
        for migration, model in migrations.items():
            cursor.execute(f"DELETE FROM {model._meta.db_table}")  # noqa: S608 - our name
            migration.count_and_watch(connection.vendor, cursor.execute)
        for migration in indexes:
            migration.count_and_watch(connection.vendor, cursor.execute)  # rebuilt from the table


def empty() -> None:
    """Empty the portal but for what `_KEPT` names: a fill starts from nothing."""
    tables = [
        model._meta.db_table
        for model in apps.get_models(include_auto_created=True)
        if model._meta.label_lower not in _KEPT and model._meta.managed
    ]
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Deferred checks still pending (inside a caller's transaction) forbid a TRUNCATE.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"TRUNCATE {', '.join(map(quote, tables))} RESTART IDENTITY")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        else:
            # SQLite checks foreign keys at commit, so the order does not matter.
            for table in tables:
                cursor.execute(f"DELETE FROM {quote(table)}")  # noqa: S608 - our names
            marks = ", ".join("?" * len(tables))
            cursor.execute(f"DELETE FROM sqlite_sequence WHERE name IN ({marks})", tables)  # noqa: S608
        Organisation.objects.filter(kind=Organisation.Kind.VENDOR).delete()


@contextmanager
def relaxed_writes() -> Iterator[None]:
    """For the fill only: PostgreSQL commits without waiting for its WAL. SQLite keeps its
    indexes in a large cache and, outside a transaction of the caller's, writes without
    waiting for the disk and with a rollback journal: new pages need no journal, where WAL
    would write the whole fill twice."""
    pragmas = (("cache_size", "-1048576"),)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET synchronous_commit = off")
        elif not connection.in_atomic_block:  # neither may change inside a transaction
            pragmas += (("synchronous", "OFF"), ("journal_mode", "DELETE"))
        before = {}
        for pragma, value in pragmas if connection.vendor == "sqlite" else ():
            cursor.execute(f"PRAGMA {pragma}")
            before[pragma] = cursor.fetchone()[0]
            cursor.execute(f"PRAGMA {pragma} = {value}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("RESET synchronous_commit")
            for pragma, value in before.items():
                cursor.execute(f"PRAGMA {pragma} = {value}")


def settle(written: Iterable[type[models.Model]]) -> None:
    """Sequences past the ids written, and on PostgreSQL the statistics and visibility map that
    autovacuum would soon gather after a bulk load (index-only scans rely on the latter)."""
    written = list(written)
    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), written):
            cursor.execute(statement)
        if connection.vendor == "postgresql":
            command = "ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)"
            tables = ", ".join(model._meta.db_table for model in written)
            cursor.execute(f"{command} {tables}")
