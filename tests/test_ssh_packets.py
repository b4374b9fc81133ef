"""The shorter ways in and out for aes-gcm packets (transfers/ssh_packets.py), and the socket
buffer they decrypt from (`_ReadAhead.view` in transfers/sftp.py).

Against a real OpenSSH sshd on loopback: downloads and uploads through them come out whole,
across rekeys and with another cipher; the buffer and the data messages are also tested alone.
"""

import os
import socket
import threading
import time

import pytest
from paramiko.message import Message
from paramiko.ssh_exception import SSHException

from tests.support.sshd import sshd_fixture
from tests.support.streams import MIB, sha256_of, write_file
from transfers import sftp, ssh_packets

sshd = sshd_fixture()


@pytest.fixture
def rekeys(monkeypatch) -> list[int]:
    """Keys renewed every MiB; one entry per rekey the packetizer asks for."""
    monkeypatch.setattr(ssh_packets.Packetizer, "REKEY_BYTES", MIB)
    asked = []
    trigger = ssh_packets.Packetizer._trigger_rekey
    monkeypatch.setattr(
        ssh_packets.Packetizer, "_trigger_rekey", lambda self: asked.append(1) or trigger(self)
    )
    return asked


def paramikos_way(monkeypatch, method: str, aead: str) -> list[bool]:
    """Whether aes-gcm was on for each packet that went through paramiko's own `method`."""
    taken = []
    original = getattr(ssh_packets.paramiko.packet.Packetizer, method)

    def counted(packetizer, *args):
        taken.append(getattr(packetizer, f"_Packetizer__{aead}"))
        return original(packetizer, *args)

    monkeypatch.setattr(ssh_packets.paramiko.packet.Packetizer, method, counted)
    return taken


def test_a_download_decrypted_from_the_buffer_is_whole_and_no_packet_took_paramikos_way(
    sshd, tmp_path, monkeypatch
):
    taken_the_long_way = paramikos_way(monkeypatch, "read_message", "aead_in")
    expected = write_file(sshd.root / "data.bin", 8 * MIB + 3)
    with sshd.session() as session:
        assert type(session.transport.packetizer) is ssh_packets.Packetizer
        assert session.transport.remote_cipher == "aes128-gcm@openssh.com"
        assert session.get_file("data.bin", tmp_path / "data.bin") == (8 * MIB + 3, expected)
    assert sha256_of(tmp_path / "data.bin") == expected
    # Only the key exchange's packets, before aes-gcm is on, go paramiko's way.
    assert True not in taken_the_long_way and len(taken_the_long_way) < 10


def test_keys_renewed_every_mebibyte_mid_download(sshd, tmp_path, rekeys):
    expected = write_file(sshd.root / "data.bin", 6 * MIB)
    with sshd.session() as session:
        assert session.get_file("data.bin", tmp_path / "data.bin") == (6 * MIB, expected)
        assert session.get_file("data.bin", tmp_path / "again.bin") == (6 * MIB, expected)
    # A rekey is asked for once until the new keys are on: many show that they came each time.
    assert len(rekeys) >= 4


def test_another_cipher_takes_paramikos_way(sshd, tmp_path, monkeypatch):
    monkeypatch.setattr(sftp, "PREFERRED_CIPHERS", ("aes128-ctr",))
    expected = write_file(sshd.root / "data.bin", 2 * MIB + 1)
    with sshd.session() as session:
        assert session.transport.remote_cipher == "aes128-ctr"
        assert session.get_file("data.bin", tmp_path / "data.bin") == (2 * MIB + 1, expected)


def test_an_upload_sealed_in_one_piece_per_packet_is_whole_and_no_packet_took_paramikos_way(
    sshd, tmp_path, monkeypatch
):
    taken_the_long_way = paramikos_way(monkeypatch, "send_message", "aead_out")
    local = tmp_path / "data.bin"
    expected = write_file(local, 8 * MIB + 3)
    with sshd.session() as session:
        assert type(session._sftp.sock) is ssh_packets.Channel
        assert session.put_file(local, "data.bin") == (8 * MIB + 3, expected)
    assert sha256_of(sshd.root / "data.bin") == expected
    assert True not in taken_the_long_way and len(taken_the_long_way) < 10


def test_writes_of_every_size_around_the_first_channel_packet_arrive_whole(sshd):
    # An SFTP write's head shares the first channel packet with the start of its data; the
    # rest goes as it is. Sizes around where that packet is full, and a whole write request.
    files = {
        f"size-{size}.bin": os.urandom(size)
        for size in [0, 1, 4096, *range(32_600, 32_800, 7), 65_536, 261_120]
    }
    with sshd.session() as session:
        assert session.put_small_files(files) == dict.fromkeys(files)
    for name, data in files.items():
        assert (sshd.root / name).read_bytes() == data, name


