"""A worker killed in the middle of an upload: the file still ends delivered exactly once."""

import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings

from tests import engine
from tests.workers import ROOT, database_url_of_the_test_run
from transfers import tasks
from transfers.fetch import fetch_inbox
from transfers.models import ReceivedFile, Transfer
from transfers.queueing import queue_file

pytestmark = pytest.mark.django_db(transaction=True)
SIZE = 256 * 2**20


def _worker(transfer_id: int) -> subprocess.Popen:
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
    }
    code = f"from transfers.tasks import send_transfer; send_transfer({transfer_id})"
    return subprocess.Popen(
        [sys.executable, "manage.py", "shell", "-v0", "-c", code],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_a_worker_killed_mid_upload_leaves_a_transfer_that_ends_delivered_once(
    tmp_path, staff_a, operator, system_a, system_b, aarhus, settings
):
    with engine.simulator(tmp_path) as sim:
        integration = engine.ready_integration(
            staff=staff_a,
            operator=operator,
            sender=system_a,
            receiver=system_b,
            municipalities=[aarhus],
        )
        engine.account(system_a, "alfa_omsorg", sim)
        receiver = engine.account(system_b, "beta_journal", sim)
        route = engine.routes_for(integration, [aarhus])["751"]
        engine.load_registry(sim)
        source = tmp_path / "stor.csv"
        with source.open("wb") as out:
            block = os.urandom(2**20)
            for _ in range(SIZE // 2**20):
                out.write(block)
        transfer = queue_file(route, source, user=staff_a)

        worker = _worker(transfer.pk)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            transfer.refresh_from_db()
            if transfer.bytes_done > 0 or worker.poll() is not None:
                break
            time.sleep(0.01)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)

        transfer.refresh_from_db()
        assert transfer.state == Transfer.State.SENDING
        assert transfer.bytes_done < SIZE  # killed in the middle, not after
        out = sim.data_dir / "alfa_omsorg" / "OUT"
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
