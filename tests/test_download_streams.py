"""A large download read over more than one connection at once (transfers.sftp, `_download`).

Against a real OpenSSH sshd on loopback (tests/support/sshd.py), through
tests/support/fault_proxy.py where a connection must break at a chosen moment: connection 1 is
always the session's own, 2 the second stream's. STREAMS_FROM is lowered so that a few MiB take the
way a large file takes. One test goes through transfers.fetch, where a failed download must leave
nothing stored. The block writer's bookkeeping (which range next, what is written, where the file
ends) is also tested on its own, on a local file.
"""

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest
from paramiko.sftp import SFTPError

from bench.delay_proxy import DelayProxy
from tests.support import engine
from tests.support.fault_proxy import FaultProxy
from tests.support.sending import metadata_for
from tests.support.sshd import sshd_fixture
from tests.support.streams import (
    MIB,
    carried,
    cut_the_first_while_both_carry,
    fail_connection,
    second_stream_joins,
    sha256_of,
    threads_named,
    until,
    write_file,
)
from transfers import sessions, sftp
from transfers.fetch import fetch_inbox
from transfers.models import ReceivedFile
from transfers.sftp import SftpError, SftpUnreachable

SIZE = 24 * MIB + 12_345  # not a multiple of the read size: the last read comes short

sshd = sshd_fixture()


@pytest.fixture(autouse=True)
def large_from_4_mib(monkeypatch):
    monkeypatch.setattr(sftp, "STREAMS_FROM", 4 * MIB)
    monkeypatch.setattr(sftp, "STREAMS_FROM_ROUND_TRIP", 0)  # loopback: a second one all the same


def stream_threads() -> list[threading.Thread]:
    return threads_named("sftp-download-stream")


# -- over sshd ------------------------------------------------------------------------------------


def test_a_large_file_comes_over_two_connections_whole_and_in_order(sshd, tmp_path):
    expected = write_file(sshd.root / "large.bin", SIZE)
    calls = []
    with FaultProxy(sshd.port) as proxy, sshd.session(proxy.port) as session:
        progress = second_stream_joins(lambda: carried(proxy, 2) > 4 * MIB, calls)
        result = session.get_file("large.bin", tmp_path / "large.bin", progress=progress)
        assert proxy.connections == 2
        assert carried(proxy, 1) > 2 * MIB and carried(proxy, 2) > 4 * MIB, proxy.offsets
        assert carried(proxy, 1) + carried(proxy, 2) < SIZE + 2 * MIB  # each range read once
        assert session.connected
    assert result == (SIZE, expected)
    assert sha256_of(tmp_path / "large.bin") == expected  # the digest is of the stored bytes
    assert calls == sorted(set(calls)) and calls[-1] == SIZE
    until(lambda: not stream_threads())


def test_a_file_below_the_threshold_uses_the_session_connection_alone(sshd, tmp_path):
    expected = write_file(sshd.root / "small.bin", 4 * MIB - 1)
    with FaultProxy(sshd.port) as proxy, sshd.session(proxy.port) as session:
        assert session.get_file("small.bin", tmp_path / "small.bin") == (4 * MIB - 1, expected)
        assert proxy.connections == 1


@pytest.mark.parametrize(("one_way", "connections"), [(0, 1), (0.015, 2)])
def test_a_second_connection_only_over_a_round_trip_that_bounds_one(
    sshd, tmp_path, monkeypatch, one_way, connections
):
    # Loopback answers in well under a millisecond; the delay proxy makes it 30 ms.
    monkeypatch.setattr(sftp, "STREAMS_FROM_ROUND_TRIP", 0.02)
    expected = write_file(sshd.root / "large.bin", 8 * MIB + 1)
    with (
        DelayProxy("127.0.0.1", sshd.port, delay=one_way) as link,
        FaultProxy(link.port) as proxy,
        sshd.session(proxy.port) as session,
    ):
        assert session.get_file("large.bin", tmp_path / "large.bin") == (8 * MIB + 1, expected)
        assert proxy.connections == connections
    assert sha256_of(tmp_path / "large.bin") == expected


