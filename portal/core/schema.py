"""Refuse a database that a newer version of the portal has migrated.

Restoring a newer portal's backup under an older checkout would otherwise half-work: Django's
`migrate` says nothing about applied migrations it has no file for, and the older code then
reads and writes tables whose columns and rules it does not know. This system check compares
the database's `django_migrations` with the migration files of the portal's own apps and
stops with one message naming the migrations it does not know.

It is tagged `database`, so it runs where a database is named: `migrate` runs it before it
touches anything, and `manage.py check --database default` runs it alone. Third-party apps
are left out: their migrations come with their pinned versions, and a removed app leaves rows
that mean nothing newer.
"""

from collections.abc import Iterable
from pathlib import Path

from django.apps import AppConfig, apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register
from django.db import DatabaseError, connections
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

NEWER_SCHEMA = "core.E001"


def own_apps() -> list[AppConfig]:
    """The portal's apps: those whose code lies in the project, not in an installed package."""
    base = Path(settings.BASE_DIR).resolve()
    return [
        app
        for app in apps.get_app_configs()
        if Path(app.path).resolve().is_relative_to(base)
        and not {"site-packages", "dist-packages"} & set(Path(app.path).parts)
    ]


def unknown_migrations(alias: str = "default") -> list[tuple[str, str]]:
    """(app label, name) of each migration of the portal's own apps that the database records
    as applied and this code has no file for, sorted."""
    recorder = MigrationRecorder(connections[alias])
    if not recorder.has_table():
        return []  # a new, empty database: nothing applied at all
    applied = recorder.applied_migrations()
    loader = MigrationLoader(None, load=False)
    loader.load_disk()
    known = set(loader.disk_migrations)
    for migration in loader.disk_migrations.values():
        # A squashed migration stands for the ones it replaced, whose files may be gone.
        known.update(migration.replaces)
    labels = {app.label for app in own_apps()}
    return sorted(key for key in applied if key[0] in labels and key not in known)


def newer_schema(alias: str = "default") -> str:
    """Why the portal must not run on this database, or "" when a newer portal did not
    migrate it."""
    unknown = unknown_migrations(alias)
    if not unknown:
        return ""
    names = ", ".join(f"{app}.{name}" for app, name in unknown)
    return (
        f"The database was migrated by a newer version of the portal ({names}); "
        "run that version or restore a matching backup."
    )


@register(Tags.database)
def check_schema_is_not_newer(
    app_configs: Iterable[AppConfig] | None = None,
    databases: Iterable[str] | None = None,
    **kwargs,
) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for alias in databases or ():
        try:
            refusal = newer_schema(alias)
        except DatabaseError:
            # Not this check's business: `migrate` reports an unreachable database itself.
            continue
        if refusal:
            hint = f"Nothing in the database {alias!r} was changed."
            errors.append(Error(refusal, hint=hint, id=NEWER_SCHEMA))
    return errors
