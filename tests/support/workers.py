"""A real django-q2 worker cluster started by a test, on the test database."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.system import ROOT, child_environment


@contextmanager
def worker_cluster(
    output: Path | None = None,
    env: dict[str, str] | None = None,
    command: tuple[str, ...] = ("manage.py", "qcluster"),
) -> Iterator[subprocess.Popen]:
    """`manage.py qcluster` on the test's database and data folder, stopped on exit.

    `output` keeps its log (stdout and stderr), which names every task a worker took: how to
    tell which of several clusters, all with the one queue name they must share, did what.
    `env` adds to or overrides the cluster's environment (e.g. Q_WORKERS); `command`, what the
    interpreter runs instead of `manage.py qcluster` (a cluster wrapped by a benchmark).
    """
    log = output.open("ab") if output is not None else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, *command],
        cwd=ROOT,
        env=child_environment(**(env or {})),
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
