"""What every benchmark shares: the machine it ran on, where results go, and the summary row.

Each benchmark module offers `run(quick: bool = False) -> dict` (its full report, with a "rows"
list of `Row` dicts for the summary table) besides its own command line; `python -m bench` runs
them all and prints one table.
"""

import contextlib
import dataclasses
import datetime
import json
import os
import platform
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
SSH = shutil.which("ssh") or "/usr/bin/ssh"
# Where benches make their own PostgreSQL databases: the server of `make test-postgres`.
POSTGRES_URL = os.environ.get("POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
# Settings a bench must not inherit from the shell: it measures the defaults on its own data.
FOREIGN_SETTINGS = ("Q_", "TRANSFER_", "SIMULATOR_", "PORTAL_", "DATABASE_URL", "REDIS_URL")


def own_environment(**settings: str) -> dict[str, str]:
    """The shell's environment without the portal's settings, and with `settings`."""
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(FOREIGN_SETTINGS)
    }
    return {**environment, **settings}


def in_service(workspace: Path) -> dict[str, str]:
    """The settings of a portal as it runs in service, DEBUG off, for a bench's portal in
    `workspace`: keys of its own, and the static folder WhiteNoise looks for (no page's files
    are served)."""
    from cryptography.fernet import Fernet

    (workspace / "static").mkdir(exist_ok=True)
    return {
        "DEBUG": "false",
        "SECRET_KEY": Fernet.generate_key().decode() * 2,
        "SFTP_KEY_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "SECURE_SSL_REDIRECT": "false",
        "STATIC_ROOT": str(workspace / "static"),
    }


@contextlib.contextmanager
def service_cluster(**options) -> Iterator[subprocess.Popen]:
    """tests/support/workers.py's `worker_cluster`, with DEBUG off as in service: a test's
    cluster has it on (tests.support.system.child_environment), and then Django keeps every
    query a worker makes."""
    from tests.support.workers import worker_cluster

    environment = {"DEBUG": "false", **(options.pop("env", None) or {})}
    with worker_cluster(env=environment, **options) as process:
        yield process


def allow_sftp_to(host: str, port: int) -> None:
    """Django settings for a child that uses transfers.sftp without the portal: nothing but
    SFTP_ALLOWED_HOSTS, and that allows only the bench's own server (transfers/endpoints.py)."""
    from django.conf import settings

    shown = f"[{host}]" if ":" in host else host
    settings.configure(SFTP_ALLOWED_HOSTS=[f"{shown}:{port}"])


@contextlib.contextmanager
def own_database(database: str, workspace: Path, name: str) -> Iterator[str]:
    """The DATABASE_URL of a migrated database of the bench's own (`bench.migrated`): an SQLite
    file in `workspace`, or `name` made on POSTGRES_URL's server (a leftover of an earlier run
    dropped first) and dropped afterwards."""
    from bench import migrated

    if database == "sqlite":
        migrated.sqlite_copy(workspace / "portal.sqlite3")
        yield f"sqlite:///{workspace / 'portal.sqlite3'}"
        return
    template = migrated.postgres_template()
    _on_postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _on_postgres(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield urlsplit(POSTGRES_URL)._replace(path=f"/{name}").geturl()
    finally:
        _on_postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _on_postgres(statement: str) -> None:
    import psycopg

    maintenance = urlsplit(POSTGRES_URL)._replace(path="/postgres").geturl()
    with psycopg.connect(maintenance, autocommit=True) as connection:
        connection.execute(statement)


@dataclasses.dataclass
class Row:
    """One line of the summary table: a measured figure and the floor it is held to, if any."""

    benchmark: str
    measure: str
    value: float
    unit: str
    floor: str = ""
    holds: bool | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def machine() -> dict:
    """What the figures came from: a figure means little without the machine and its load."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        memory_kib = int(info.readline().split()[1])
    import cryptography
    import django
    import paramiko

    ssh = subprocess.run([SSH, "-V"], capture_output=True, text=True, check=False)  # noqa: S603
    sshd = subprocess.run(["/usr/sbin/sshd", "-V"], capture_output=True, text=True, check=False)
    return {
        "hostname": platform.node(),
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(memory_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "django": django.__version__,
        "paramiko": paramiko.__version__,
        "cryptography": cryptography.__version__,
        "openssh_client": (ssh.stderr or ssh.stdout).strip(),
        "openssh_server": ((sshd.stderr or sshd.stdout).strip().splitlines() or ["unknown"])[0],
        "load_average_before": os.getloadavg(),
    }


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def save(name: str, report: dict) -> Path:
    """Write a report to bench/results/<name>-<UTC time>.json and return the path."""
    RESULTS.mkdir(exist_ok=True)
    # UTC: a benchmark that sets up Django runs in the portal's time zone, the others do not.
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return path


def print_rows(rows: list[dict]) -> None:
    """The summary table: one line per figure, its floor and whether the floor holds."""
    print(f"{'benchmark':16} {'measure':62} {'value':>10} {'unit':8} {'floor':18} verdict")
    for row in rows:
        verdict = {True: "ok", False: "MISSED", None: ""}[row["holds"]]
        print(
            f"{row['benchmark']:16} {row['measure']:62} {row['value']:10.2f} {row['unit']:8} "
            f"{row['floor']:18} {verdict}"
        )
