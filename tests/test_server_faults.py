"""Faults on the server side (issue 8, point 3): error receipts, a full disk, a database restart.

- Every error code the simulator can answer a trigger with (docs/simulator.md) is provoked by
  what causes it on the platform (100 and 101, which only a broken trigger causes, by breaking
  the portal's trigger); the transient ones (108, 199) are retried by the portal on its own and
  end delivered, the others fail the transfer with KOMBIT's code and text on its page.
- The platform's disk runs full (a tmpfs the test mounts for the simulator's folders): uploads
  fail with the server's reason on the transfer's page, are retried, and every file ends
  delivered once and fetched once after the receiver has made room by fetching; a disk that
  fills while the platform delivers leaves no half delivery (199, retried).
- The receiving portal's disk runs full (a tmpfs for its received files): the fetch fails with
  the reason, leaves every file on the server and no partial file, and fetches all once there is
  room.
- PostgreSQL is restarted under a running worker cluster (a private server, tests/
  private_postgres.py): every transfer ends delivered once and no record is lost.
"""

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from django.utils import timezone
from django_q.models import Schedule

from portal.alerts.models import Alert
from tests.support import engine, private_portal
from tests.support.disks import grow, small_disk
from tests.support.engine import RECEIVER, SENDER
from tests.support.private_postgres import private_postgres
from tests.support.sending import DATA, files, page, queue
from tests.support.simulator_fixtures import running_simulator, wait_for, write_registry
from tests.support.system import ROOT, child_environment
from transfers import keys, tasks
from transfers.fetch import fetch_inbox
from transfers.models import ReceivedFile, Transfer
from transfers.queueing import SEND_TASK
from transfers.sftp import SftpError, SftpSession
from transfers.simulator.registry import SftpUser

pytestmark = pytest.mark.django_db(transaction=True)
State = Transfer.State


@contextlib.contextmanager
def integration(tmp_path, staff, operator, sender_system, receiver_system, municipality):
    """A ready route whose simulator stops at the end of the block: before the small disk it
    runs on is taken away."""
    with engine.on_simulator(
        tmp_path,
        staff=staff,
        operator=operator,
        sender=sender_system,
        receiver=receiver_system,
        municipalities=[municipality],
    ) as ready:
        yield ready.sim, ready.route, ready.sender, ready.receiver


@pytest.fixture
def setup(settings, ready_route):
    settings.TRANSFER_RETRY_SECONDS = 1
    ready = ready_route()
    return ready.sim, ready.route, ready.sender, ready.receiver


def retries(transfer: Transfer):
    """The send's next attempt: counted (a retry) or not (a wait for the platform)."""
    return Schedule.objects.filter(
        func=SEND_TASK, name__regex=rf"^transfer-(retry|wait)-{transfer.pk}-"
    )


def _sender_session(sim, account) -> SftpSession:
    return SftpSession(
        host="127.0.0.1",
        port=sim.port,
        username=account.username,
        private_key=keys.decrypt_private_key(account.private_key_encrypted),
        host_key=account.host_key,
        timeout=10,
    )


# -- error receipts -------------------------------------------------------------------------------


def _change_trigger(monkeypatch, change):
    original = tasks._trigger
    monkeypatch.setattr(tasks, "_trigger", lambda transfer: change(original(transfer), transfer))


def _before_trigger(monkeypatch, action):
    """Run `action(transfer_name)` on the server's disk just before the trigger is written."""
    original = SftpSession.put_bytes

    def put_bytes(self, data, remote_path):
        if remote_path.endswith(".trigger"):
            action(remote_path.removeprefix("OUT/").removesuffix(".trigger"))
        return original(self, data, remote_path)

    monkeypatch.setattr(SftpSession, "put_bytes", put_bytes)


