"""A large upload written over more than one connection at once (transfers.sftp, `_upload`).

Against a real OpenSSH sshd on loopback (tests/support/sshd.py), through
tests/support/fault_proxy.py where a connection must break at a chosen moment: connection 1 is
always the session's own, 2 the second stream's. STREAMS_FROM is lowered so that a few MiB take
the way a large file takes. The pieces' bookkeeping (which piece next, what goes back, when the
session may close the file) is also tested on its own, on a local file.
"""

import hashlib
import io
import os
import threading
import time

import pytest

from tests.support.fault_proxy import FaultProxy
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
from transfers import sftp
from transfers.sftp import SftpError, SftpUnreachable

SIZE = 24 * MIB + 12_345  # not a multiple of the write size: the last write is short

sshd = sshd_fixture()


@pytest.fixture(autouse=True)
def large_from_4_mib(monkeypatch):
    monkeypatch.setattr(sftp, "STREAMS_FROM", 4 * MIB)


def stream_threads() -> list[threading.Thread]:
    return threads_named("sftp-upload-stream")


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "source.bin"
    return path, write_file(path, SIZE)


# -- over sshd ------------------------------------------------------------------------------------


def test_a_large_file_goes_over_two_connections_whole(sshd, source):
    local, expected = source
    calls = []
    with FaultProxy(sshd.port) as proxy, sshd.session(proxy.port) as session:
        progress = second_stream_joins(lambda: carried(proxy, 2) > 4 * MIB, calls)
        result = session.put_file(local, "large.bin", progress=progress)
        assert proxy.connections == 2
        assert carried(proxy, 1) > 2 * MIB and carried(proxy, 2) > 4 * MIB, proxy.offsets
        assert carried(proxy, 1) + carried(proxy, 2) < SIZE + 2 * MIB  # each piece written once
        assert session.connected
        # The second connection's handle was closed before the session's close returned.
        assert sha256_of(sshd.root / "large.bin") == expected
    assert result == (SIZE, expected)
    assert calls == sorted(set(calls)) and calls[-1] == SIZE
    until(lambda: not stream_threads())


def test_a_file_below_the_threshold_uses_the_session_connection_alone(sshd, tmp_path):
    local = tmp_path / "small.bin"
    expected = write_file(local, 4 * MIB - 1)
    with FaultProxy(sshd.port) as proxy, sshd.session(proxy.port) as session:
        assert session.put_file(local, "small.bin") == (4 * MIB - 1, expected)
        assert proxy.connections == 1
    assert sha256_of(sshd.root / "small.bin") == expected


@pytest.mark.parametrize("size", [4 * MIB, 4 * MIB + 1, 16 * 261_120, 16 * 261_120 + 1])
def test_sizes_at_the_threshold_and_at_write_boundaries(sshd, tmp_path, size):
    local = tmp_path / "edge.bin"
    expected = write_file(local, size)
    with sshd.session() as session:
        assert session.put_file(local, "edge.bin") == (size, expected)
    assert sha256_of(sshd.root / "edge.bin") == expected


def test_small_writes_over_two_connections(sshd, source):
    """32 KiB writes, as on a server without limits@openssh.com or after a large write was
    refused: the second connection writes the pieces as they were cut."""
    local, expected = source
    with FaultProxy(sshd.port) as proxy, sshd.session(proxy.port) as session:
        session._write_size = sftp.SMALL_REQUEST
        progress = second_stream_joins(lambda: carried(proxy, 2) > 2 * MIB)
        assert session.put_file(local, "small-writes.bin", progress=progress) == (SIZE, expected)
        assert proxy.connections == 2
    assert sha256_of(sshd.root / "small-writes.bin") == expected


def test_a_file_written_again_over_a_longer_one_is_cut_to_its_size(sshd, source, tmp_path):
    """Only the session's open truncates; the second connection's open must not undo it."""
    local, expected = source
    write_file(sshd.root / "again.bin", SIZE + 5 * MIB)
    with FaultProxy(sshd.port) as proxy, sshd.session(proxy.port) as session:
        progress = second_stream_joins(lambda: carried(proxy, 2) > 2 * MIB)
        assert session.put_file(local, "again.bin", progress=progress) == (SIZE, expected)
    assert sha256_of(sshd.root / "again.bin") == expected


@pytest.mark.parametrize("kind", ["cut", "stall"])
def test_the_second_connection_broken_mid_file_leaves_its_writes_to_the_first(sshd, source, kind):
    """A reset or a black hole on the second connection: the session's own connection writes
    the pieces it had not seen acknowledged, and the file is whole; a stall costs one
    timeout."""
    local, expected = source
    plan = fail_connection(2, kind, after=4 * MIB)
    with FaultProxy(sshd.port, plan=plan, linger=0.2) as proxy:
        with sshd.session(proxy.port, timeout=2.0) as session:
            progress = second_stream_joins(lambda: proxy.faults)
            started = time.monotonic()
            result = session.put_file(local, "large.bin", progress=progress)
            elapsed = time.monotonic() - started
            assert session.connected
        assert [(fault.connection, fault.kind) for fault in proxy.faults] == [(2, kind)]
    assert result == (SIZE, expected)
    assert sha256_of(sshd.root / "large.bin") == expected
    assert elapsed < 20
    until(lambda: not stream_threads())


