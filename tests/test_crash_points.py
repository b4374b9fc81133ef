"""Workers killed by SIGKILL at chosen points of real sends and fetches (issue 8, point 1).

Each kill point runs RUNS times: a file is queued, a worker (tests/support/crash_child.py, a fork of
a process with Django loaded) runs the real task and kills itself at the point, and then the
schedule's own recovery runs (transfers.tasks.requeue_abandoned, a new send, collect_receipts,
fetch_inbox). Afterwards the file must be delivered exactly once (one routing by the simulator),
fetched exactly once with the same SHA-256, and nothing may be left on the server or in the
portal's folders. The points of one group are taken in turn, so each is hit several times; the
offset of a kill during an upload or a download is random (seeded, printed on failure).
"""

import hashlib
import io
import math
import os
import random
import shutil
import time
from pathlib import Path

import pytest

from tests.support.crash_child import CrashWorker
from tests.support.engine import RECEIVER, SENDER
from transfers import tasks
from transfers.fetch import fetch_inbox
from transfers.models import ReceivedFile, Transfer
from transfers.queueing import queue_send
from transfers.sftp import SMALL_REQUEST

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = 30
GROUPS = {
    "during-upload": ("upload",),
    "between-data-and-trigger": (
        "before-trigger",
        "trigger-recorded",
        "trigger-opened",
        "trigger-unclosed",
    ),
    "after-trigger-before-record": ("after-trigger", "sent-recorded", "receipt-recorded"),
    "during-download": ("download",),
    "after-move-before-delete": ("after-move", "recorded", "between-deletes"),
}
FETCH_GROUPS = ("during-download", "after-move-before-delete")
RELEASE_SECONDS = 10.0  # how long the simulator may take to notice a dead worker's connection
RECOVERY_ROUNDS = 4
State = Transfer.State


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """The data folder that the killed workers and this test share (payloads, received files)."""
    return tmp_path_factory.mktemp("crash-data")


@pytest.fixture(scope="module")
def crash_worker(django_db_setup, data_dir):
    worker = CrashWorker(data_dir / "crash-worker.log", data_dir=data_dir)
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def setup(settings, data_dir, ready_route):
    shutil.rmtree(data_dir / "transfers", ignore_errors=True)  # what an earlier test left
    settings.TRANSFER_DATA_DIR = data_dir / "transfers"
    # In service the sweeper waits TRANSFER_STALE_SECONDS; here it runs once the server has let
    # go of the dead worker's connection, which is what that wait is for.
    settings.TRANSFER_STALE_SECONDS = 0
    ready = ready_route()
    return ready.sim, ready.route, ready.receiver, ready.staff


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _files(folder: Path) -> list[str]:
    return sorted(os.listdir(folder)) if folder.exists() else []


def _released(sim, name: str) -> None:
    """Wait (bounded) until the simulator has closed every handle of the dead worker."""
    deadline = time.monotonic() + RELEASE_SECONDS
    while sim.router.is_being_written(SENDER, name) or sim.router.is_being_written(
        SENDER, f"{name}.trigger"
    ):
        assert time.monotonic() < deadline, f"the simulator still holds {name} open"
        time.sleep(0.01)


def recover(receiver_id: int) -> None:
    """What the schedule does after a worker died, in bounded rounds: queue abandoned sends
    again, send what is queued (as a worker would take the task), collect receipts, fetch."""
    for _ in range(RECOVERY_ROUNDS):
        tasks.requeue_abandoned()
        for transfer_id in Transfer.objects.filter(state=State.QUEUED).values_list("pk", flat=True):
            tasks.send_transfer(transfer_id)
        tasks.collect_receipts()
        fetch_inbox(receiver_id)
        if not Transfer.objects.exclude(state__in=(State.DELIVERED, State.FAILED)).exists():
            tasks.collect_receipts()  # once more: what a settled send left on the server
            fetch_inbox(receiver_id)
            return