def provoke(code: int, sim, route, sender, transfer, monkeypatch, stack):
    """Bring about what makes the platform answer with `code`."""
    out = sim.data_dir / SENDER / "OUT"
    registry = sim.registry.registry
    users = {user.username: user for user in registry.users}
    if code == 100:  # not valid against the contract
        _change_trigger(monkeypatch, lambda xml, _t: xml.replace(b"FileName>", b"Filename>"))
    elif code == 101:
        _change_trigger(
            monkeypatch,
            lambda xml, t: xml.replace(
                f"<FileName>{t.remote_name}<".encode(), f"<FileName>x{t.remote_name}<".encode()
            ),
        )
    elif code == 102:  # someone removed the data file before the trigger came
        _before_trigger(monkeypatch, lambda name: (out / name).unlink())
    elif code == 103:  # ... or wrote to it

        def append(name: str) -> None:
            with (out / name).open("ab") as data:
                data.write(b"x")

        _before_trigger(monkeypatch, append)
    elif code == 104:
        moved = SftpUser(SENDER, users[SENDER].public_keys, uuid.uuid4())
        engine.load_registry(sim, users=(moved, users[RECEIVER]))
    elif code == 105:
        engine.load_registry(sim, infrefs={route.infref.name: False})
    elif code == 106:
        engine.load_registry(sim, routes=())
    elif code == 107:  # the receiving IT system has two SFTP users
        twin = SftpUser("beta_twin", users[RECEIVER].public_keys, users[RECEIVER].it_system)
        engine.load_registry(sim, users=(*registry.users, twin))
    elif code == 108:  # a connection the server has not seen die still writes the data file
        other = stack.enter_context(_sender_session(sim, sender))
        handle = other._client().open(f"OUT/{transfer.remote_name}", "w")
        stack.callback(handle.close)
        return handle  # closed by the test once the trigger has been answered
    elif code == 109:  # the receiver's IN still holds the name
        inbox = sim.data_dir / RECEIVER / "IN"
        inbox.mkdir(parents=True, exist_ok=True)
        (inbox / transfer.remote_name).write_bytes(b"an earlier file")
    elif code == 110:
        engine.load_registry(sim, users=(users[SENDER],))
    elif code == 199:  # the platform fails inside, once
        source, failed = sim.registry, []
        original = source.get

        def get():
            if threading.current_thread().name == "simulator-router" and not failed:
                failed.append(True)
                raise RuntimeError("the platform's database is gone")
            return original()

        monkeypatch.setattr(source, "get", get)
    return None


TRANSIENT = (108, 199)
CODES = (*range(100, 111), 199)


def test_error_receipts_are_shown_with_their_code_and_retried_when_transient(
    setup, monkeypatch, client_for, staff_a
):
    """Each code in turn on one integration (a setup per code would cost more than the code)."""
    sim, route, sender, receiver = setup
    client = client_for(staff_a)
    for code in CODES:
        transfer = queue(route, staff_a)
        with monkeypatch.context() as patch, contextlib.ExitStack() as stack:
            held = provoke(code, sim, route, sender, transfer, patch, stack)
            assert tasks.send_transfer(transfer.pk) == "sent", code
            assert sim.router.wait_idle(10)
            if held is not None:
                held.close()
        engine.load_registry(sim)  # the platform as it was
        try:
            check_receipt_outcome(code, sim, receiver, transfer, client)
        except AssertionError as error:
            raise AssertionError(f"error code {code}: {error}") from error
        shutil.rmtree(sim.data_dir / RECEIVER / "IN", ignore_errors=True)


