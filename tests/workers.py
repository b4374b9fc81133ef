"""A real django-q2 worker cluster started by a test, on the test database."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def database_url_of_the_test_run() -> str:
    """DATABASE_URL of the database the test runs on, for processes the test starts."""
    database = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{database['NAME']}"
    credentials = database["USER"] + (f":{database['PASSWORD']}" if database["PASSWORD"] else "")
    host = database["HOST"] or "localhost"
    port = f":{database['PORT']}" if database["PORT"] else ""
    return f"postgresql://{credentials}@{host}{port}/{database['NAME']}"


@contextmanager
def worker_cluster(
    output: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen]:
    """`manage.py qcluster` on the test's database and data folder, stopped on exit.

    `output` keeps its log (stdout and stderr), which names every task a worker took: how to
    tell which of several clusters, all with the one queue name they must share, did what.
    `env` adds to or overrides the cluster's environment (e.g. Q_WORKERS).
    """
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DATABASE_URL": database_url_of_the_test_run(),
        "PORTAL_DATA_DIR": str(settings.DATA_DIR),
        "SECRET_KEY": settings.SECRET_KEY,
        "SFTP_KEY_ENCRYPTION_KEY": settings.SFTP_KEY_ENCRYPTION_KEY,
        # The test's simulators listen on free loopback ports (tests/settings.py).
        "SFTP_ALLOWED_HOSTS": ",".join(settings.SFTP_ALLOWED_HOSTS),
        "DEBUG": "true",
        **(env or {}),
    }
    log = output.open("ab") if output is not None else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT if output is not None else subprocess.DEVNULL,
        start_new_session=True,
    )
    if output is not None:
        log.close()  # the cluster has its own copy
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
