"""SSH packets for paramiko with less work per packet, both ways (used by transfers/sftp.py).

paramiko's transfers are bound by per-packet work in Python (bench/README.md). For every 32 KiB
packet of a channel's data its packetizer copied the bytes five or six times each way: in, the
ciphertext out of the socket, joined to the packet's first block, the payload sliced out of the
plaintext, copied into a `Message`, and the data copied out of that again; out, the data into a
`Message`, out of it, into the packet with its header, after it the padding, the part to
encrypt sliced off, and the length joined back on. With aes-gcm (the cipher the portal asks for
first), `Packetizer` here decrypts straight from the socket's read-ahead buffer and hands a
channel's data on as a view of the plaintext (one copy, the decryption's), and `Channel` hands
the data it sends to the packetizer as it is, which joins it once with its header and padding
and encrypts that. Other ciphers, compression, packet logging, and a packet not whole in the
buffer within one wait take paramiko's own way; sequence numbers and the counts that start a
rekey are kept exactly as paramiko keeps them.

This relies on paramiko's private packetizer state (the `_Packetizer__*` attributes), on what
its transport does with a channel's data message (`get_int`, then the channel's `get_binary`),
and on its channel's `_send` and send window, checked against paramiko 5.1 by
tests/test_ssh_packets.py.
"""

import os
import struct

import paramiko.channel
import paramiko.packet
from paramiko.common import MSG_CHANNEL_DATA, cMSG_CHANNEL_DATA, xffffffff
from paramiko.message import Message
from paramiko.ssh_exception import SSHException

_UINT32 = struct.Struct(">I")
_PACKET_START = struct.Struct(">IB")  # packet length, padding length
_DATA_START = struct.Struct(">BII")  # type, channel, data length


class IncomingData(Message):
    """A received SSH_MSG_CHANNEL_DATA, its data left in the plaintext it was decrypted into.

    The plaintext is the packet after its length: padding length, message type, channel,
    data length, data, padding. paramiko's transport reads the channel (`get_int`) and the
    channel its data (`get_binary`); nothing else reads a data message.
    """

    def __init__(self, plaintext: bytes, end: int):
        self._plaintext = plaintext
        self._end = end  # where the payload ends and the padding begins
        self._at = 2  # after the padding length and the type

    def get_int(self) -> int:
        if self._at + 4 > self._end:
            raise SSHException("Truncated channel data")
        (value,) = _UINT32.unpack_from(self._plaintext, self._at)
        self._at += 4
        return value

    def get_binary(self) -> memoryview:
        length = self.get_int()
        start = self._at
        if start + length > self._end:
            raise SSHException("Channel data longer than its packet")
        self._at += length
        return memoryview(self._plaintext)[start : self._at]


class OutgoingData(Message):
    """An SSH_MSG_CHANNEL_DATA to send, its data not yet copied: the packetizer joins it with the
    packet's header and padding (`pieces`); any other way of sending it asks for `asbytes`."""

    def __init__(self, channel: int, data: bytes | memoryview):
        self._start = _DATA_START.pack(MSG_CHANNEL_DATA, channel, len(data))
        self._data = data

    def pieces(self) -> tuple[bytes, bytes | memoryview]:
        return self._start, self._data

    def asbytes(self) -> bytes:
        return self._start + bytes(self._data)


class Channel(paramiko.channel.Channel):
    """paramiko's channel, sending its data as an `OutgoingData` rather than through a
    `Message` (the same lock, closed check and send window as paramiko's `_send`)."""

    def _send(self, s, m):
        if m.asbytes()[:1] != cMSG_CHANNEL_DATA:  # stderr data: paramiko's way
            return super()._send(s, m)
        with self.lock:
            if self.closed:
                raise OSError("Socket is closed")
            size = self._wait_for_send_window(len(s))
            if size == 0:  # end of file, or the like
                return 0
            message = OutgoingData(self.remote_chanid, s[:size])
        # Outside the lock, as paramiko does: a rekey would deadlock on it.
        self.transport._send_user_message(message)
        return size