def test_a_second_connection_that_cannot_log_in_leaves_the_file_to_the_first(sshd, source):
    local, expected = source
    with FaultProxy(sshd.port, plan=fail_connection(2, "cut", after=0)) as proxy:
        with sshd.session(proxy.port) as session:
            assert session.put_file(local, "large.bin") == (SIZE, expected)
        assert proxy.connections == 2 and carried(proxy, 2) < 64 * 1024
    assert sha256_of(sshd.root / "large.bin") == expected


def test_a_second_connection_that_cannot_connect_leaves_the_file_to_the_first(
    sshd, source, monkeypatch
):
    """Nothing listens where the second connection goes: refused at once."""
    local, expected = source
    nowhere = FaultProxy(sshd.port)
    nowhere.stop()  # a port that was free a moment ago and has no listener now
    helper = sftp.SftpSession._helper

    def elsewhere(self):
        other = helper(self)
        other.port = nowhere.port
        return other

    monkeypatch.setattr(sftp.SftpSession, "_helper", elsewhere)
    calls = []
    with sshd.session() as session:
        assert session.put_file(local, "large.bin", progress=calls.append) == (SIZE, expected)
    assert sha256_of(sshd.root / "large.bin") == expected
    assert calls == sorted(set(calls)) and calls[-1] == SIZE


def test_the_session_connection_cut_mid_file_fails_it_and_a_retry_writes_it_whole(sshd, source):
    """Only the session's own connection decides: cut, the upload fails with no stream left
    running, and the next attempt (a new connection, as a worker's retry makes) starts over
    and writes the whole file."""
    local, expected = source
    with FaultProxy(sshd.port) as proxy:
        session = sshd.session(proxy.port, timeout=5.0)
        session.connect()

        with pytest.raises(SftpUnreachable):
            session.put_file(local, "large.bin", progress=cut_the_first_while_both_carry(proxy))
        assert not session.connected
        until(lambda: not stream_threads())
        assert proxy.faults and proxy.faults[0].connection == 1
        session.connect()  # connection 3: the retry
        assert session.put_file(local, "large.bin") == (SIZE, expected)
        session.close()
    assert sha256_of(sshd.root / "large.bin") == expected


def test_every_connection_killed_mid_file_fails_the_upload_instead_of_hanging(sshd, source):
    local, _expected = source
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
        session.put_file(local, "large.bin", progress=progress)
    assert time.monotonic() - started < 20
    assert killed and killed[0] >= 2  # both connections' sshd processes
    assert not session.connected
    until(lambda: not stream_threads())


# -- the pieces alone -----------------------------------------------------------------------------


@pytest.fixture
def pieces_of():
    """_UploadPieces over bytes in memory, read 4 pieces a block; the readers stopped after."""
    readers = []

    def make(data: bytes, request_size: int) -> sftp._UploadPieces:
        digest = hashlib.sha256()
        readers.append(sftp._BlockReader(io.BytesIO(data), digest, 4 * request_size))
        return sftp._UploadPieces(readers[-1], request_size, timeout=5.0)

    yield make
    for reader in readers:
        reader.stop()


def test_pieces_come_in_file_order_and_make_the_file(pieces_of):
    data = os.urandom(9 * 1000 + 7)
    pieces = pieces_of(data, 1000)
    taken = []
    while (piece := pieces.take()) is not None:
        taken.append((piece[0], bytes(piece[1])))
    assert [offset for offset, _data in taken] == list(range(0, len(data), 1000))
    assert b"".join(piece for _offset, piece in taken) == data
    assert pieces.ended and pieces.size == len(data)
    assert pieces.settle() is False  # no other stream: the session may close at once


def test_pieces_given_back_are_taken_again_before_new_ones(pieces_of):
    pieces = pieces_of(os.urandom(10 * 100), 100)
    assert pieces.join()
    first, second, third = pieces.take(), pieces.take(), pieces.take()
    pieces.give_back([second, third])
    assert {pieces.take()[0], pieces.take()[0]} == {second[0], third[0]}
    assert pieces.take()[0] == 300
    assert first[0] == 0


def test_the_session_closes_only_after_the_other_streams_left_or_gave_back(pieces_of):
    pieces = pieces_of(os.urandom(300), 100)
    assert pieces.join()
    helper_piece = pieces.take()
    while pieces.take() is not None:
        pass
    settled = []
    waiting = threading.Thread(target=lambda: settled.append(pieces.settle()))
    waiting.start()
    time.sleep(0.1)
    assert not settled  # the other stream still has a write out
    pieces.give_back([helper_piece])
    waiting.join(5)
    assert settled == [True]
    assert pieces.take() == helper_piece
    pieces.leave()
    assert pieces.settle() is False
    assert not pieces.join()  # too late for another stream: the file is being closed


def test_a_local_read_failure_reaches_every_stream():
    class Broken(io.BytesIO):
        def read(self, *_args):
            raise OSError("the disk is gone")

    reader = sftp._BlockReader(Broken(), hashlib.sha256())
    pieces = sftp._UploadPieces(reader, 100, timeout=5.0)
    for _ in range(2):
        with pytest.raises(OSError, match="disk is gone"):
            pieces.take()
    reader.stop()
