"""A migrated database to start each bench's own from: migrating the portal takes seconds, and
`python -m bench` made eight fresh databases, each migrated from nothing.

The template is made once for the migrations and the pinned packages there are (their hash
names it), by `manage.py migrate` in a process of its own, and kept for later runs: an SQLite
file in the system's temporary folder, a database `fdd_bench_migrated_<hash>` on the server of
`POSTGRES_URL`. A bench's database is a copy of it (a file copy; CREATE DATABASE ... TEMPLATE),
and the bench still runs `migrate` on its copy, which finds nothing to do but what follows every
migrate (content types, permissions), with the bench's own settings.
"""

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from bench.common import POSTGRES_URL, ROOT, own_environment

PREFIX = "fdd_bench_migrated_"


def _state() -> str:
    """A hash of every migration file and of the pinned packages (theirs migrate too)."""
    digest = hashlib.sha256((ROOT / "requirements.txt").read_bytes())
    migrations = sorted(
        path
        for path in ROOT.glob("**/migrations/*.py")
        if ".venv" not in path.parts and "node_modules" not in path.parts
    )
    for path in migrations:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _migrate(url: str) -> None:
    with tempfile.TemporaryDirectory(prefix="fdd-bench-migrate-") as data:
        environment = own_environment(
            DJANGO_SETTINGS_MODULE="portal.settings",
            DEBUG="true",
            PORTAL_DATA_DIR=data,
            DATABASE_URL=url,
            LOG_LEVEL="WARNING",
        )
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v0"],
            cwd=ROOT,
            env=environment,
            check=True,
        )


def sqlite_copy(target: Path) -> None:
    """`target`: a copy of the migrated SQLite template, made first if there is none (and the
    templates of earlier migrations removed)."""
    template = Path(tempfile.gettempdir()) / f"{PREFIX}{_state()}.sqlite3"
    if not template.exists():
        building = template.with_name(f"{template.name}.{os.getpid()}")
        try:
            _migrate(f"sqlite:///{building}")
            with sqlite3.connect(building) as connection:
                # One file, whole: nothing left in a write-ahead log beside it.
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                connection.execute("PRAGMA journal_mode=DELETE")
            connection.close()
            building.replace(template)
        finally:
            building.unlink(missing_ok=True)
        for old in template.parent.glob(f"{PREFIX}*.sqlite3"):
            if old != template:
                old.unlink(missing_ok=True)  # of earlier migrations
    shutil.copyfile(template, target)


def postgres_template() -> str:
    """The name of the migrated PostgreSQL template, made first if there is none (and the
    templates of earlier migrations dropped)."""
    import psycopg

    name = f"{PREFIX}{_state()}"
    maintenance = urlsplit(POSTGRES_URL)._replace(path="/postgres").geturl()
    with psycopg.connect(maintenance, autocommit=True) as connection:
        names = [
            row[0]
            for row in connection.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{PREFIX}%"]
            )
        ]
        if name in names:
            return name
        for old in names:
            connection.execute(f'DROP DATABASE IF EXISTS "{old}" WITH (FORCE)')
        building = f"{name}_building"
        connection.execute(f'CREATE DATABASE "{building}"')
        try:
            _migrate(urlsplit(POSTGRES_URL)._replace(path=f"/{building}").geturl())
            connection.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
        except BaseException:
            connection.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
            raise
    return name