def test_keys_renewed_every_mebibyte_mid_upload(sshd, tmp_path, rekeys):
    local = tmp_path / "data.bin"
    expected = write_file(local, 6 * MIB)
    with sshd.session() as session:
        assert session.put_file(local, "data.bin") == (6 * MIB, expected)
        assert session.put_file(local, "again.bin") == (6 * MIB, expected)
    assert sha256_of(sshd.root / "data.bin") == sha256_of(sshd.root / "again.bin") == expected
    assert len(rekeys) >= 4


def test_an_upload_with_another_cipher_takes_paramikos_way(sshd, tmp_path, monkeypatch):
    monkeypatch.setattr(sftp, "PREFERRED_CIPHERS", ("aes128-ctr",))
    local = tmp_path / "data.bin"
    expected = write_file(local, 2 * MIB + 1)
    with sshd.session() as session:
        assert session.transport.local_cipher == "aes128-ctr"
        assert session.put_file(local, "data.bin") == (2 * MIB + 1, expected)
    assert sha256_of(sshd.root / "data.bin") == expected


# -- the buffer alone -----------------------------------------------------------------------


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    ours.settimeout(0.2)  # paramiko polls its socket in such short waits
    yield sftp._ReadAhead(ours), theirs
    ours.close()
    theirs.close()


def test_a_view_of_what_is_buffered_reads_nothing_more(pair):
    buffer, theirs = pair
    theirs.sendall(b"abcdefgh")
    assert buffer.recv(2) == b"ab"
    assert bytes(buffer.view(4)) == b"cdef"
    assert buffer.recv(10) == b"gh"


def test_the_start_of_a_packet_is_kept_and_its_rest_read_behind_it(pair):
    buffer, theirs = pair
    theirs.sendall(b"xxhead")
    assert buffer.recv(2) == b"xx"
    threading.Timer(0.05, theirs.sendall, args=(b"tail-and-more",)).start()
    assert bytes(buffer.view(10)) == b"headtail-a"
    assert buffer.recv(100) == b"nd-more"


def test_a_packet_that_does_not_come_whole_in_one_wait_is_left_to_recv(pair):
    buffer, theirs = pair
    theirs.sendall(b"part")
    started = time.monotonic()
    assert buffer.view(10) is None
    assert time.monotonic() - started < 1
    theirs.sendall(b"-rest")
    assert buffer.recv(4) == b"part"  # nothing was taken
    assert buffer.recv(100) == b"-rest"


def test_a_closed_peer_or_a_packet_larger_than_the_buffer_is_left_to_recv(pair):
    buffer, theirs = pair
    assert buffer.view(sftp.READ_AHEAD + 1) is None
    theirs.sendall(b"end")
    theirs.shutdown(socket.SHUT_WR)
    assert buffer.view(10) is None
    assert buffer.recv(10) == b"end"
    assert buffer.recv(10) == b""


# -- the data message alone -------------------------------------------------------------------


def data_packet(channel: int, data: bytes, claimed: int | None = None) -> tuple[bytes, int]:
    """A decrypted CHANNEL_DATA packet and where its payload ends (4 bytes of padding)."""
    length = len(data) if claimed is None else claimed
    payload = bytes([94]) + channel.to_bytes(4, "big") + length.to_bytes(4, "big") + data
    return bytes([4]) + payload + b"\0" * 4, 1 + len(payload)


def test_a_data_message_gives_its_channel_then_its_data_uncopied():
    plaintext, end = data_packet(7, b"hello")
    message = ssh_packets.IncomingData(plaintext, end)
    assert message.get_int() == 7
    data = message.get_binary()
    assert isinstance(data, memoryview) and data.obj is plaintext
    assert bytes(data) == b"hello"


def test_a_data_message_that_claims_more_than_its_packet_is_refused():
    plaintext, end = data_packet(7, b"hello", claimed=9)
    message = ssh_packets.IncomingData(plaintext, end)
    assert message.get_int() == 7
    with pytest.raises(SSHException, match="longer than its packet"):
        message.get_binary()
    with pytest.raises(SSHException, match="Truncated"):
        ssh_packets.IncomingData(bytes([4, 94, 0, 0]), 4).get_int()


def test_outgoing_data_is_the_message_paramiko_would_have_sent():
    data = bytes(range(256)) * 3
    paramikos = Message()
    paramikos.add_byte(bytes([94]))
    paramikos.add_int(7)
    paramikos.add_string(data)
    outgoing = ssh_packets.OutgoingData(7, memoryview(data)[:])
    assert outgoing.asbytes() == paramikos.asbytes()
    assert b"".join(outgoing.pieces()) == paramikos.asbytes()