@pytest.mark.parametrize("size", [4 * MIB, 4 * MIB + 1, 16 * 261_120])
def test_sizes_at_the_threshold_and_at_read_boundaries(sshd, tmp_path, size):
    expected = write_file(sshd.root / "edge.bin", size)
    with sshd.session() as session:
        assert session.get_file("edge.bin", tmp_path / "edge.bin") == (size, expected)
    assert sha256_of(tmp_path / "edge.bin") == expected


@pytest.mark.parametrize("kind", ["cut", "stall"])
def test_the_second_connection_broken_mid_file_leaves_its_reads_to_the_first(sshd, tmp_path, kind):
    """A reset or a black hole on the second connection: the session's own connection reads
    the ranges it had asked for, and the file is whole; a stall costs one timeout."""
    expected = write_file(sshd.root / "large.bin", SIZE)
    plan = fail_connection(2, kind, after=4 * MIB)
    with FaultProxy(sshd.port, plan=plan, linger=0.2) as proxy:
        with sshd.session(proxy.port, timeout=2.0) as session:
            progress = second_stream_joins(lambda: proxy.faults)
            started = time.monotonic()
            result = session.get_file("large.bin", tmp_path / "large.bin", progress=progress)
            elapsed = time.monotonic() - started
            assert session.connected
        assert [(fault.connection, fault.kind) for fault in proxy.faults] == [(2, kind)]
    assert result == (SIZE, expected)
    assert sha256_of(tmp_path / "large.bin") == expected
    assert elapsed < 20
    until(lambda: not stream_threads())


def test_a_second_connection_that_cannot_log_in_leaves_the_file_to_the_first(sshd, tmp_path):
    expected = write_file(sshd.root / "large.bin", SIZE)
    with FaultProxy(sshd.port, plan=fail_connection(2, "cut", after=0)) as proxy:
        with sshd.session(proxy.port) as session:
            assert session.get_file("large.bin", tmp_path / "large.bin") == (SIZE, expected)
        assert proxy.connections == 2 and carried(proxy, 2) < 64 * 1024


def test_the_session_connection_cut_mid_file_fails_it_and_a_new_session_reads_it_whole(
    sshd, tmp_path
):
    """Only the session's own connection decides: cut, the download fails with no stream left
    running, and the next attempt (a new connection, as a worker's retry makes) starts over
    and stores the whole file."""
    expected = write_file(sshd.root / "large.bin", SIZE)
    local = tmp_path / "large.bin"
    with FaultProxy(sshd.port) as proxy:
        session = sshd.session(proxy.port, timeout=5.0)
        session.connect()
        with pytest.raises(SftpUnreachable):
            session.get_file("large.bin", local, progress=cut_the_first_while_both_carry(proxy))
        assert not session.connected
        until(lambda: not stream_threads())
        assert proxy.faults and proxy.faults[0].connection == 1
        session.connect()  # connection 3: the retry
        assert session.get_file("large.bin", local) == (SIZE, expected)
        session.close()
    assert sha256_of(local) == expected


def test_every_connection_killed_mid_file_fails_the_download_instead_of_hanging(sshd, tmp_path):
    write_file(sshd.root / "large.bin", SIZE)
    session = sshd.session(timeout=5.0)
    session.connect()
    logins = sshd.log().count("Accepted publickey")
    killed = []

    def progress(done):
        if not killed:
            until(lambda: sshd.log().count("Accepted publickey") == logins + 1)
            time.sleep(0.2)  # the second stream under way
            killed.append(sshd.kill_sessions())

    started = time.monotonic()
    with pytest.raises(SftpError):
        session.get_file("large.bin", tmp_path / "large.bin", progress=progress)
    assert time.monotonic() - started < 20
    assert killed and killed[0] >= 2  # both connections' sshd processes
    assert not session.connected
    until(lambda: not stream_threads())


def test_a_file_that_shrinks_while_it_is_read_is_refused(sshd, tmp_path):
    remote = sshd.root / "large.bin"
    write_file(remote, SIZE)

    def progress(done):
        if done > 2 * MIB and remote.stat().st_size == SIZE:
            os.truncate(remote, 10 * MIB)

    with sshd.session() as session, pytest.raises(SftpError, match=r"shrank|changed"):
        session.get_file("large.bin", tmp_path / "large.bin", progress=progress)
    until(lambda: not stream_threads())


def test_a_fetch_cut_mid_file_stores_nothing_and_the_next_stores_it_once_with_its_sha256(
    sshd, tmp_path, settings, staff_a, operator, system_a, system_b, aarhus
):
    """Through transfers.fetch: the session's connection cut in the middle of the data file
    leaves no record, no stored or staged file and the pair on the server; the next fetch
    reads it again from the start, over two connections, and records the stored bytes'
    SHA-256 before it removes the pair."""
    settings.TRANSFER_DATA_DIR = tmp_path / "transfers"
    inbox = sshd.root / "IN"
    inbox.mkdir()
    # The receiver's account is made below, at the fault proxy's port.
    route = engine.ready_route(
        staff=staff_a,
        operator=operator,
        sender=system_a,
        receiver=system_b,
        municipalities=[aarhus],
        receiver_account=False,
    ).route
    name = "alfa_omsorg_FDD_5d3c2a10-7c7e-4b8e-9f0a-2b1c3d4e5f60.csv"
    expected = write_file(inbox / name, SIZE)
    (inbox / f"{name}.metadata").write_bytes(metadata_for(route, name, SIZE))
    store = settings.TRANSFER_DATA_DIR / "received" / sshd.username

    with FaultProxy(sshd.port, plan=fail_connection(1, "cut", after=8 * MIB)) as proxy:
        receiver = engine.account(
            system_b, sshd.username, None, port=proxy.port, host_key=sshd.host_key
        )
        sshd.authorize(receiver.public_key)
        try:
            with pytest.raises(SftpUnreachable):
                fetch_inbox(receiver.pk)
            assert not ReceivedFile.objects.exists()
            assert [path for path in store.rglob("*") if path.is_file()] == []
            assert sorted(path.name for path in inbox.iterdir()) == [name, f"{name}.metadata"]

            assert fetch_inbox(receiver.pk).received == 1
        finally:
            sessions.drop_all_sessions()
        assert proxy.faults[0].connection == 1 and proxy.connections >= 3
    received = ReceivedFile.objects.get()
    assert (received.size, received.sha256) == (SIZE, expected)
    assert sha256_of(Path(received.stored_path)) == expected
    assert list(inbox.iterdir()) == []
    assert list((store / ".incoming").iterdir()) == []


# -- the writer alone ---------------------------------------------------------------------------


@pytest.fixture
def local(tmp_path):
    descriptor = os.open(tmp_path / "assembled", os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    yield descriptor
    os.close(descriptor)


def test_pieces_written_out_of_order_make_the_file_and_its_digest_in_order(local, tmp_path):
    data = os.urandom(3 * sftp.HASH_BLOCK + 5)
    writer = sftp._BlockWriter(local)
    writer.size = len(data)
    ranges = []
    while asked := writer.take(MIB):
        ranges.append(asked)
    assert ranges == [(offset, MIB) for offset in range(0, 4 * MIB, MIB)]
    for offset, length in reversed(ranges):  # the last first
        block = memoryview(data)[offset : offset + length]
        if len(block) < length:
            writer.came_short(offset, len(block), length)
        writer.write(offset, block)
        assert writer.written == (0 if offset else len(data))
    assert writer.finish() == len(data)
    assert writer.digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "assembled").read_bytes() == data


def test_a_short_read_inside_the_file_is_asked_for_again_and_one_at_its_end_ends_it(local):
    writer = sftp._BlockWriter(local)
    writer.size = 600
    assert writer.take(256) == (0, 256)
    writer.came_short(0, 100, 256)  # the server gave less than asked
    writer.write(0, memoryview(b"a" * 100))
    assert writer.take(256) == (100, 156)
    writer.write(100, memoryview(b"b" * 156))
    assert writer.take(256) == (256, 256)
    assert writer.take(256) == (512, 256)
    writer.write(256, memoryview(b"c" * 256))
    writer.came_short(512, 88, 256)  # short at the size: the end, no more reads
    writer.write(512, memoryview(b"d" * 88))
    assert writer.take(256) is None
    assert writer.finish() == 600
    assert (
        writer.digest.hexdigest()
        == hashlib.sha256(b"a" * 100 + b"b" * 156 + b"c" * 256 + b"d" * 88).hexdigest()
    )


def test_ranges_a_stream_gives_back_are_taken_again_before_new_ones(local):
    writer = sftp._BlockWriter(local)
    writer.size = 10 * 256
    taken = [writer.take(256) for _ in range(3)]
    writer.give_back(taken[1:])
    assert {writer.take(256), writer.take(256)} == set(taken[1:])
    assert writer.take(256) == (768, 256)
    writer.abandon()


def test_a_gap_or_an_early_end_of_file_is_refused(local):
    writer = sftp._BlockWriter(local)
    for offset in (0, 4, 8):
        assert writer.take(4) == (offset, 4)
    writer.write(0, memoryview(b"x" * 4))
    writer.write(8, memoryview(b"z" * 4))  # 4..8 never arrived
    writer.end_at(12)
    with pytest.raises(SFTPError, match="changed"):
        writer.finish()

    shrunk = sftp._BlockWriter(local)
    shrunk.size = 100
    assert shrunk.take(50) == (0, 50) and shrunk.take(50) == (50, 50)
    shrunk.write(0, memoryview(b"x" * 50))
    shrunk.end_at(50)  # the server's end of file, before the size it gave
    with pytest.raises(SFTPError, match="shrank"):
        shrunk.finish()


def test_an_empty_file(local):
    writer = sftp._BlockWriter(local)
    writer.size = 0
    assert writer.take(256) == (0, 256)  # asked once: the answer is end of file
    writer.end_at(0)
    assert writer.take(256) is None
    assert writer.finish() == 0
    assert writer.digest.hexdigest() == hashlib.sha256(b"").hexdigest()


def test_every_hashed_stretch_is_handed_to_the_disk_at_once_and_a_refusal_changes_nothing(
    local, tmp_path, monkeypatch
):
    # Without it the closing fsync wrote the whole file while the transfer waited.
    if os.uname().sysname == "Linux":
        assert sftp._SYNC_FILE_RANGE is not None
    started = []

    def refusing(fd, offset, count, flags):
        started.append((fd, offset, count, flags))
        return -1  # as for a file system that does not take the hint

    monkeypatch.setattr(sftp, "_SYNC_FILE_RANGE", refusing)
    data = os.urandom(3 * sftp.HASH_BLOCK + 5)
    writer = sftp._BlockWriter(local)
    writer.size = len(data)
    while asked := writer.take(MIB):
        offset, length = asked
        block = memoryview(data)[offset : offset + length]
        if len(block) < length:
            writer.came_short(offset, len(block), length)
        writer.write(offset, block)
    assert writer.finish() == len(data)
    assert writer.digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "assembled").read_bytes() == data
    assert {(fd, flags) for fd, _offset, _count, flags in started} == {(local, 2)}
    covered = 0
    for _fd, offset, count, _flags in started:
        assert (offset, count > 0) == (covered, True)  # in order, no gap, no overlap
        covered += count
    assert covered == len(data)