def check_receipt_outcome(code, sim, receiver, transfer, client) -> None:
    transfer.refresh_from_db()
    refused = [o.error for o in sim.router.outcomes if o.name == transfer.remote_name]
    assert refused == [code]
    shown = page(client, transfer)
    alerts = Alert.objects.filter(transfer=transfer)
    if code in TRANSIENT:
        # Back in the queue by itself, uncounted, with the platform's reason on the page.
        assert (transfer.state, transfer.attempts) == (State.QUEUED, 0)
        assert transfer.waiting_since is not None
        assert transfer.last_error.startswith(f"KOMBIT error {code} ")
        assert transfer.last_error in shown
        assert 'id="transfer-last-error"' in shown
        assert 'id="transfer-waiting"' in shown
        # The retry is due after TRANSFER_RETRY_SECONDS; the cluster then runs the send again.
        assert retries(transfer).get().next_run <= timezone.now() + tasks.retry_delay(1)
        assert tasks.send_transfer(transfer.pk) == "sent"
        transfer.refresh_from_db()
        assert (transfer.state, transfer.attempts, transfer.error_code) == (
            State.DELIVERED,
            1,
            None,
        )
        assert transfer.waiting_since is None
        assert fetch_inbox(receiver.pk).received == 1
        received = ReceivedFile.objects.get(remote_name=transfer.remote_name)
        assert received.sha256 == hashlib.sha256(DATA).hexdigest()
        shown = page(client, transfer)
        assert f"KOMBIT error {code} " in shown  # the earlier attempt's fault stays visible
        assert "<td>1</td>" in shown  # attempts: the transient one is not counted
        assert not alerts.exists()
    else:
        # Failed with KOMBIT's code and the platform's words, an alert, nothing delivered.
        assert transfer.state == State.FAILED
        assert transfer.error_code == code
        assert transfer.attempts == 1
        assert 'id="transfer-kombit-error"' in shown
        assert str(code) in shown
        detail = next(o.detail for o in sim.router.outcomes if o.name == transfer.remote_name)
        assert detail in transfer.error_text
        assert detail in shown
        assert alerts.count() == 1
        expected = [transfer.remote_name] if code == 109 else []  # the earlier file, untouched
        assert files(sim.data_dir / RECEIVER / "IN") == expected
        assert not retries(transfer).exists()
    assert files(sim.data_dir / SENDER / "OUT") == []
    assert files(sim.data_dir / SENDER / "IN") == []  # the receipt was taken


# -- a full disk ----------------------------------------------------------------------------------


@pytest.mark.system
def test_a_full_disk_at_the_platform_fails_uploads_plainly_and_loses_nothing(
    tmp_path, settings, staff_a, operator, system_a, system_b, aarhus, client_for, monkeypatch
):
    settings.TRANSFER_RETRY_SECONDS = 1
    # The receiving side fetches only below, after the disk has filled: the sending worker
    # would otherwise fetch each file beside the sends and make room as it goes.
    monkeypatch.setattr(tasks, "_fetch_here", lambda *_args: None)
    payloads = [os.urandom(300 * 1024) for _ in range(6)]  # 1.8 MB for a 1 MiB disk
    with (
        small_disk(tmp_path / "serviceplatform", "1m"),
        integration(tmp_path, staff_a, operator, system_a, system_b, aarhus) as parts,
    ):
        sim, route, _sender, receiver = parts
        transfers = [queue(route, staff_a, data) for data in payloads]
        outcomes = [tasks.send_transfer(transfer.pk) for transfer in transfers]
        assert "sent" in outcomes and "retry" in outcomes, outcomes
        client = client_for(staff_a)
        for transfer, outcome in zip(transfers, outcomes, strict=True):
            transfer.refresh_from_db()
            if outcome == "retry":
                # Said plainly on the page, and queued again by itself.
                assert transfer.state == State.QUEUED
                assert "No space left on device" in transfer.last_error
                shown = page(client, transfer)
                assert transfer.last_error in shown
                assert retries(transfer).exists()
        # The receiver fetches, which makes room; the retries, due after TRANSFER_RETRY_SECONDS,
        # run as the cluster would run them, and the schedule collects receipts; bounded rounds.
        for _round in range(4):
            tasks.collect_receipts()
            fetch_inbox(receiver.pk)
            waiting = Transfer.objects.filter(state=State.QUEUED).values_list("pk", flat=True)
            if not waiting:
                break
            for transfer_id in waiting:
                tasks.send_transfer(transfer_id)
        assert sim.router.wait_idle(10)
        tasks.collect_receipts()
        fetch_inbox(receiver.pk)

        for transfer, data in zip(transfers, payloads, strict=True):
            transfer.refresh_from_db()
            assert transfer.state == State.DELIVERED, transfer.last_error
            routed = [o.error for o in sim.router.outcomes if o.name == transfer.remote_name]
            assert routed == [None]  # routed once, never refused
            received = ReceivedFile.objects.get(remote_name=transfer.remote_name)
            assert received.sha256 == transfer.sha256 == hashlib.sha256(data).hexdigest()
            assert Path(received.stored_path).read_bytes() == data
        for folder in (f"{SENDER}/OUT", f"{SENDER}/IN", f"{RECEIVER}/IN", ".simulator/tmp"):
            assert files(sim.data_dir / folder) == [], folder


@pytest.mark.system
def test_a_full_disk_at_the_receiving_portal_fails_the_fetch_plainly_and_loses_nothing(
    tmp_path, settings, staff_a, operator, system_a, system_b, aarhus
):
    settings.TRANSFER_DATA_DIR = tmp_path / "transfers"
    payloads = [os.urandom(200 * 1024) for _ in range(4)]  # 800 KiB for a 512 KiB disk
    store = settings.TRANSFER_DATA_DIR / "received"
    with (
        small_disk(store, "512k"),
        integration(tmp_path, staff_a, operator, system_a, system_b, aarhus) as parts,
    ):
        sim, route, _sender, receiver = parts
        transfers = [queue(route, staff_a, data) for data in payloads]
        # The first task sends them all together; the others find theirs taken.
        outcomes = [tasks.send_transfer(transfer.pk) for transfer in transfers]
        assert outcomes == ["sent"] + ["not queued"] * (len(transfers) - 1)
        assert sim.router.wait_idle(10)
        tasks.collect_receipts()
        with pytest.raises(SftpError, match="No space left on device"):
            fetch_inbox(receiver.pk)
        kept = ReceivedFile.objects.count()
        assert 0 < kept < len(payloads)
        # What was not stored stays on the server, and no partial file takes up the disk.
        assert len(files(sim.data_dir / RECEIVER / "IN")) == 2 * (len(payloads) - kept)
        assert files(store / RECEIVER / ".incoming") == []

        grow(store, "4m")
        assert fetch_inbox(receiver.pk).received == len(payloads) - kept
        for transfer, data in zip(transfers, payloads, strict=True):
            received = ReceivedFile.objects.get(remote_name=transfer.remote_name)
            assert Path(received.stored_path).read_bytes() == data
            assert received.sha256 == hashlib.sha256(data).hexdigest()
        assert files(sim.data_dir / RECEIVER / "IN") == []


@pytest.mark.system
def test_a_disk_that_fills_while_the_platform_delivers_leaves_no_half_delivery(
    tmp_path, settings, staff_a, operator, system_a, system_b, aarhus
):
    """Room for the data file and the trigger but not the metadata: the platform takes the
    delivery back and answers 199, the portal tries again, and the file arrives once."""
    settings.TRANSFER_RETRY_SECONDS = 1
    with (
        small_disk(tmp_path / "serviceplatform", "1m"),
        integration(tmp_path, staff_a, operator, system_a, system_b, aarhus) as parts,
    ):
        sim, route, _sender, receiver = parts
        for user in (SENDER, RECEIVER):
            sim.folders.ensure_user(user)
        disk = os.statvfs(sim.data_dir)
        pages = 64
        data = os.urandom(pages * disk.f_frsize)
        filler = sim.data_dir / ".simulator" / "filler"
        filler.write_bytes(b"\0" * (disk.f_bavail - pages - 1) * disk.f_frsize)
        transfer = queue(route, staff_a, data)

        assert tasks.send_transfer(transfer.pk) == "sent"
        assert sim.router.wait_idle(10)
        tasks.collect_receipts()
        transfer.refresh_from_db()
        assert transfer.state == State.QUEUED
        assert transfer.last_error.startswith("KOMBIT error 199 ")
        assert files(sim.data_dir / RECEIVER / "IN") == []  # nothing half delivered
        assert files(sim.data_dir / ".simulator" / "tmp") == []

        filler.unlink()  # room again
        assert tasks.send_transfer(transfer.pk) == "sent"
        assert sim.router.wait_idle(10)
        tasks.collect_receipts()
        transfer.refresh_from_db()
        assert (transfer.state, transfer.attempts) == (State.DELIVERED, 1)  # 199 not counted
        routed = [o.error for o in sim.router.outcomes if o.name == transfer.remote_name]
        assert routed == [199, None]
        assert fetch_inbox(receiver.pk).received == 1
        assert Path(ReceivedFile.objects.get().stored_path).read_bytes() == data


