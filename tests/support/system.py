"""System tests: those that start a server or a process, and the environment of those processes.

A system test carries the `system` marker, so `pytest -m "not system"` is a quick loop without
them. conftest.py marks every test that uses a fixture of `SYSTEM_FIXTURES` or the `browser`
marker; any other test that starts something is marked in its file. Whatever was forgotten is
caught as it happens: `watch()` follows the running test, and a test without the marker that
starts a process or listens on a socket fails, naming what it started.

    child_environment(Q_WORKERS="1")     # a portal process on the test run's database and files
    run_manage("check", DEBUG="false")   # manage.py as a fresh install starts it
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

# The fixtures that start a server: every test using one, directly or through another fixture,
# is a system test.
SYSTEM_FIXTURES = frozenset(
    {"chromium_browser", "live_server", "ready_route", "receiving_on_sshd", "smtp_server", "sshd"}
)

# Audit events (docs.python.org/3/library/audit_events.html) of starting a process, and of
# giving a socket an address to listen on: an in-process server (the simulator, a live server,
# an SMTP server) binds, a client does not.
_STARTS = frozenset(
    {"subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.system"}
)
_BINDS = "socket.bind"

# The folder of manage.py, the working folder of the processes: found, not counted up from this
# file, so the module can move within tests/.
ROOT = next(
    folder for folder in Path(__file__).resolve().parents if (folder / "manage.py").exists()
)

_running: pytest.Item | None = None
_unmarked: list[str] = []


def is_system(item: pytest.Item) -> bool:
    return item.get_closest_marker("system") is not None


def _audit(event: str, arguments: tuple) -> None:
    # Called for every audited event of the process: return as early as possible.
    if _running is None or (event not in _STARTS and event != _BINDS):
        return
    if is_system(_running):
        return
    if event == _BINDS:
        _unmarked.append(f"a socket bound to {arguments[1]!r}")
    elif event == "subprocess.Popen":
        _unmarked.append(f"the process {arguments[1]!r}")
    else:
        _unmarked.append(f"a process ({event})")


def install() -> None:
    """Listen for what tests start; once per process (an audit hook cannot be removed)."""
    sys.addaudithook(_audit)


def watch(item: pytest.Item | None) -> list[str]:
    """Follow `item` from now on (None: no test); what the test followed until now started
    without being marked."""
    global _running
    started = list(_unmarked)
    _unmarked.clear()
    _running = item
    return started


def database_url_of_the_test_run() -> str:
    """DATABASE_URL of the database the test runs on, for processes the test starts."""
    from django.db import connection

    database = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{database['NAME']}"
    credentials = database["USER"] + (f":{database['PASSWORD']}" if database["PASSWORD"] else "")
    host = database["HOST"] or "localhost"
    port = f":{database['PORT']}" if database["PORT"] else ""
    return f"postgresql://{credentials}@{host}{port}/{database['NAME']}"


def child_environment(**overrides: str) -> dict[str, str]:
    """The environment of a portal process a test starts (`manage.py`, a worker cluster, a
    crash child): the production settings module on the test run's database, data folder and
    keys, then `overrides` (another DATABASE_URL or PORTAL_DATA_DIR, Q_WORKERS, ...)."""
    from django.conf import settings

    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DATABASE_URL": database_url_of_the_test_run(),
        "PORTAL_DATA_DIR": str(settings.DATA_DIR),
        "SECRET_KEY": settings.SECRET_KEY,
        "SFTP_KEY_ENCRYPTION_KEY": settings.SFTP_KEY_ENCRYPTION_KEY,
        # The test's simulators listen on free loopback ports (tests/support/settings.py).
        "SFTP_ALLOWED_HOSTS": ",".join(settings.SFTP_ALLOWED_HOSTS),
        "DEBUG": "true",
        # A child's log is read while it runs (a cluster's, a crash child's answers).
        "PYTHONUNBUFFERED": "1",
        **overrides,
    }


# The test run's own environment (tests/support/settings.py, a CI's database, the browser's
# async guard): `run_manage` starts manage.py without it, as a fresh install would.
_SET_BY_TESTS = {
    "DEBUG",
    "SECRET_KEY",
    "SFTP_KEY_ENCRYPTION_KEY",
    "DATABASE_URL",
    "PORTAL_DATA_DIR",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
}


def run_manage(*args: str, **environment: str) -> subprocess.CompletedProcess:
    """`manage.py ARGS` with the production settings, the test run's own variables taken out
    and `environment` put in: as an operator's install starts it."""
    clean = {k: v for k, v in os.environ.items() if k not in _SET_BY_TESTS}
    clean.update(DJANGO_SETTINGS_MODULE="portal.settings", **environment)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )
