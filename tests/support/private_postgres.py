"""A PostgreSQL server of a test's own: a temporary folder, a free loopback port, trust logins.

    with private_postgres() as server:        # skips the test where PostgreSQL is not installed
        server.create_database("fdd")
        url = server.url("fdd")                # postgresql://postgres@127.0.0.1:PORT/fdd
        server.restart(down_seconds=2)         # stopped at once (-m immediate), started again

Uses the binaries of the newest /usr/lib/postgresql/*/bin (or pg_ctl on PATH). As root, initdb
and the server run as the `postgres` user (`runuser`), as PostgreSQL refuses to run as root.
The machine's own server is never touched: everything lives in the temporary folder, the socket
too. fsync is off (the test stops the server, never the machine), so a stop by `-m immediate`
still loses no committed transaction.
"""

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

START_SECONDS = 60


def _bin_dir() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(Path(candidate) / "pg_ctl", os.X_OK):
            return Path(candidate)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class PrivatePostgres:
    bin_dir: Path
    directory: Path
    port: int
    as_user: list[str]  # the command prefix that runs as the server's owner

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *command: str, timeout: float = START_SECONDS) -> None:
        result = subprocess.run(
            [*self.as_user, *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            raise RuntimeError(f"{command[0]} failed: {result.stderr}{result.stdout}\n{log}")

    def _pg_ctl(self, *arguments: str) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), *arguments)

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.directory} -c fsync=off "
            "-c max_connections=60 -c shared_buffers=16MB"
        )
        self._pg_ctl(
            "-l", str(self.log_path), "-w", "-t", str(START_SECONDS), "-o", options, "start"
        )

    def stop(self, mode: str = "immediate") -> None:
        self._pg_ctl("-m", mode, "-w", "-t", str(START_SECONDS), "stop")

    def restart(self, down_seconds: float = 0.0, mode: str = "immediate") -> None:
        """Stop (by default at once, as if the server died) and, after `down_seconds`, start."""
        self.stop(mode)
        time.sleep(down_seconds)
        self.start()

    def execute(self, sql: str, database: str = "postgres", params=()) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=10) as db:
            cursor = db.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def create_database(self, name: str) -> None:
        self.execute(f'CREATE DATABASE "{name}"')


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    bin_dir = _bin_dir()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        pytest.skip("PostgreSQL's initdb and pg_ctl are not installed")
    as_user: list[str] = []
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run PostgreSQL as")
        as_user = ["runuser", "-u", "postgres", "--"]
    directory = Path(tempfile.mkdtemp(prefix="fdd-private-pg-"))
    if owner is not None:
        os.chown(directory, owner.pw_uid, owner.pw_gid)
    server = PrivatePostgres(bin_dir, directory, 0, as_user)
    try:
        server._run(
            str(bin_dir / "initdb"),
            "-D",
            str(server.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        for _attempt in range(5):  # another process may take the free port first
            server.port = _free_port()
            try:
                server.start()
                break
            except RuntimeError:
                if "already in use" not in server.log_path.read_text(errors="replace"):
                    raise
        else:
            raise RuntimeError("no free port for the private PostgreSQL server")
        yield server
    finally:
        if (server.data / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                server.stop()
        shutil.rmtree(directory, ignore_errors=True)
