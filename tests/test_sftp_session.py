"""SftpSession against a real OpenSSH sshd on loopback (tests/support/sshd.py); no mocks.

Every test is bounded in time: sessions use short timeouts, and the tests that break a
connection run the transfer in a thread they wait for with a deadline.
"""

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.sshd import SSH_KEYGEN, sshd_fixture
from transfers import sftp
from transfers.sftp import (
    HostKeyChanged,
    HostKeyUnknown,
    SftpError,
    SftpSession,
    host_key_fingerprint,
    probe_host_key,
)

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20

sshd = sshd_fixture()


def session_for(server, **overrides) -> SftpSession:
    arguments = {
        "host": server.host,
        "port": server.port,
        "username": server.username,
        "private_key": server.private_key,
        "host_key": server.host_key,
        "timeout": 10.0,
    }
    arguments.update(overrides)
    return SftpSession(**arguments)


def write_file(path: Path, size: int) -> str:
    """`size` bytes of random data (a random MiB repeated); returns the SHA-256."""
    block = os.urandom(MIB)
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        left = size
        while left:
            piece = block[: min(left, MIB)]
            digest.update(piece)
            out.write(piece)
            left -= len(piece)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        while block := data.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def keygen(path: Path, *options: str) -> str:
    subprocess.run(
        [SSH_KEYGEN, "-q", "-N", "", "-C", "", *options, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return " ".join(Path(f"{path}.pub").read_text().split()[:2])


def accepted_logins(server) -> int:
    return server.log().count("Accepted publickey")


def wait_for_log(server, text: str, deadline: float = 5.0) -> None:
    end = time.monotonic() + deadline
    while text not in server.log():
        if time.monotonic() > end:
            raise AssertionError(f"{text!r} not in the sshd log:\n{server.log()}")
        time.sleep(0.05)


def in_thread(function, deadline: float):
    """Run `function` in a thread; return its result or exception, failing after `deadline`."""
    outcome = {}

    def target():
        try:
            outcome["result"] = function()
        except BaseException as error:  # handed to the test
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(deadline)
    assert not thread.is_alive(), f"still running after {deadline} s: a hang"
    return outcome, time.monotonic() - started


# -- transfers -----------------------------------------------------------------------------------


def test_upload_and_download_keep_size_and_sha256(sshd, tmp_path):
    size = 5 * MIB + 12_345  # not a multiple of any request size
    source = tmp_path / "source.bin"
    expected = write_file(source, size)
    with session_for(sshd) as session:
        assert session.connected
        assert session.put_file(source, "upload.bin") == (size, expected)
        assert sha256_of(sshd.root / "upload.bin") == expected

        remote_sha = write_file(sshd.root / "remote.bin", size)
        target = tmp_path / "downloaded.bin"
        assert session.get_file("remote.bin", target) == (size, remote_sha)
        assert sha256_of(target) == remote_sha
        assert session.transport.remote_cipher == "aes128-gcm@openssh.com"
    assert not session.connected


def test_a_write_the_server_refuses_fails_the_upload_and_keeps_the_session(sshd, tmp_path):
    """The writes and the close go out pipelined; a refused one must still be reported. A
    trigger not written whole is removed before it is closed."""
    source = tmp_path / "source.bin"
    write_file(source, 3 * MIB)
    # Every write to it is refused (no space); removing it removes the link, not the device.
    (sshd.root / "full").symlink_to("/dev/full")
    with session_for(sshd) as session:
        with pytest.raises(SftpError):
            session.put_file(source, "full")
        assert (sshd.root / "full").is_symlink()
        with pytest.raises(SftpError):
            session.put_bytes(b"<trigger/>" * 1000, "full")
        assert not (sshd.root / "full").is_symlink()
        assert Path("/dev/full").is_char_device()
        assert session.connected
        assert session.put_bytes(b"still usable", "after.txt") is None
        assert (sshd.root / "after.txt").read_bytes() == b"still usable"


@pytest.mark.parametrize("size", [0, 1, 261_120, 261_121, 3 * 261_120])
def test_sizes_at_request_boundaries(sshd, tmp_path, size):
    source = tmp_path / "source.bin"
    expected = write_file(source, size)
    with session_for(sshd) as session:
        assert session.put_file(source, "edge.bin") == (size, expected)
        assert session.size("edge.bin") == size
        assert session.get_file("edge.bin", tmp_path / "back.bin") == (size, expected)


def test_small_requests_and_short_reads(sshd, tmp_path):
    """32 KiB requests (servers without limits@openssh.com), and reads larger than the server
    serves (OpenSSH shortens them), which the download loop must complete."""
    size = 3 * MIB + 777
    source = tmp_path / "source.bin"
    expected = write_file(source, size)
    with session_for(sshd) as session:
        assert (session._read_size, session._write_size) == (261_120, 261_120)
        session._read_size = session._write_size = sftp.SMALL_REQUEST
        assert session.put_file(source, "small.bin") == (size, expected)
        assert session.get_file("small.bin", tmp_path / "a.bin") == (size, expected)
        session._read_size = 400_000  # more than the server's 261,120: every read comes short
        assert session.get_file("small.bin", tmp_path / "b.bin") == (size, expected)
        assert sha256_of(tmp_path / "b.bin") == expected


def test_progress_is_monotonic_and_ends_at_the_size(sshd, tmp_path):
    size = 4 * MIB + 1
    source = tmp_path / "source.bin"
    write_file(source, size)
    uploaded, downloaded = [], []
    with session_for(sshd) as session:
        session.put_file(source, "progress.bin", progress=uploaded.append)
        session.get_file("progress.bin", tmp_path / "back.bin", progress=downloaded.append)
    for calls in (uploaded, downloaded):
        assert len(calls) > 2
        assert calls == sorted(calls)
        assert len(set(calls)) == len(calls)
        assert calls[-1] == size

    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    uploaded, downloaded = [], []
    with session_for(sshd) as session:
        session.put_file(empty, "empty", progress=uploaded.append)
        session.get_file("empty", tmp_path / "empty-back", progress=downloaded.append)
    assert uploaded == downloaded == [0]


def test_small_operations(sshd, tmp_path):
    (sshd.root / "OUT").mkdir()
    with session_for(sshd) as session:
        session.put_bytes(b"<Trigger/>", "OUT/a.trigger")
        assert (sshd.root / "OUT" / "a.trigger").read_bytes() == b"<Trigger/>"
        session.put_bytes(b"", "OUT/empty")
        assert session.size("OUT/empty") == 0
        assert session.listdir("OUT") == ["a.trigger", "empty"]
        session.rename("OUT/a.trigger", "OUT/b.trigger")
        assert session.listdir("OUT") == ["b.trigger", "empty"]
        assert session.size("OUT/b.trigger") == 10
        assert 0 <= session.age("OUT/b.trigger") < 60
        old = time.time() - 3600
        os.utime(sshd.root / "OUT" / "b.trigger", (old, old))
        assert 3590 < session.age("OUT/b.trigger") < 3700
        session.remove("OUT/b.trigger")
        assert session.size("OUT/b.trigger") is None
        assert session.age("OUT/b.trigger") is None
        with pytest.raises(SftpError, match=r"Removing OUT/b\.trigger"):
            session.remove("OUT/b.trigger")
        with pytest.raises(SftpError, match="Listing NOWHERE"):
            session.listdir("NOWHERE")
        assert session.connected  # a refused request leaves the session usable


def test_missing_remote_file(sshd, tmp_path):
    with session_for(sshd) as session:
        assert session.size("IN/missing.bin") is None
        with pytest.raises(SftpError, match=r"missing\.bin does not exist"):
            session.get_file("IN/missing.bin", tmp_path / "x.bin")
        assert session.connected
        session.put_bytes(b"still usable", "after.txt")
        assert session.size("after.txt") == 12
    with session_for(sshd) as session, pytest.raises(SftpError, match="Cannot read"):
        session.put_file(tmp_path / "does-not-exist", "x.bin")
    source = tmp_path / "source.bin"
    write_file(source, 10)
    with session_for(sshd) as session, pytest.raises(SftpError, match="No such file"):
        session.put_file(source, "NO/SUCH/DIR/x.bin")


def test_one_connection_for_fifty_files(sshd, tmp_path):
    logins = accepted_logins(sshd)
    with session_for(sshd) as session:
        transport = session.transport
        for number in range(50):
            data = f"file {number}\n".encode() * (number + 1)
            if number % 2:
                session.put_bytes(data, f"many-{number}.txt")
            else:
                source = tmp_path / f"many-{number}.txt"
                source.write_bytes(data)
                session.put_file(source, f"many-{number}.txt")
            size, digest = session.get_file(f"many-{number}.txt", tmp_path / "back.txt")
            assert (size, digest) == (len(data), hashlib.sha256(data).hexdigest())
            session.connect()  # connected already: a no-op, not a new connection
            assert session.transport is transport
        assert len(session.listdir(".")) == 50
    assert accepted_logins(sshd) == logins + 1


# -- host keys and authentication ------------------------------------------------------------------


def test_unknown_host_key_is_refused_with_its_fingerprint(sshd):
    listed = subprocess.run(
        [SSH_KEYGEN, "-l", "-E", "sha256", "-f", f"{sshd.host_key_path}.pub"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[1]
    with pytest.raises(HostKeyUnknown) as caught:
        session_for(sshd, host_key=None).connect()
    assert caught.value.fingerprint == listed
    assert caught.value.offered == sshd.host_key
    assert host_key_fingerprint(sshd.host_key) == listed
    assert probe_host_key(sshd.host, sshd.port) == sshd.host_key
    assert listed in str(caught.value)


def test_pinned_key_with_a_comment_connects(sshd):
    with session_for(sshd, host_key=sshd.host_key + " root@example\n") as session:
        assert session.listdir(".") == []


def test_changed_host_key_is_refused_before_authentication(sshd, tmp_path):
    other = keygen(tmp_path / "other", "-t", "ed25519")
    before = len(sshd.log())
    with pytest.raises(HostKeyChanged) as caught:
        session_for(sshd, host_key=other).connect()
    assert caught.value.pinned_fingerprint == host_key_fingerprint(other)
    assert caught.value.offered_fingerprint == host_key_fingerprint(sshd.host_key)
    assert caught.value.offered == sshd.host_key
    wait_for_log(sshd, "preauth")  # sshd has logged the closed connection
    log = sshd.log()[before:]
    assert "Connection from" in log
    for sign_of_authentication in ("publickey", "Accepted", "Failed", "Postponed", "userauth"):
        assert sign_of_authentication not in log


def test_an_rsa_host_key_pin_against_an_ed25519_server_is_a_change(sshd, tmp_path):
    other = keygen(tmp_path / "rsa_host", "-t", "rsa", "-b", "3072")
    with pytest.raises(HostKeyChanged):
        session_for(sshd, host_key=other).connect()


def test_wrong_client_key_fails_authentication(sshd, tmp_path):
    keygen(tmp_path / "stranger", "-t", "ed25519")
    stranger = (tmp_path / "stranger").read_bytes()
    with pytest.raises(SftpError, match="Authentication failed") as caught:
        session_for(sshd, private_key=stranger).connect()
    assert sshd.username in str(caught.value)


def test_rsa_pem_client_key(sshd, tmp_path):
    public = keygen(tmp_path / "rsa", "-t", "rsa", "-b", "3072", "-m", "PEM")
    private = (tmp_path / "rsa").read_bytes()
    assert private.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    sshd.authorize(public)
    with session_for(sshd, private_key=private) as session:
        session.put_bytes(b"rsa", "rsa.txt")
    assert (sshd.root / "rsa.txt").read_bytes() == b"rsa"


def test_unusable_private_key(sshd):
    with pytest.raises(SftpError, match="private key cannot be read"):
        session_for(sshd, private_key=b"not a key").connect()


# -- failures --------------------------------------------------------------------------------------


def test_connection_refused_and_silent_server(sshd):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(SftpError, match="Cannot connect"):
        SftpSession(
            host="127.0.0.1",
            port=port,
            username="x",
            private_key=sshd.private_key,
            host_key=None,
            timeout=2,
        ).connect()

    with socket.socket() as silent:  # accepts TCP, never says a word of SSH
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        with pytest.raises(SftpError, match="SSH negotiation"):
            probe_host_key("127.0.0.1", silent.getsockname()[1], timeout=1)
        assert time.monotonic() - started < 10


def test_not_connected(sshd, tmp_path):
    session = session_for(sshd)
    with pytest.raises(SftpError, match="not connected"):
        session.size("x")
    session.connect()
    session.close()
    session.close()
    with pytest.raises(SftpError, match="not connected"):
        session.get_file("x", tmp_path / "x")


@pytest.mark.parametrize("direction", ["upload", "download"])
def test_broken_connection_mid_transfer_raises_instead_of_hanging(sshd, tmp_path, direction):
    size = 64 * MIB
    write_file(tmp_path / "source.bin", size)
    write_file(sshd.root / "remote.bin", size)
    session = session_for(sshd, timeout=5.0)
    session.connect()
    calls = []

    def progress(done):
        calls.append(done)
        if len(calls) == 2:
            assert sshd.kill_sessions() >= 1

    def transfer():
        if direction == "upload":
            return session.put_file(tmp_path / "source.bin", "up.bin", progress=progress)
        return session.get_file("remote.bin", tmp_path / "down.bin", progress=progress)

    outcome, elapsed = in_thread(transfer, deadline=30)
    assert isinstance(outcome.get("error"), SftpError), outcome
    assert elapsed < 20
    assert calls[-1] < size
    assert not session.connected
    with pytest.raises(SftpError, match="not connected"):
        session.size("remote.bin")
    session.connect()  # a worker reconnects after a broken session
    assert session.size("remote.bin") == size
    session.close()


def test_closed_transport_mid_download(sshd, tmp_path):
    write_file(sshd.root / "remote.bin", 32 * MIB)
    with session_for(sshd, timeout=5.0) as session:

        def progress(done):
            if done > 4 * MIB:
                session.transport.close()

        outcome, _elapsed = in_thread(
            lambda: session.get_file("remote.bin", tmp_path / "x", progress=progress), deadline=30
        )
        assert isinstance(outcome.get("error"), SftpError), outcome
        assert not session.connected


# -- memory ----------------------------------------------------------------------------------------

MEMORY_PROBE = """
import json, sys
sys.path.insert(0, {root!r})
from transfers.sftp import SftpSession

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

spec = json.loads(sys.argv[1])
session = SftpSession(host=spec["host"], port=spec["port"], username=spec["username"],
                      private_key=open(spec["key"], "rb").read(), host_key=spec["host_key"])
session.connect()
idle = status("VmHWM")
if spec["direction"] == "download":
    result = session.get_file(spec["remote"], spec["local"])
else:
    result = session.put_file(spec["local"], spec["remote"])
session.close()
print(json.dumps({{"idle": idle, "peak": status("VmHWM"), "size": result[0]}}))
"""


def peak_above_idle_mib(server, direction: str, local: Path, remote: str) -> float:
    """Peak RSS growth (VmHWM) of a fresh process doing one transfer, in MiB."""
    spec = {
        "host": server.host,
        "port": server.port,
        "username": server.username,
        "key": str(server.private_key_path),
        "host_key": server.host_key,
        "direction": direction,
        "local": str(local),
        "remote": remote,
    }
    output = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE.format(root=str(ROOT)), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    measured = json.loads(output.stdout)
    assert (
        measured["size"]
        == (local if direction == "upload" else server.root / remote).stat().st_size
    )
    return (measured["peak"] - measured["idle"]) / 1024


def test_memory_does_not_grow_with_the_file_size(sshd, tmp_path):
    growth = {}
    for mib in (64, 256):
        write_file(sshd.root / f"remote-{mib}.bin", mib * MIB)
        local = tmp_path / f"down-{mib}.bin"
        growth["download", mib] = peak_above_idle_mib(sshd, "download", local, f"remote-{mib}.bin")
        growth["upload", mib] = peak_above_idle_mib(sshd, "upload", local, f"up-{mib}.bin")
        local.unlink()
        (sshd.root / f"remote-{mib}.bin").unlink()
        (sshd.root / f"up-{mib}.bin").unlink()
    # bounded by the requests in flight and the queues, not by the file: 4x the file size apart
    for direction in ("download", "upload"):
        assert growth[direction, 64] < 32, growth
        assert growth[direction, 256] < 32, growth
        assert growth[direction, 256] - growth[direction, 64] < 8, growth


def test_chunk_store_behind_the_channel_pipe():
    """The byte store that replaces paramiko's array buffer: reads across packets, in order."""
    chunks = sftp._Chunks()
    assert len(chunks) == 0 and chunks.take(None) == b""
    for part in (b"abc", b"", b"defg", b"h"):
        chunks.frombytes(part)
    assert len(chunks) == 8
    assert chunks.take(2) == b"ab"
    del chunks[:2]
    assert chunks.take(3) == b"cde"
    assert chunks.take(100) == b"cdefgh"
    del chunks[:3]
    assert (len(chunks), chunks.take(None)) == (3, b"fgh")
    del chunks[:]
    assert len(chunks) == 0

    pipe = sftp._ChunkPipe()
    pipe.feed(b"0123456789")
    pipe.feed(b"abc")
    assert pipe.read(4) == b"0123"
    assert pipe.read(100) == b"456789abc"
    assert len(pipe) == 0 and not pipe.read_ready()
    pipe.close()
    assert pipe.read(10) == b""


def client_reading(stream: bytes) -> sftp._SFTPClient:
    """A client whose replies come from `stream`, read as the channel would give them."""
    client = sftp._SFTPClient.__new__(sftp._SFTPClient)
    buffered = bytearray(stream)

    def read_all(count: int) -> bytes:
        if len(buffered) < count:
            raise EOFError()
        taken = bytes(buffered[:count])
        del buffered[:count]
        return taken

    client._read_all = read_all
    client.left = buffered
    return client


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b"\x00\x00\x00\x05\x65abcd", (0x65, b"abcd")),  # a type, then its body
        (b"\x00\x00\x00\x01\x66", (0x66, b"")),  # a type and nothing more
    ],
)
def test_a_reply_is_read_as_its_type_and_its_body(stream, expected):
    """The length and the type are read together and the body on its own (no copy to slice the
    type off): what paramiko's reader returns, for every length a message can have."""
    client = client_reading(stream + b"\x00\x00\x00\x01\x67")
    assert client._read_packet() == expected
    assert client._read_packet() == (0x67, b"")  # the next reply starts where it should
    assert client.left == b""


@pytest.mark.parametrize("stream", [b"\x00\x00\x00\x00\x65", b"\x01\x00\x00\x05\x65abcd"])
def test_a_reply_of_no_length_or_over_16_mib_is_garbage(stream):
    with pytest.raises(sftp.SFTPError, match="Garbage packet"):
        client_reading(stream)._read_packet()
