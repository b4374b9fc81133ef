"""A faulty network between the workers and the Serviceplatform (issue 8, point 2).

A real worker cluster (tests/support/workers.py) sends SENDS files through
tests/support/fault_proxy.py, which cuts connections at random byte offsets (a reset in the middle
of whatever is in flight) and stalls others (a black hole until the worker gives up; the server
notices a second later). The portal's own retry logic (transfers.tasks: retry_delay,
TRANSFER_RETRY_SECONDS, the timeouts) must bring every file to the receiver exactly once; the
retries show on each transfer's page; and no task may outlast the bound its timeouts set.
"""

import contextlib
import hashlib
import html
import io
import random
import re
import socket
import threading
import time
from pathlib import Path

import pytest
from django.urls import reverse
from django_q.models import Task

from tests.support import private_portal
from tests.support.fault_proxy import Fate, FaultProxy, RandomFaults
from tests.support.simulator_fixtures import make_user, running_simulator, wait_for, write_registry
from tests.support.system import child_environment, run_manage
from transfers.models import ReceivedFile, SftpAccount, Transfer
from transfers.queueing import queue_send
from transfers.sftp import SftpError, SftpSession
from transfers.tasks import RECEIPT_WAIT_SECONDS, retry_delay

SENDS = 100
TIMEOUT_SECONDS = 2  # TRANSFER_TIMEOUT_SECONDS: how long a stalled connection holds a worker
# One fault per this many bytes on a connection, on average: about 3 in 10 sends meet one.
MEAN_FAULT_BYTES = 100_000
# The longest a task may run: a stall costs one timeout and ends the attempt; then the connect,
# the upload and the wait for the receipt, with room for a busy machine. Well below Q_TIMEOUT,
# where the cluster would stop a task that hangs.
TASK_BOUND_SECONDS = 3 * TIMEOUT_SECONDS + RECEIPT_WAIT_SECONDS + 8
CLUSTER = {
    "TRANSFER_RETRY_SECONDS": "1",
    "TRANSFER_RETRY_MAX_SECONDS": "4",  # a file unlucky several times in a row waits no longer
    "TRANSFER_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
    "TRANSFER_STALE_SECONDS": "10",
    # An attempt meets a fault about one time in three (a fresh connection carries its login
    # too), so a few files in a run need 5 attempts or more; with 15, about one run in 50,000
    # would see a file fail after fourteen faults in a row.
    "TRANSFER_MAX_ATTEMPTS": "15",
    "Q_WORKERS": "3",
    "Q_TIMEOUT": "60",
    "Q_RETRY": "61",
}


class TaskClock:
    """How long each task ran, from the cluster's log read as it is written (django-q stamps a
    task's `started` when it is queued, so its Task row includes the time spent waiting)."""

    STARTED = re.compile(r"processing (\S+) '([^']+)'")
    ENDED = re.compile(r"(?:Processed|Failed) '[^']+' \((\S+)\)")

    def __init__(self, path: Path):
        self.path = path
        self.started: dict[str, tuple[str, float]] = {}  # task name: (function, when)
        self.ended: dict[str, float] = {}
        self.killed: list[str] = []  # lines of workers the cluster stopped after Q_TIMEOUT
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        position, pending = 0, b""
        while True:
            stopping = self._stopping.is_set()
            if self.path.exists():
                with self.path.open("rb") as log:
                    log.seek(position)
                    chunk = log.read()
                position += len(chunk)
                *lines, pending = (pending + chunk).split(b"\n")
                now = time.monotonic()
                for line in (raw.decode(errors="replace") for raw in lines):
                    if started := self.STARTED.search(line):
                        self.started[started[1]] = (started[2], now)
                    elif ended := self.ENDED.search(line):
                        self.ended[ended[1]] = now
                    elif "after timeout" in line:
                        self.killed.append(line)
            if stopping:
                return
            time.sleep(0.1)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(10)

    def durations(self, prefix: str) -> dict[str, float | None]:
        """Seconds each task of a function starting with `prefix` ran; None if it never ended."""
        return {
            f"{function} ({name})": (self.ended[name] - when if name in self.ended else None)
            for name, (function, when) in self.started.items()
            if function.startswith(prefix)
        }