# -- PostgreSQL restarted under a running cluster -------------------------------------------------

FILES = 30


def _poll(server, sql: str) -> list[tuple] | None:
    """The query's rows, or None while the server is away."""
    import psycopg

    try:
        return server.execute(sql, "fdd")
    except psycopg.OperationalError:
        return None


def _delivered(server) -> int:
    rows = _poll(server, "SELECT count(*) FROM transfers_transfer WHERE state = 'delivered'")
    return rows[0][0] if rows else -1


@pytest.mark.system
def test_a_database_restart_under_a_running_cluster_loses_no_transfer(tmp_path):
    """A private PostgreSQL server, migrated; a worker cluster sends FILES files through the
    simulator and fetches them; the server is stopped at once (as if it died) mid-run and
    started again two seconds later."""
    with private_postgres() as server:
        server.create_database("fdd")
        url = server.url("fdd")
        environment = child_environment(
            DATABASE_URL=url,
            TRANSFER_RETRY_SECONDS="1",
            TRANSFER_TIMEOUT_SECONDS="5",
            TRANSFER_STALE_SECONDS="10",
            # A task cut off by the restart is offered again after Q_RETRY seconds.
            Q_TIMEOUT="20",
            Q_RETRY="21",
        )
        migrate = [sys.executable, "manage.py", "migrate", "--no-input", "-v0"]
        subprocess.run(migrate, cwd=ROOT, env=environment, check=True, timeout=300)
        registry = tmp_path / "registry.json"
        write_registry(registry)
        with running_simulator(tmp_path / "sp", registry) as sim:
            sent = private_portal.set_up(environment, sim, registry, files=FILES, size=20_000)
            with (
                private_portal.ticking(environment),
                private_portal.cluster(environment, tmp_path / "cluster.log"),
            ):
                # At the first delivery: a quarter could be all of them by the next poll on
                # a loaded machine, and the restart would come after the run.
                wait_for(lambda: _delivered(server) >= 1, timeout=120, interval=0.1)
                started = _delivered(server)
                server.restart(down_seconds=2)
                wait_for(lambda: _all_done(server, sim), timeout=180, interval=0.5)
            assert started < FILES, "the restart came after the run"

            transfers = dict(
                _poll(server, "SELECT remote_name, state FROM transfers_transfer") or []
            )
            assert transfers == dict.fromkeys(sent, "delivered")
            received = _poll(
                server,
                "SELECT r.remote_name, r.sha256, r.stored_path, r.file_transfer_uuid = "
                "t.file_transfer_uuid FROM transfers_receivedfile r JOIN transfers_transfer t "
                "ON t.remote_name = r.remote_name WHERE r.state = 'received'",
            )
            assert sorted(row[0] for row in received) == sorted(sent)  # each once
            for name, sha256, stored, same_platform_transfer in received:
                assert same_platform_transfer
                assert sha256 == sent[name]
                assert hashlib.sha256(Path(stored).read_bytes()).hexdigest() == sha256
            for name in sent:
                routed = [o.error for o in sim.router.outcomes if o.name == name]
                assert routed.count(None) == 1, (name, routed)  # delivered once
            for folder in (f"{SENDER}/OUT", f"{SENDER}/IN", f"{RECEIVER}/IN"):
                assert files(sim.data_dir / folder) == [], folder


def _all_done(server, sim) -> bool:
    rows = _poll(
        server,
        "SELECT (SELECT count(*) FROM transfers_transfer WHERE state = 'delivered'), "
        "(SELECT count(*) FROM transfers_receivedfile WHERE state = 'received')",
    )
    return bool(rows) and rows[0] == (FILES, FILES) and not files(sim.data_dir / RECEIVER / "IN")
