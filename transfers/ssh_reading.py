"""Reading a download's SSH packets with less work per packet than paramiko (transfers/sftp.py).

A paramiko download is bound by per-packet work in Python (bench/README.md): for every 32 KiB
packet of a channel's data its packetizer copies the ciphertext out of the socket, joins it to
the packet's first block, slices the payload out of the plaintext, copies it into a `Message`,
and the channel copies the data out of that again. With aes-gcm (the cipher the portal asks
for first), `Packetizer` here decrypts straight from the socket's read-ahead buffer and hands a
channel's data on as a view of the plaintext: one copy, the decryption's. Every other cipher,
compression, packet logging, and any packet not yet whole in the buffer take paramiko's own
way; the sequence numbers and the rekeying counts are kept exactly as paramiko keeps them.

This relies on paramiko's private packetizer state (the `_Packetizer__*` attributes) and on
what its transport does with a channel's data message (`get_int`, then the channel's
`get_binary`), checked against paramiko 5.1 by tests/test_ssh_reading.py.
"""

import struct

import paramiko.packet
from paramiko.common import MSG_CHANNEL_DATA, xffffffff
from paramiko.message import Message
from paramiko.ssh_exception import SSHException

_UINT32 = struct.Struct(">I")


class ChannelData(Message):
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


class Packetizer(paramiko.packet.Packetizer):
    """paramiko's packetizer with a shorter way in for aes-gcm packets (see the module)."""

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
            message = ChannelData(plaintext, end)
        else:
            message = Message(plaintext[2:end])
        self._count_in(message, size)
        return kind, message

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