def test_a_retry_waits_twice_as_long_as_the_one_before_up_to_the_maximum(settings):
    settings.TRANSFER_RETRY_SECONDS, settings.TRANSFER_RETRY_MAX_SECONDS = 10, 600
    delays = [retry_delay(attempts).total_seconds() for attempts in range(1, 9)]
    assert delays == [10, 20, 40, 80, 160, 320, 600, 600]


@pytest.mark.system
def test_a_server_timeout_longer_than_the_stale_time_stops_start_up():
    """Else a worker still waiting on a slow server would look dead to the sweeper, and its send
    would be handed to another worker while it still writes."""
    result = run_manage(
        "check", DEBUG="true", TRANSFER_TIMEOUT_SECONDS="120", TRANSFER_STALE_SECONDS="60"
    )
    assert result.returncode != 0
    assert "TRANSFER_STALE_SECONDS must be longer than TRANSFER_TIMEOUT_SECONDS" in result.stderr


@pytest.mark.system
def test_the_proxy_cuts_and_stalls_where_it_is_told():
    listener = socket.create_server(("127.0.0.1", 0))

    def echo():
        while True:
            try:
                connection, _address = listener.accept()
            except OSError:
                return
            with connection, contextlib.suppress(OSError):  # a reset ends one connection
                while data := connection.recv(4096):
                    connection.sendall(data)

    threading.Thread(target=echo, daemon=True).start()
    fates = iter([Fate("cut", 10), Fate("stall", 10), Fate()])
    try:
        with FaultProxy(listener.getsockname()[1], plan=lambda n: next(fates)) as proxy:
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as cut:
                cut.sendall(b"12345678")  # 8 up, 8 echoed down: 16 > 10
                with pytest.raises((ConnectionError, TimeoutError)):
                    while cut.recv(100):
                        pass
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=0.5) as stalled:
                stalled.sendall(b"12345678")
                assert stalled.recv(100) == b"12"  # 8 up + 2 down, then nothing
                with pytest.raises(TimeoutError):
                    stalled.recv(100)
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as clean:
                clean.sendall(b"x" * 50_000)
                received = b""
                while len(received) < 50_000:
                    received += clean.recv(65536)
            assert [(f.kind, f.after) for f in proxy.faults] == [("cut", 10), ("stall", 10)]
    finally:
        listener.close()


@pytest.mark.system
def test_a_stall_at_any_step_of_connecting_costs_one_timeout_not_a_hang(tmp_path):
    """Stalled before each piece a clean login exchanges (key exchange, authentication, the
    session, the sftp subsystem, its version and limits): every connect ends within a few
    timeouts. paramiko waits for the subsystem's answer without a timeout of its own."""
    timeout = 0.5
    user = make_user("alfa", tmp_path)
    registry = write_registry(tmp_path / "registry.json", users=[user])
    with running_simulator(tmp_path / "sp", registry) as sim:
        host_key = f"{sim.host_key.get_name()} {sim.host_key.get_base64()}"

        def session(port: int) -> SftpSession:
            return SftpSession(
                host="127.0.0.1",
                port=port,
                username=user.username,
                private_key=user.key_path.read_bytes(),
                host_key=host_key,
                timeout=timeout,
            )

        with FaultProxy(sim.port) as clean:
            with session(clean.port):
                pass
            offsets = [0, *clean.offsets[1]]
        fates = iter([Fate("stall", after) for after in offsets])
        outcomes: dict[int, object] = {}

        def connect(after: int, port: int) -> None:
            started = time.monotonic()
            try:
                with session(port):
                    outcome = "connected"
            except SftpError as error:
                outcome = str(error)
            outcomes[after] = (outcome, time.monotonic() - started)

        # All at once: each waits for its timeout, not for the others.
        with FaultProxy(sim.port, plan=lambda n: next(fates), linger=0.2) as proxy:
            threads = [
                threading.Thread(target=connect, args=(after, proxy.port), daemon=True)
                for after in offsets
            ]
            for thread in threads:
                thread.start()
                time.sleep(0.01)  # the proxy hands out the fates in the order of connecting
            for thread in threads:
                thread.join(20 * timeout)
        hung = [after for after, thread in zip(offsets, threads, strict=True) if thread.is_alive()]
        assert not hung, f"connecting hung when stalled after {hung} bytes"
        slow = {after: o for after, o in outcomes.items() if o[1] > 6 * timeout}
        assert not slow, slow
        assert outcomes[offsets[-1]][0] == "connected"  # stalled after everything: no harm
        failed = [o for o, _seconds in outcomes.values() if o != "connected"]
        assert len(failed) > len(offsets) / 2, outcomes  # the login is most of what is stalled


