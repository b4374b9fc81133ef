"""A worker killed in the middle of an upload: the file still ends delivered exactly once."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support.system import ROOT, child_environment
from transfers import tasks
from transfers.fetch import fetch_inbox
from transfers.models import ReceivedFile, Transfer
from transfers.queueing import queue_file

pytestmark = pytest.mark.django_db(transaction=True)
SIZE = 256 * 2**20


def _worker(transfer_id: int) -> subprocess.Popen:
    code = f"from transfers.tasks import send_transfer; send_transfer({transfer_id})"
    return subprocess.Popen(
        [sys.executable, "manage.py", "shell", "-v0", "-c", code],
        cwd=ROOT,
        env=child_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_a_worker_killed_mid_upload_leaves_a_transfer_that_ends_delivered_once(
    tmp_path, ready_route, staff_a, settings
):
    ready = ready_route()
    sim, route, receiver = ready.sim, ready.route, ready.receiver
    source = tmp_path / "stor.csv"
    with source.open("wb") as out:
        block = os.urandom(2**20)
        for _ in range(SIZE // 2**20):
            out.write(block)
    transfer = queue_file(route, source, user=staff_a)

    out = sim.data_dir / "alfa_omsorg" / "OUT"
    uploading = out / transfer.remote_name
    worker = _worker(transfer.pk)
    # The upload is under way once the server has its first bytes: the worker's progress is
    # recorded once a second, and on a fast machine the whole upload takes less.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and worker.poll() is None:
        if uploading.exists() and uploading.stat().st_size > 0:
            break
        time.sleep(0.01)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)

    transfer.refresh_from_db()
    assert transfer.state == Transfer.State.SENDING
    assert uploading.stat().st_size < SIZE  # killed in the middle, not after
    assert not (out / f"{transfer.remote_name}.trigger").exists()

    # In service the sweeper waits TRANSFER_STALE_SECONDS; by then the server has noticed
    # the dead connection and closed its handle. The test waits for exactly that.
    deadline = time.monotonic() + 30
    while sim.router.is_being_written("alfa_omsorg", transfer.remote_name):
        assert time.monotonic() < deadline, "the server kept the dead session's file open"
        time.sleep(0.05)

    # The worker's heartbeat has stopped; the sweeper hands the row to a new worker.
    settings.TRANSFER_STALE_SECONDS = 0
    assert tasks.requeue_abandoned() == 1
    assert tasks.send_transfer(transfer.pk) == "sent"
    transfer.refresh_from_db()
    assert transfer.state == Transfer.State.DELIVERED
    assert transfer.attempts == 2

    assert fetch_inbox(receiver.pk).received == 1
    received = ReceivedFile.objects.get()
    assert received.sha256 == transfer.sha256
    assert received.size == SIZE