class Packetizer(paramiko.packet.Packetizer):
    """paramiko's packetizer with a shorter way in and out for aes-gcm packets (the module)."""

    def read_message(self):
        if (
            not self._Packetizer__aead_in
            or self._Packetizer__compress_engine_in is not None
            or self._Packetizer__dump_packets
            or self._Packetizer__remainder
        ):
            return super().read_message()
        length = self.read_all(4, check_rekey=True)  # the additional data under GCM
        (size,) = _UINT32.unpack(length)
        needed = size + self._Packetizer__mac_size_in
        ciphertext = self._Packetizer__socket.view(needed)
        if ciphertext is None:  # not all in the buffer: paramiko's reads, with their timeouts
            ciphertext = self.read_all(needed)
        nonce = self._Packetizer__iv_in
        plaintext = self._Packetizer__block_engine_in.decrypt(nonce, ciphertext, length)
        self._Packetizer__iv_in = self._inc_iv_counter(nonce)
        end = size - plaintext[0]
        if not 2 <= end <= size:
            raise SSHException("Invalid packet padding")
        kind = plaintext[1]
        if kind == MSG_CHANNEL_DATA:
            message = IncomingData(plaintext, end)
        else:
            message = Message(plaintext[2:end])
        self._count_in(message, size)
        return kind, message

    def send_message(self, data):
        if (
            not self._Packetizer__aead_out
            or self._Packetizer__compress_engine_out is not None
            or self._Packetizer__dump_packets
        ):
            return super().send_message(data)
        pieces = data.pieces() if isinstance(data, OutgoingData) else (data.asbytes(),)
        size = sum(len(piece) for piece in pieces)
        block = self._Packetizer__block_size_out
        padding = 3 + block - ((size + 4) % block)  # at least 4, as paramiko pads
        start = _PACKET_START.pack(size + padding + 1, padding)
        with self._Packetizer__write_lock:
            nonce = self._Packetizer__iv_out
            plaintext = b"".join((start[4:], *pieces, os.urandom(padding)))
            sealed = self._Packetizer__block_engine_out.encrypt(nonce, plaintext, start[:4])
            self._Packetizer__iv_out = self._inc_iv_counter(nonce)
            sequence = (self._Packetizer__sequence_number_out + 1) & xffffffff
            if sequence == 0 and not self._initial_kex_done:
                raise SSHException("Sequence number rolled over during initial kex!")
            self._Packetizer__sequence_number_out = sequence
            out = start[:4] + sealed
            self.write_all(out)
            self._Packetizer__sent_bytes += len(out)
            self._Packetizer__sent_packets += 1
            if (
                self._Packetizer__sent_packets >= self.REKEY_PACKETS
                or self._Packetizer__sent_bytes >= self.REKEY_BYTES
            ) and not self._Packetizer__need_rekey:
                self._Packetizer__received_bytes_overflow = 0
                self._Packetizer__received_packets_overflow = 0
                self._trigger_rekey()

    def _count_in(self, message: Message, size: int) -> None:
        """What paramiko's read_message does after the payload: the sequence number, and the
        counts that start a rekey (or end a peer that ignores one)."""
        sequence = self._Packetizer__sequence_number_in
        message.seqno = sequence
        following = (sequence + 1) & xffffffff
        if following == 0 and not self._initial_kex_done:
            raise SSHException("Sequence number rolled over during initial kex!")
        self._Packetizer__sequence_number_in = following
        raw = size + self._Packetizer__mac_size_in + 4
        self._Packetizer__received_bytes += raw
        self._Packetizer__received_packets += 1
        if self._Packetizer__need_rekey:
            self._Packetizer__received_bytes_overflow += raw
            self._Packetizer__received_packets_overflow += 1
            if (
                self._Packetizer__received_packets_overflow >= self.REKEY_PACKETS_OVERFLOW_MAX
                or self._Packetizer__received_bytes_overflow >= self.REKEY_BYTES_OVERFLOW_MAX
            ):
                raise SSHException("Remote transport is ignoring rekey requests")
        elif (
            self._Packetizer__received_packets >= self.REKEY_PACKETS
            or self._Packetizer__received_bytes >= self.REKEY_BYTES
        ):
            self._Packetizer__received_bytes_overflow = 0
            self._Packetizer__received_packets_overflow = 0
            self._trigger_rekey()