def check_exactly_once(sim, transfer: Transfer, data: bytes, transfer_dir: Path) -> None:
    transfer.refresh_from_db()
    assert transfer.state == State.DELIVERED, (transfer.state, transfer.last_error)
    routed = [
        (outcome.delivered_to, outcome.error)
        for outcome in sim.router.outcomes
        if outcome.name == transfer.remote_name
    ]
    assert routed == [((RECEIVER,), None)], "routed more than once, or refused"
    received = ReceivedFile.objects.filter(remote_name=transfer.remote_name)
    assert received.count() == 1
    record = received.get()
    assert record.state == ReceivedFile.State.RECEIVED
    assert record.file_transfer_uuid == transfer.file_transfer_uuid
    assert record.sha256 == transfer.sha256 == _sha256(data)
    assert _sha256(Path(record.stored_path).read_bytes()) == _sha256(data)
    # Nothing left on the server ...
    for folder in (f"{SENDER}/OUT", f"{SENDER}/IN", f"{RECEIVER}/IN", ".simulator/tmp"):
        assert _files(sim.data_dir / folder) == [], folder
    # ... nor in the portal's folders: no staging, no receipt, no stray copy.
    store = transfer_dir / "received" / RECEIVER
    assert _files(store / ".incoming") == []
    assert _files(transfer_dir / "receipts") == []
    kept = {Path(p).name for p in ReceivedFile.objects.values_list("stored_path", flat=True)}
    assert set(_files(store)) - {".incoming"} == kept


# Three small sends queued at once: the worker that takes the first sends them together
# (transfers.tasks._send_together), and dies at the same points of that path, but for the
# receipt's: sends together leave their receipts to a round of their own.
CASES = [(group, 1) for group in GROUPS] + [
    (group, 3) for group in GROUPS if group not in FETCH_GROUPS
]
RUNS_TOGETHER = 12
NOT_TOGETHER = {"receipt-recorded"}


@pytest.mark.system
@pytest.mark.parametrize(
    ("group", "files"), CASES, ids=[f"{g}-{'alone' if n == 1 else 'together'}" for g, n in CASES]
)
def test_a_worker_killed_at_any_point_leaves_each_file_delivered_and_fetched_once(
    group, files, setup, crash_worker, data_dir
):
    sim, route, receiver, user = setup
    seed = random.randrange(2**32)  # noqa: S311 - test data; printed on failure
    rng = random.Random(seed)  # noqa: S311
    points = tuple(p for p in GROUPS[group] if files == 1 or p not in NOT_TOGETHER)
    runs = RUNS if files == 1 else RUNS_TOGETHER
    for run in range(runs):
        point = points[run % len(points)]
        datas = [rng.randbytes(rng.randint(40_000, 300_000)) for _ in range(files)]
        pieces = math.ceil(len(datas[0]) / SMALL_REQUEST)  # write requests or read replies
        transfers = [
            queue_send(route, io.BytesIO(data), original_name="borgere.csv", user=user)
            for data in datas
        ]
        context = f"run {run}, point {point}, seed {seed}"
        if group in FETCH_GROUPS:
            assert tasks.send_transfer(transfers[0].pk) == "sent", context
            request = {"task": "fetch", "id": receiver.pk}
        else:
            request = {"task": "send", "id": transfers[0].pk}
        answer = crash_worker.run(point=point, at=rng.randint(1, pieces), **request)
        assert answer["killed"], f"{context}: the worker was not killed: {answer}"
        for transfer in transfers:
            _released(sim, transfer.remote_name)
        recover(receiver.pk)
        try:
            for transfer, data in zip(transfers, datas, strict=True):
                check_exactly_once(sim, transfer, data, data_dir / "transfers")
        except AssertionError as error:
            raise AssertionError(f"{context}: {error}") from error
    assert Transfer.objects.filter(state=State.DELIVERED).count() == runs * files
    assert ReceivedFile.objects.filter(state=ReceivedFile.State.RECEIVED).count() == runs * files