@pytest.mark.django_db(transaction=True)
def test_sends_through_a_faulty_network_are_each_delivered_once_and_the_retries_shown(
    tmp_path, ready_route, staff_a, client_for
):
    seed = random.randrange(2**32)  # noqa: S311 - test data; printed on failure
    rng = random.Random(seed)  # noqa: S311
    ready = ready_route()
    sim, route = ready.sim, ready.route
    plan = RandomFaults(MEAN_FAULT_BYTES, stall_share=0.3, seed=seed)
    with FaultProxy(sim.port, plan=plan, linger=1.0) as proxy:
        # The sender's sends go through the proxy; the receiver fetches directly.
        SftpAccount.objects.filter(pk=ready.sender.pk).update(port=proxy.port)
        payloads = {}
        for number in range(SENDS):
            data = rng.randbytes(rng.randint(10_000, 50_000))
            transfer = queue_send(
                route, io.BytesIO(data), original_name=f"fil-{number}.csv", user=staff_a
            )
            payloads[transfer.remote_name] = data
        environment = child_environment(**CLUSTER)
        started = time.monotonic()
        clock = TaskClock(tmp_path / "cluster.log")
        try:
            with (
                private_portal.ticking(environment),
                private_portal.cluster(environment, tmp_path / "cluster.log"),
            ):
                wait_for(done, timeout=300, interval=0.5)
        finally:
            clock.stop()
        elapsed = time.monotonic() - started
    faults = list(proxy.faults)

    context = f"seed {seed}, {len(faults)} faults, {elapsed:.0f} s"
    # Every file delivered exactly once: one routing each, one fetch each, the same bytes.
    transfers = list(Transfer.objects.all())
    assert {t.remote_name: t.state for t in transfers} == dict.fromkeys(payloads, "delivered")
    for transfer in transfers:
        routed = [o.error for o in sim.router.outcomes if o.name == transfer.remote_name]
        assert routed.count(None) == 1, (context, transfer.remote_name, routed)
        assert set(routed) <= {None, 108}, routed  # 108: a dead connection still held the file
        received = ReceivedFile.objects.get(remote_name=transfer.remote_name)
        data = payloads[transfer.remote_name]
        assert received.sha256 == transfer.sha256 == hashlib.sha256(data).hexdigest()
        assert Path(received.stored_path).read_bytes() == data

    # The faults were many and of both kinds, and sends had to try again: sends that went
    # together (transfers.tasks._send_together) all meet a fault of their connection. A network
    # fault is not counted as an attempt (the platform did not refuse the file): the retries
    # show in what went wrong.
    assert {fault.kind for fault in faults} == {"cut", "stall"}, context
    retried = [t for t in transfers if t.last_error]
    assert len(retried) >= 0.12 * SENDS, context

    # The retries show on each transfer's page: the attempts and what went wrong.
    client = client_for(staff_a)
    for transfer in retried:
        response = client.get(reverse("transfers:detail", args=[transfer.pk]))
        shown = html.unescape(response.content.decode())
        assert f"<td>{transfer.attempts}</td>" in shown
        assert transfer.last_error and transfer.last_error in shown
        assert 'id="transfer-last-error"' in shown

    # No task outlived its bound (none hung, none was stopped by the cluster), none failed.
    durations = clock.durations("transfers.")
    assert len(durations) >= SENDS
    unfinished = [task for task, seconds in durations.items() if seconds is None]
    assert not unfinished and not clock.killed, (unfinished, clock.killed)
    longest = max(durations, key=durations.get)
    assert durations[longest] <= TASK_BOUND_SECONDS, (context, longest, durations[longest])
    failed = Task.objects.filter(func__startswith="transfers.", success=False)
    assert not failed.exists(), [task.result for task in failed]


def done() -> bool:
    return (
        Transfer.objects.filter(state=Transfer.State.DELIVERED).count() == SENDS
        and ReceivedFile.objects.count() == SENDS
    )
