"""The one SFTP session type the portal's workers use to send and fetch files (paramiko).

A worker opens a session, keeps it for many files and closes it. The server's host key must be
pinned: an unknown key raises `HostKeyUnknown` (an operator confirms the fingerprint and pins
it), a different key raises `HostKeyChanged`; both before any authentication is attempted. An
endpoint that SFTP_ALLOWED_HOSTS does not allow raises `EndpointRefused` before any connection is
tried (transfers/endpoints.py). Every other failure is an `SftpError` with a message fit for an
operator.

Performance (measured, see `bench/README.md`):
aes128-gcm when the server offers it, TCP_NODELAY, pipelined 255 KiB writes (OpenSSH's
`limits@openssh.com`; 32 KiB on other servers), an upload's reading and hashing in a helper
thread, and a download loop of our own (`_download`): a fixed number of read requests in flight,
each reply written at its offset as it comes, the SHA-256 taken by reading the file back in
order in a helper thread, which also has the kernel start writing each hashed stretch to disk
(so the closing fsync does not write the whole file while the transfer waits). A large file
goes over a second connection at the same time (a download only when the round trip is long):
a connection has at most the window in flight (2 MiB), which over tens of milliseconds bounds it
far below the link.
Round trips per uploaded file (what decides many small files on a real link): two. The open
waits for its handle; the writes and the close then go out without waiting, and the file counts
as written only once every write and the close are acknowledged; no stat before or after.
paramiko's `prefetch()` is never used: its race (paramiko PR #2519) can make memory grow with
the file size. The channel's receive buffer is replaced by one that does not memmove on every
read and wakes the reader once a whole SFTP message is there (`_ChunkPipe`), the transport reads
its socket in large pieces (`_ReadAhead`), and aes-gcm packets are decrypted from there and
their data passed on uncopied, and sealed in one piece on the way out (transfers/ssh_packets.py;
a write request's data goes to the channel uncopied): per-packet work in Python threads that
share one interpreter lock is what bounds a paramiko transfer. The channel window stays at
paramiko's default (2 MiB).

This module relies on a few paramiko internals (`SFTPClient._async_request` and the request
numbering it keeps, `_read_response`, `_request`, `SFTPAttributes._from_msg`, `BufferedPipe`'s
buffer, lock and condition, `Channel.in_buffer` and `out_max_packet_size`), checked against
paramiko 5.1 by tests/test_sftp_session.py, tests/test_sftp_batch.py,
tests/test_download_streams.py and tests/test_ssh_packets.py.
"""

import base64
import contextlib
import ctypes
import hashlib
import io
import logging
import os
import queue
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import paramiko
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from paramiko.buffered_pipe import BufferedPipe
from paramiko.sftp import (
    CMD_ATTRS,
    CMD_CLOSE,
    CMD_DATA,
    CMD_EXTENDED,
    CMD_EXTENDED_REPLY,
    CMD_FSTAT,
    CMD_HANDLE,
    CMD_OPEN,
    CMD_READ,
    CMD_STATUS,
    CMD_WRITE,
    SFTP_EOF,
    SFTP_FLAG_CREATE,
    SFTP_FLAG_READ,
    SFTP_FLAG_TRUNC,
    SFTP_FLAG_WRITE,
    SFTP_OK,
    SFTPError,
    int64,
)
from paramiko.sftp_attr import SFTPAttributes

from transfers import endpoints, sftp_batch, ssh_packets

log = logging.getLogger(__name__)
Progress = Callable[[int], None]

PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
SMALL_REQUEST = 32 * 1024  # every SFTP server accepts this much per read or write
LARGE_REQUEST = 255 * 1024  # 261,120 bytes: OpenSSH's limits@openssh.com read and write length
LOCAL_BLOCK = 1024 * 1024  # local file reads for uploads
QUEUE_BLOCKS = 4  # an upload's blocks read ahead of the SFTP thread
WRITES_IN_FLIGHT = 32  # unacknowledged write requests (the channel window also bounds them)
READS_IN_FLIGHT = 16  # outstanding read requests: memory is bounded by this times the size
DOWNLOAD_STREAMS = 2  # connections a large file is read over, the session's own among them
UPLOAD_STREAMS = 2  # connections a large file is written over, the session's own among them
STREAMS_FROM = 64 * 1024 * 1024  # smaller files go over the session's connection alone
# A round trip from which a large download goes over more than one connection. Below it one
# connection's 2 MiB window allows more than 1 GB/s, beyond what the client can carry, and a
# second connection's threads only contend with the first's (bench/README.md).
STREAMS_FROM_ROUND_TRIP = 0.002
HASH_BLOCK = 1024 * 1024  # a download is hashed reading back this much of the file at a time
READ_AHEAD = 256 * 1024  # what the transport asks the socket for at once
WHOLE_MESSAGE = 512 * 1024  # an SFTP message up to this size is read in one piece
KEEPALIVE_SECONDS = 30
# What paramiko's channel leaves of its peer's largest packet for the data of each it sends.
CHANNEL_DATA_ROOM = 64
_WRITE_START = struct.Struct(">IBII")  # an SFTP write's length, type, request id, handle length
_WRITE_AT = struct.Struct(">QI")  # its offset and data length


class HostKeyUnknown(Exception):
    """No host key is pinned: show `fingerprint` to an operator, who may pin `offered`."""

    def __init__(self, host: str, port: int, offered: str):
        self.host, self.port, self.offered = host, port, offered
        self.fingerprint = host_key_fingerprint(offered)
        super().__init__(
            f"The host key of {host}:{port} is not pinned yet; it offers {self.fingerprint} "
            f"({offered.split()[0]})."
        )


class HostKeyChanged(Exception):
    """The server's host key is not the pinned one: possibly an impostor; do not connect."""

    def __init__(self, host: str, port: int, pinned: str, offered: str):
        self.host, self.port, self.pinned, self.offered = host, port, pinned, offered
        self.pinned_fingerprint = host_key_fingerprint(pinned)
        self.offered_fingerprint = host_key_fingerprint(offered)
        super().__init__(
            f"The host key of {host}:{port} has changed: pinned {self.pinned_fingerprint}, "
            f"offered {self.offered_fingerprint}. Not connecting."
        )


class SftpError(Exception):
    """A connection or transfer failed; the message says what and where."""


class SftpUnreachable(SftpError):
    """The server could not be reached, or the connection broke: refused, reset, timed out.
    Not an answer about the file, so a send waits it out (TRANSFER_OUTAGE_WAIT_SECONDS)."""


class SftpRefused(SftpError):
    """The server answered "permission denied": it is there and said no (the Serviceplatform
    refuses to write or remove a name while it routes it)."""


class EndpointRefused(SftpError):
    """SFTP_ALLOWED_HOSTS does not allow host:port (transfers.endpoints). Raised before any
    socket is opened, so the answer is the same whatever listens there, or nothing."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        super().__init__(host, port)

    def __str__(self) -> str:
        # Translated when shown: a page in the reader's language, a transfer in the worker's.
        return endpoints.refusal_message(self.host, self.port)


class EndpointUnresolved(SftpUnreachable):
    """A name that SFTP_ALLOWED_HOSTS admits only through its networks could not be looked up.

    For a send it is like any network fault (tried again later). A person probing a host key is
    told the refusal instead: whether a name exists is not the portal's to tell either.
    """

    def __init__(self, host: str, port: int, reason: str):
        self.host, self.port = host, port
        super().__init__(
            f"Cannot look up {host} to check {host}:{port} against SFTP_ALLOWED_HOSTS: {reason}"
        )


def host_key_fingerprint(key_line: str) -> str:
    """OpenSSH's fingerprint ("SHA256:...", as `ssh-keygen -l` prints it) of "type base64"."""
    blob = _key_blob(key_line)
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _key_blob(key_line: str) -> bytes:
    parts = key_line.split()
    if len(parts) < 2:
        raise ValueError(f"not a public key line: {key_line!r}")
    try:
        return base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise ValueError(f"not a public key line: {key_line!r}") from None


def _key_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


def _key_type(key_line: str) -> str:
    """The key type inside the blob, which is what a server's host key algorithm names."""
    blob = _key_blob(key_line)
    (length,) = struct.unpack(">I", blob[:4])
    return blob[4 : 4 + length].decode("ascii", "replace")


def _host_key_algorithms(pinned: str | None) -> tuple[str, ...]:
    """paramiko's host key algorithms, those for the pinned key's type first."""
    defaults = paramiko.Transport._preferred_keys
    if pinned is None:
        return defaults
    kind = _key_type(pinned)
    wanted = ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa") if kind == "ssh-rsa" else (kind,)
    first = tuple(name for name in wanted if name in paramiko.Transport._key_info)
    return first + tuple(name for name in defaults if name not in first)


def _load_private_key(data: bytes) -> paramiko.PKey:
    try:
        try:
            loaded = serialization.load_ssh_private_key(data, password=None)
        except ValueError:
            loaded = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise SftpError(
            "The private key is encrypted with a passphrase; it cannot be used."
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise SftpError(
            "The private key cannot be read: not an OpenSSH or PEM private key."
        ) from None
    if isinstance(loaded, rsa.RSAPrivateKey):
        return paramiko.RSAKey(key=loaded)
    if isinstance(loaded, ed25519.Ed25519PrivateKey):
        text = loaded.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ).decode()
        return paramiko.Ed25519Key(file_obj=io.StringIO(text))
    raise SftpError(f"Unsupported private key type {type(loaded).__name__}: use RSA or Ed25519.")


def _open_transport(host: str, port: int, timeout: float, pinned: str | None):
    """A TCP connection and a negotiated (not authenticated) SSH transport.

    Every SFTP connection of the portal starts here, so this is where an endpoint that
    SFTP_ALLOWED_HOSTS does not allow is refused, before any socket is opened; the socket then
    goes to the addresses that were checked and to no others.
    """
    try:
        addresses = endpoints.addresses_for(host, port)
    except OSError as error:  # the lookup of a name that only an allowed network can admit
        raise EndpointUnresolved(host, port, _describe(error)) from None
    if not addresses:
        raise EndpointRefused(host, port)
    sock = _connect(host, port, addresses, timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = paramiko.Transport(_ReadAhead(sock))
        transport.packetizer.__class__ = ssh_packets.Packetizer  # before any packet is read
    except Exception:
        sock.close()
        raise
    try:
        options = transport.get_security_options()
        options.ciphers = PREFERRED_CIPHERS + tuple(
            name for name in options.ciphers if name not in PREFERRED_CIPHERS
        )
        options.key_types = _host_key_algorithms(pinned)
        transport.banner_timeout = timeout
        transport.handshake_timeout = timeout
        transport.auth_timeout = timeout
        transport.start_client(timeout=timeout)
        if not (transport.is_active() and transport.initial_kex_done):  # start_client timed out
            raise transport.get_exception() or TimeoutError()
    except (paramiko.SSHException, OSError, EOFError) as error:
        transport.close()
        raise SftpUnreachable(
            f"SSH negotiation with {host}:{port} failed: {_describe(error)}"
        ) from None
    return transport


def _connect(host: str, port: int, addresses: tuple[str, ...], timeout: float) -> socket.socket:
    """A TCP connection to the first of `addresses` that answers (those checked, no others)."""
    failure: OSError | None = None
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout=timeout)
        except OSError as error:
            failure = error
    raise SftpUnreachable(f"Cannot connect to {host}:{port}: {_describe(failure)}") from None


def probe_host_key(host: str, port: int, timeout: float = 10) -> str:
    """The host key ("type base64") the server offers, to show an operator before pinning it."""
    transport = _open_transport(host, port, timeout, None)
    try:
        return _key_line(transport.get_remote_server_key())
    finally:
        transport.close()


def _describe(error: BaseException) -> str:
    if isinstance(error, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(error, EOFError):
        return "connection closed"
    text = str(error) or type(error).__name__
    if isinstance(error, OSError) and error.strerror:
        text = error.strerror
    return text


class _ReadAhead:
    """The TCP socket under paramiko's transport, read in large pieces.

    paramiko reads each packet with two or more `recv` calls (its first block, then the rest),
    each a system call that gives up the interpreter lock and must win it back from the threads
    working on the previous packets. Reading what the socket has, up to READ_AHEAD, and serving
    those calls from it makes that one call for many packets. Everything else goes to the
    socket.
    """

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._buffer = bytearray(READ_AHEAD)
        self._view = memoryview(self._buffer)
        self._start = self._end = 0

    def recv(self, count: int) -> bytes:
        if self._start == self._end:
            self._start, self._end = 0, self._sock.recv_into(self._buffer)
            if not self._end:
                return b""
        start = self._start
        self._start = min(self._end, start + count)
        return bytes(self._view[start : self._start])

    def view(self, count: int) -> memoryview | None:
        """The next `count` bytes, uncopied: valid only until the next read. What is buffered
        of them is moved to the front and the rest read behind it; None, with nothing taken,
        if the socket does not have them within one wait (`recv` then reads them, with
        paramiko's handling of timeouts and of a closed socket)."""
        if count > len(self._buffer):
            return None
        if self._end - self._start < count:
            kept = self._end - self._start
            self._view[:kept] = self._view[self._start : self._end]
            self._start, self._end = 0, kept
            while self._end < count:
                try:
                    received = self._sock.recv_into(self._view[self._end :])
                except OSError:
                    return None
                if not received:
                    return None
                self._end += received
        start = self._start
        self._start += count
        return self._view[start : self._start]

    def __getattr__(self, name):
        return getattr(self._sock, name)


class _Replies:
    """Collects the replies to one file's pipelined requests (paramiko calls `_async_response`).

    paramiko keeps these objects in a weak dict, so the transfer holds a reference while it runs.
    """

    def __init__(self):
        self.replies: dict[int, tuple[int, paramiko.Message]] = {}

    def _async_response(self, kind, message, number):
        self.replies[number] = (kind, message)

    def wait(self, client: paramiko.SFTPClient, number: int) -> tuple[int, paramiko.Message]:
        while number not in self.replies:
            client._read_response()
        return self.replies.pop(number)


class _Chunks:
    """The byte store behind `_ChunkPipe`: a list of received packets, consumed from the front.

    paramiko's `BufferedPipe` keeps an `array` and deletes the consumed prefix on every read: a
    memmove of everything still buffered, which dominates downloads. Here feeding keeps the
    packet as it is and consuming only advances an offset.
    """

    __slots__ = ("_offset", "_parts", "_size")

    def __init__(self):
        self._parts: deque[bytes] = deque()
        self._offset = 0  # consumed bytes of _parts[0]
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def frombytes(self, data: bytes | memoryview) -> None:
        # Kept as it comes: a view of the decrypted packet (transfers/ssh_packets.py) is not
        # copied until a whole message is taken.
        if data:
            self._parts.append(data)
            self._size += len(data)

    def take(self, limit: int | None) -> bytes:
        """Up to `limit` bytes from the front (all if None), without consuming them."""
        want = self._size if limit is None else min(limit, self._size)
        first = self._parts[0] if self._parts else b""
        if self._offset == 0 and len(first) == want:
            return bytes(first)
        if len(first) - self._offset >= want:
            return bytes(first[self._offset : self._offset + want])
        pieces, need = [], want
        for index, part in enumerate(self._parts):
            start = self._offset if index == 0 else 0
            piece = part[start : start + need]
            pieces.append(piece)
            need -= len(piece)
            if need == 0:
                break
        return b"".join(pieces)

    def __delitem__(self, key: slice) -> None:
        count = self._size if key.stop is None else min(key.stop, self._size)
        self._size -= count
        while count:
            first = len(self._parts[0]) - self._offset
            if count < first:
                self._offset += count
                return
            count -= first
            self._parts.popleft()
            self._offset = 0


class _ChunkPipe(BufferedPipe):
    """A `BufferedPipe` (same locking, events and close) over `_Chunks`: no memmove per read."""

    def __init__(self):
        super().__init__()
        self._buffer = _Chunks()
        self._wanted = 1  # buffered bytes that wake a reader

    def _buffer_frombytes(self, data):
        self._buffer.frombytes(data)

    def _buffer_tobytes(self, limit=None):
        return self._buffer.take(limit)

    def feed(self, data):
        # As BufferedPipe.feed, but a reader waiting for a whole message (`wait_for`) is woken
        # once it is there, not for every packet of it: each wake-up is a hand-over of the
        # interpreter lock between the transport's thread and the reader's.
        with self._lock:
            if self._event is not None:
                self._event.set()
            self._buffer.frombytes(data)
            if len(self._buffer) >= self._wanted:
                self._cv.notify_all()

    def wait_for(self, count: int, timeout: float | None) -> None:
        """Wait until `count` bytes are buffered or the channel is closed. Raises TimeoutError
        only after `timeout` seconds in which nothing arrived, as a `recv` would."""
        with self._lock:
            seen = len(self._buffer)
            self._wanted = count
            try:
                while len(self._buffer) < count and not self._closed:
                    if not self._cv.wait(timeout) and len(self._buffer) == seen:
                        raise TimeoutError()
                    seen = len(self._buffer)
            finally:
                self._wanted = 1


class _SFTPClient(paramiko.SFTPClient):
    """paramiko's client with linear-time packet reads and writes (no repeated slicing)."""

    def _read_all(self, n):
        parts = []
        # One wake-up per message; bounded well below the channel window, which only reading
        # opens again.
        self.sock.in_buffer.wait_for(min(n, WHOLE_MESSAGE), self.sock.timeout)
        while n > 0:
            data = self.sock.recv(n)
            if not data:
                raise EOFError()
            parts.append(data)
            n -= len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _read_packet(self):
        # The length and the type at once, then the body: paramiko reads the length, then type
        # and body together and slices the type off, a copy of every reply (each of a
        # download's data) for one byte. Every SFTP message has a type: a length of 0 is
        # garbage, as one over 16 MiB is to paramiko.
        header = self._read_all(5)
        size = struct.unpack(">I", header[:4])[0]
        if header[0] or size == 0:
            raise SFTPError("Garbage packet received")
        return header[4], self._read_all(size - 1) if size > 1 else b""

    def _write_all(self, out):
        view = memoryview(out)
        while view:
            sent = self.sock.send(view)
            if sent <= 0:
                raise EOFError()
            view = view[sent:]

    def _async_request(self, fileobj, t, *args):
        # A write's data goes to the channel as it is: paramiko copies it into a Message, out
        # of it, and behind the packet's length, three copies of every byte uploaded. Only the
        # head and the start of the data that share its first channel packet are joined.
        if t != CMD_WRITE:
            return super()._async_request(fileobj, t, *args)
        handle, offset, data = args
        with self._lock:
            number = self.request_number
            self._expecting[number] = fileobj
            self.request_number += 1
        head = b"".join(
            (
                _WRITE_START.pack(21 + len(handle) + len(data), CMD_WRITE, number, len(handle)),
                handle,
                _WRITE_AT.pack(offset, len(data)),
            )
        )
        view = memoryview(data)
        first = max(0, self.sock.out_max_packet_size - CHANNEL_DATA_ROOM - len(head))
        self._write_all(b"".join((head, view[:first])))
        if len(view) > first:
            self._write_all(view[first:])
        return number


class _BlockReader:
    """Reads and hashes an upload's local file in a helper thread, a few blocks ahead.

    Hashing and file reads release the GIL, so they overlap with paramiko's packet work in the
    calling thread; the queue holds at most QUEUE_BLOCKS blocks. The file is read once, in
    order, and what is hashed is what the blocks carry: the digest is that of the bytes sent,
    whichever connection sends them.
    """

    def __init__(self, local, digest, block_size: int = LOCAL_BLOCK):
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_BLOCKS)
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run,
            args=(local, digest, block_size),
            name="sftp-upload-reader",
            daemon=True,
        )
        self._thread.start()

    def _run(self, local, digest, block_size: int) -> None:
        try:
            while not self._stopping.is_set():
                block = local.read(block_size)
                digest.update(block)
                self._put(block)
                if not block:
                    return
        except BaseException as error:  # handed to the calling thread
            self._put(error)

    def _put(self, item) -> None:
        while not self._stopping.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def next_block(self, timeout: float) -> bytes:
        """The next block; b"" at the end of the file."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("reading the local file timed out") from None
        if isinstance(item, BaseException):
            raise item
        return item

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()


class _UploadPieces:
    """One upload's write requests, for one connection or several: (offset, bytes) pieces cut
    from the reading thread's blocks in file order, what is acknowledged, and which other
    connections still write.

    Each stream (one SFTP connection, one thread) takes pieces from here and writes them at
    their offsets; pieces go out in increasing order, so the file on the server fills from the
    front. A stream that fails gives back the pieces it has not seen acknowledged, and another
    writes them. Memory is bounded by the reader's queue and the writes in flight: the pieces a
    stream holds are its unacknowledged writes.
    """

    def __init__(self, reader: _BlockReader, request_size: int, timeout: float):
        self._reader = reader
        self._request_size = request_size
        self._timeout = timeout
        self._changed = threading.Condition()
        self._next: deque[tuple[int, memoryview]] = deque()  # the current block's pieces
        self._given_back: list[tuple[int, memoryview]] = []
        self.size = 0  # bytes read from the local file so far; its size once `ended`
        self.ended = False
        self._failure: BaseException | None = None  # the local file could not be read
        self._stopped = False
        self.acknowledged = 0  # bytes whose writes the server acknowledged, every stream's
        self._others = 0  # other streams that may still write, or have a handle to close

    def take(self) -> tuple[int, memoryview] | None:
        """The next piece to write; None when every piece is taken (or stopping). Raises
        what reading the local file raised, to every stream that asks."""
        with self._changed:
            if self._stopped:
                return None
            if self._given_back:
                return self._given_back.pop()
            if not self._next and not self.ended:
                # Under the lock, so that blocks are cut in order; a block is a local read.
                self._cut(self._next_block())
            return self._next.popleft() if self._next else None

    def _next_block(self) -> bytes:
        if self._failure is None:
            try:
                return self._reader.next_block(self._timeout)
            except BaseException as error:
                self._failure = error
        raise self._failure

    def _cut(self, block: bytes) -> None:
        if not block:
            self.ended = True
            return
        view = memoryview(block)
        for start in range(0, len(block), self._request_size):
            self._next.append((self.size + start, view[start : start + self._request_size]))
        self.size += len(block)

    def acknowledge(self, count: int) -> None:
        with self._changed:
            self.acknowledged += count

    def give_back(self, pieces: list[tuple[int, memoryview]]) -> None:
        """Pieces a stream took and will not see acknowledged: another stream writes them."""
        if pieces:
            with self._changed:
                self._given_back.extend(pieces)
                self._changed.notify_all()

    def join(self) -> bool:
        """Another stream is about to open the file: True if it may write (the session's own
        has not closed it yet), and then the file is not closed before it `leave`s."""
        with self._changed:
            if self._stopped:
                return False
            self._others += 1
            return True

    def leave(self) -> None:
        """Another stream is done: its writes acknowledged and its handle closed, or broken
        off with its pieces given back."""
        with self._changed:
            self._others -= 1
            self._changed.notify_all()

    def settle(self) -> bool:
        """Once the session's own stream has nothing left to take: wait until the other
        streams have left or given pieces back. True if there are pieces to write again;
        False once the others are done, and then no stream takes any more."""
        with self._changed:
            while self._others and not self._given_back:
                self._changed.wait()
            if self._given_back:
                return True
            self._stopped = True
            return False

    def stop(self) -> None:
        """No more pieces for anyone: the upload failed."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()

    def wait_until_alone(self) -> None:
        """After `stop`: return once no other stream is writing."""
        with self._changed:
            while self._others:
                self._changed.wait()


class _WriteStream:
    """One connection's share of an upload: writes at the offsets it takes from `pieces`, at
    most WRITES_IN_FLIGHT unacknowledged, each counted once acknowledged."""

    def __init__(
        self, client, handle: bytes, pieces: _UploadPieces, request_size: int, report=None
    ):
        self._client, self._handle = client, handle
        self._pieces, self._request_size = pieces, request_size
        self._report = report  # called after acknowledgements were counted
        self._replies = _Replies()
        self._pending: deque[tuple[int, int, memoryview]] = deque()  # (number, offset, data)
        self._closing = False  # the CLOSE went out: the handle is the server's to close

    def write_all(self) -> None:
        """Write every piece there is to take; the acknowledgements that are there are
        collected on the way, and the stream waits for one only when too many are out."""
        client = self._client
        while (piece := self._pieces.take()) is not None:
            offset, data = piece
            try:
                number = client._async_request(
                    self._replies, CMD_WRITE, self._handle, int64(offset), data
                )
            except BaseException:
                self._pieces.give_back([piece])
                raise
            self._pending.append((number, offset, data))
            while self._pending and (
                len(self._pending) >= WRITES_IN_FLIGHT or client.sock.recv_ready()
            ):
                self._collect()

    def close(self) -> None:
        """Close the handle, the CLOSE right behind the last write (waiting for the last
        acknowledgements first would cost a round trip); returns once all are acknowledged."""
        self._closing = True
        closing = self._client._async_request(self._replies, CMD_CLOSE, self._handle)
        while self._pending:
            self._collect()
        _check_closed(self._replies.wait(self._client, closing))

    def abandon(self) -> None:
        """After a failure: the writes not acknowledged go back for another stream, and the
        handle is closed unless its CLOSE went out already."""
        self._pieces.give_back([(offset, data) for _number, offset, data in self._pending])
        self._pending.clear()
        if not self._closing:
            _close_quietly(self._client, self._handle)

    def _collect(self) -> None:
        number, _offset, data = self._pending[0]
        _check_written(self._replies.wait(self._client, number), self._request_size)
        self._pending.popleft()
        self._pieces.acknowledge(len(data))
        if self._report is not None:
            self._report()


class _BlockWriter:
    """Writes one download into its local file, from one stream or several, and hashes it:
    the ranges still to ask for, the blocks written, and the SHA-256 of the written prefix.

    Each stream (one SFTP connection, one thread) takes ranges from here, keeps its reads in
    flight, and writes every reply's block at its offset as it arrives; ranges are handed out
    in increasing order, so the blocks land close together and the file fills from the front.
    A stream that fails gives back the ranges it had asked for, and another takes them. A
    hashing thread reads the file back in order as its prefix completes: the digest is that of
    the bytes on disk, however they were assembled, and it costs the streams neither time nor
    memory beyond one block. `finish` says whether the blocks make one whole file.
    """

    def __init__(self, fd: int):
        self._fd = fd
        self._changed = threading.Condition()
        self.size: int | None = None  # FSTAT's answer, while the file keeps to it
        self.eof: int | None = None  # where the server said the file ends
        self._cursor = 0  # the next offset never asked for
        self._given_back: list[tuple[int, int]] = []  # (offset, length) a stream could not finish
        self._pieces: dict[int, int] = {}  # offset -> end of written pieces past the prefix
        self.written = 0  # [0, written) is on disk
        self._out = 0  # ranges taken and neither written, answered end of file nor given back
        self._stopped = False
        self._shrank = False
        self._hashed = 0
        self._finished = False
        self._abandoned = False
        self._hash_error: BaseException | None = None
        self.digest = hashlib.sha256()
        self._hasher = threading.Thread(target=self._hash, name="sftp-download-hash", daemon=True)
        self._hasher.start()

    def take(self, length: int) -> tuple[int, int] | None:
        """The next range to ask for, or None when every range is asked for (or stopping).

        With the size known, the last range starts at or before it: a short read ending at the
        size, or an end-of-file answer at it, shows the file ends there without another round
        trip. Without it, ranges are handed out until the server says end of file.
        """
        with self._changed:
            if self._stopped:
                return None
            past_end = (self.eof is not None and self._cursor >= self.eof) or (
                self.size is not None and self._cursor > self.size
            )
            if self._given_back:
                asked = self._given_back.pop()
            elif past_end:
                return None
            else:
                asked = self._cursor, length
                self._cursor += length
            self._out += 1
            return asked

    def give_back(self, ranges: list[tuple[int, int]]) -> None:
        """Ranges a stream took and will not finish: another stream takes them."""
        with self._changed:
            self._given_back.extend(ranges)
            self._out -= len(ranges)
            self._changed.notify_all()

    def end_at(self, offset: int) -> None:
        """The server answered end of file to the range at `offset`."""
        with self._changed:
            self.eof = offset if self.eof is None else min(self.eof, offset)
            if self.size is not None and offset < self.size:
                self._shrank = True
            self._done_one()

    def _done_one(self) -> None:
        self._out -= 1
        if not self._out:
            self._changed.notify_all()

    def came_short(self, offset: int, count: int, asked: int) -> None:
        """The reply at `offset` has `count` bytes of the `asked` (told before it is written):
        at the file's size, or empty, that is the file's end; inside it, the rest is asked
        for again."""
        end = offset + count
        with self._changed:
            if count == 0 or (self.size is not None and end >= self.size):
                self.eof = end if self.eof is None else min(self.eof, end)
            else:
                self._given_back.append((end, asked - count))
                self._changed.notify_all()

    def write(self, offset: int, data: memoryview) -> None:
        """Write one reply's data at its offset in the local file."""
        count = len(data)
        done = 0
        while done < count:
            done += os.pwrite(self._fd, data[done:], offset + done)
        with self._changed:
            end = offset + count
            if self.size is not None and end > self.size:
                self.size = None  # the file grew while it was read: read on to its end
            if offset == self.written:
                self.written = end
                while self.written in self._pieces:
                    self.written = self._pieces.pop(self.written)
                if self.written - self._hashed >= HASH_BLOCK:
                    self._changed.notify_all()  # wakes the hashing thread a block at a time
            elif count:
                self._pieces[offset] = end
            self._done_one()

    def wait_for_others(self) -> bool:
        """Once a stream has nothing left to ask for: wait until the others have finished
        every range they took, or given some back. True if there are ranges to take again."""
        with self._changed:
            while self._out and not self._given_back:
                self._changed.wait()
            return bool(self._given_back)

    def stop(self) -> None:
        """No more ranges for anyone: a stream ends once its replies are in."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()

    def wait_until_idle(self) -> None:
        """After `stop`: return once no stream has a range out, so none writes any more."""
        with self._changed:
            while self._out:
                self._changed.wait()

    def finish(self) -> int:
        """The file's size, once its every byte is written and hashed; raises if the pieces do
        not make up one whole file (the file changed on the server while it was read)."""
        with self._changed:
            self._finished = True
            self._changed.notify_all()
            eof = self.eof
        self._hasher.join()
        if self._hash_error is not None:
            raise self._hash_error
        if self._shrank:
            raise SFTPError("the file shrank while it was read")
        if eof is None or self.written != eof or self._pieces:
            raise SFTPError("the file changed while it was read")
        return eof

    def abandon(self) -> None:
        """Stop the hashing thread without waiting for the rest of the file."""
        with self._changed:
            self._abandoned = self._finished = True
            self._changed.notify_all()
        self._hasher.join()

    def _hash(self) -> None:
        block = memoryview(bytearray(HASH_BLOCK))
        try:
            while True:
                with self._changed:
                    while self._hashed == self.written and not self._finished:
                        self._changed.wait()
                    if self._abandoned or self._hashed == self.written:
                        return  # abandoned, or finished with every written byte hashed
                    upto = self.written
                start = self._hashed
                while self._hashed < upto:
                    count = os.preadv(self._fd, [block[: upto - self._hashed]], self._hashed)
                    if count <= 0:
                        raise OSError("the local file was cut short while it was written")
                    self.digest.update(block[:count])
                    self._hashed += count
                _start_writeback(self._fd, start, upto - start)
        except BaseException as error:  # handed to the calling thread by finish()
            self._hash_error = error


def _sync_file_range():
    """Linux's sync_file_range(2), or None where there is none (the fsync then does it all)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    function.restype = ctypes.c_int
    return function


_SYNC_FILE_RANGE = _sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2  # start writing the range's dirty pages out; do not wait


def _start_writeback(fd: int, offset: int, count: int) -> None:
    """Have the kernel start writing a hashed stretch of a download to disk, not waiting.

    Left to itself the kernel writes nothing of a fresh GiB before the download's closing fsync
    (its background threshold is a tenth of memory), so that fsync wrote the whole file while
    the transfer waited: a tenth of a 1 GiB download's time on loopback. Started as the file
    grows, the writing overlaps the transfer and the fsync finds little left. Only a hint, so
    a failure is ignored: the fsync is what makes the file durable. ctypes calls release the
    interpreter lock, so the hashing thread waits, not the streams.
    """
    if _SYNC_FILE_RANGE is not None and count > 0:
        _SYNC_FILE_RANGE(fd, offset, count, _SYNC_FILE_RANGE_WRITE)


def _read_stream(
    client, handle: bytes, writer: _BlockWriter, request_size: int, progress=None, sized=None
) -> None:
    """Keep READS_IN_FLIGHT reads out on one connection, taking their ranges from `writer`
    and handing it each reply as it comes, until it has no range left. On a failure the
    ranges still asked for go back to the writer before the error is raised.

    With `sized`, an FSTAT goes out with the first read, and `sized(size)` (None if the
    server does not say) is called before any other read is asked for.
    """
    replies = _Replies()
    pending: deque[tuple[int, int, int]] = deque()  # (request number, offset, length)

    def ask() -> bool:
        asked = writer.take(request_size)
        if asked is None:
            return False
        offset, length = asked
        try:
            number = client._async_request(replies, CMD_READ, handle, int64(offset), length)
        except BaseException:
            writer.give_back([asked])
            raise
        pending.append((number, offset, length))
        return True

    try:
        if sized is not None:
            stat_number = client._async_request(replies, CMD_FSTAT, handle)
            ask()
            kind, message = replies.wait(client, stat_number)
            sized(SFTPAttributes._from_msg(message).st_size if kind == CMD_ATTRS else None)
        while True:
            while len(pending) < READS_IN_FLIGHT and ask():
                pass
            if not pending:
                return
            number, offset, length = pending[0]
            kind, message = replies.wait(client, number)
            if kind == CMD_STATUS:
                if message.get_int() != SFTP_EOF:
                    raise OSError(message.get_text())
                writer.end_at(offset)
            elif kind == CMD_DATA:
                raw = message.asbytes()
                (count,) = struct.unpack(">I", raw[4:8])
                if count < length:
                    writer.came_short(offset, count, length)
                writer.write(offset, memoryview(raw)[8 : 8 + count])
            else:
                raise SFTPError("Expected data")
            pending.popleft()
            if progress is not None:
                progress()
    except BaseException:
        writer.give_back([(offset, length) for _number, offset, length in pending])
        raise


class SftpSession:
    """One SSH connection with one SFTP channel, reused for many files.

    Not thread-safe: one worker thread uses a session at a time. After a connection breaks,
    `connected` is False and `connect()` opens a new one.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str,
        private_key: bytes,
        host_key: str | None,
        timeout: float = 30.0,
    ):
        self.host, self.port, self.username = host, port, username
        self.host_key = host_key.strip() if host_key else None
        self.timeout = timeout
        self._private_key = private_key.encode() if isinstance(private_key, str) else private_key
        self._transport: paramiko.Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._write_size = SMALL_REQUEST
        self._read_size = SMALL_REQUEST
        self.round_trip: float | None = None  # seconds, of a request the server answers at once

    # -- connection ---------------------------------------------------------------------------

    @property
    def where(self) -> str:
        return f"{self.username}@{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return (
            self._sftp is not None
            and self._transport is not None
            and self._transport.is_active()
            and not self._sftp.sock.closed
        )

    @property
    def transport(self) -> paramiko.Transport | None:
        return self._transport

    def connect(self) -> None:
        if self.connected:
            return
        self.close()
        key = _load_private_key(self._private_key)
        if self.host_key is not None:
            _key_blob(self.host_key)  # a malformed pinned key is a configuration error
        transport = _open_transport(self.host, self.port, self.timeout, self.host_key)
        try:
            offered = _key_line(transport.get_remote_server_key())
            if self.host_key is None:
                raise HostKeyUnknown(self.host, self.port, offered)
            if _key_blob(offered) != _key_blob(self.host_key):
                raise HostKeyChanged(self.host, self.port, self.host_key, offered)
            try:
                transport.auth_publickey(self.username, key)
            except paramiko.AuthenticationException:
                raise SftpError(
                    f"Authentication failed for {self.where}: the server did not accept the key."
                ) from None
            transport.set_keepalive(KEEPALIVE_SECONDS)
            channel = transport.open_session(timeout=self.timeout)
            channel.settimeout(self.timeout)
            channel.in_buffer = _ChunkPipe()  # before any data arrives on the channel
            channel.__class__ = ssh_packets.Channel
            _invoke_sftp(transport, channel, self.timeout)
            sftp = _SFTPClient(channel)
            asked = time.monotonic()
            limits = _limits(sftp)
            round_trip = time.monotonic() - asked
        except (HostKeyUnknown, HostKeyChanged, SftpError):
            transport.close()
            raise
        except (paramiko.SSHException, OSError, EOFError, SFTPError) as error:
            transport.close()
            raise SftpUnreachable(f"Cannot open SFTP on {self.where}: {_describe(error)}") from None
        self._transport, self._sftp = transport, sftp
        self.round_trip = round_trip
        self._read_size = self._write_size = SMALL_REQUEST
        if limits is not None:
            _packet, read_length, write_length, _handles = limits
            self._read_size = max(SMALL_REQUEST, min(read_length or LARGE_REQUEST, LARGE_REQUEST))
            self._write_size = max(SMALL_REQUEST, min(write_length or LARGE_REQUEST, LARGE_REQUEST))

    def close(self) -> None:
        sftp, transport = self._sftp, self._transport
        self._sftp = self._transport = None
        if sftp is not None:
            with contextlib.suppress(Exception):  # closing a broken session must not raise
                sftp.close()
        if transport is not None:
            transport.close()

    def __enter__(self) -> "SftpSession":
        self.connect()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _reading_alongside_pays(self, size: int | None) -> bool:
        """Whether a download of `size` bytes goes over more than one connection: a large one,
        over a round trip long enough for one connection's window to bound it."""
        return (
            size is not None
            and size >= STREAMS_FROM
            and self.round_trip is not None
            and self.round_trip >= STREAMS_FROM_ROUND_TRIP
        )

    def _client(self) -> paramiko.SFTPClient:
        if not self.connected:
            raise SftpUnreachable(f"The SFTP session with {self.where} is not connected.")
        return self._sftp

    def _fail(self, action: str, error: BaseException) -> SftpError:
        """An SftpError for `error`; a session whose connection broke is closed."""
        status_error = isinstance(error, OSError) and not isinstance(
            error, socket.timeout | TimeoutError | ConnectionError
        )
        if not (status_error and self.connected):
            self.close()
            kind = SftpUnreachable
        else:
            kind = SftpRefused if isinstance(error, PermissionError) else SftpError
        return kind(f"{action} on {self.where} failed: {_describe(error)}")

    # -- small operations ---------------------------------------------------------------------

    def listdir(self, path: str) -> list[str]:
        client = self._client()
        try:
            return sorted(client.listdir(path))
        except (paramiko.SSHException, OSError, EOFError, SFTPError) as error:
            raise self._fail(f"Listing {path}", error) from None

    def size(self, path: str) -> int | None:
        client = self._client()
        try:
            return client.stat(path).st_size
        except FileNotFoundError:
            return None
        except (paramiko.SSHException, OSError, EOFError, SFTPError) as error:
            raise self._fail(f"Stat of {path}", error) from None

    def age(self, path: str) -> float | None:
        """Seconds since the file was last written, by the server's clock; None if it is gone."""
        client = self._client()
        try:
            modified = client.stat(path).st_mtime
        except FileNotFoundError:
            return None
        except (paramiko.SSHException, OSError, EOFError, SFTPError) as error:
            raise self._fail(f"Stat of {path}", error) from None
        return max(0.0, time.time() - (modified or 0))

    def remove(self, path: str, *, missing_ok: bool = False) -> None:
        client = self._client()
        try:
            client.remove(path)
        except FileNotFoundError as error:
            if not missing_ok:
                raise self._fail(f"Removing {path}", error) from None
        except (paramiko.SSHException, OSError, EOFError, SFTPError) as error:
            raise self._fail(f"Removing {path}", error) from None

    def rename(self, old: str, new: str) -> None:
        client = self._client()
        try:
            client.rename(old, new)
        except (paramiko.SSHException, OSError, EOFError, SFTPError) as error:
            raise self._fail(f"Renaming {old} to {new}", error) from None

    def list_entries(self, path: str) -> dict[str, tuple[int | None, float | None]]:
        """Each entry of the folder: name -> (size, modified), as the server lists them."""
        client = self._client()
        try:
            listed = sftp_batch.list_folder(client, path)
            return {a.filename: (a.st_size, a.st_mtime) for a in listed}
        except _TRANSFER_ERRORS as error:
            raise self._fail(f"Listing {path}", error) from None

    def remove_many(self, paths: list[str]) -> set[str]:
        """Remove the files, all asked at once; returns those that were already gone."""
        try:
            return sftp_batch.remove_many(self._client(), paths)
        except _TRANSFER_ERRORS as error:
            raise self._fail(f"Removing {len(paths)} files", error) from None

    # -- files --------------------------------------------------------------------------------

    def put_bytes(self, data: bytes, remote_path: str) -> None:
        """Write a trigger: whole, or removed before it is closed (`put_small_files`)."""
        error = self.put_small_files({remote_path: data}, acted_on_at_close=True)[remote_path]
        if error is not None:
            raise error

    def put_small_files(
        self, files: dict[str, bytes], *, acted_on_at_close: bool = False
    ) -> dict[str, SftpError | None]:
        """Write many small files at once (remote path -> bytes), each created or emptied
        first, their opens, writes and closes pipelined (`sftp_batch.write_many`, which says
        what `acted_on_at_close` changes). None for each file written and closed, an SftpError
        for one the server refused (the others are written); a broken connection raises
        SftpError for the lot."""
        # In writes of the size put_file has found the server to take: a server that refuses
        # large ones fails a file here once, and its lone retry through put_file learns it.
        try:
            results = sftp_batch.write_many(
                self._client(), files, self._write_size, acted_on_at_close=acted_on_at_close
            )
        except _TRANSFER_ERRORS as error:
            raise self._fail(f"Writing {len(files)} files", error) from None
        return {
            path: None if error is None else self._fail(f"Writing {path}", error)
            for path, error in results.items()
        }

    def put_file(
        self, local_path, remote_path: str, *, progress: Progress | None = None
    ) -> tuple[int, str]:
        """Upload `local_path`; returns its (size, SHA-256 hex), computed in the same pass."""
        client = self._client()
        try:
            local = open(local_path, "rb")  # noqa: SIM115 - closed in the finally below
        except OSError as error:
            raise SftpError(f"Cannot read {local_path}: {_describe(error)}") from None
        try:
            try:
                return self._upload(client, local, remote_path, progress, self._write_size)
            except _WriteRefused:
                # a large write refused: try small ones, and keep them if the server takes them
                local.seek(0)
                result = self._upload(client, local, remote_path, progress, SMALL_REQUEST)
                self._write_size = SMALL_REQUEST
                return result
        except _TRANSFER_ERRORS as error:
            raise self._fail(f"Uploading {local_path} to {remote_path}", error) from None
        finally:
            local.close()

    def _upload(self, client, local, remote_path, progress, request_size) -> tuple[int, str]:
        """Write the local file to `remote_path` over this connection and, for a large file,
        over UPLOAD_STREAMS - 1 more at once; returns its (size, SHA-256 hex).

        Why more than one: the server's channel window (2 MiB for OpenSSH's sshd) bounds what
        a connection has in flight, so over a long round trip it bounds the rate far below
        the link's, whatever the client sends; another connection has a window of its own.
        Unlike a download's, it is used over a short round trip too, where two measured ahead
        of one in the benchmark's form (bench/README.md).
        The file is read and hashed once, in order (`_BlockReader`), and every connection
        writes pieces of it at their offsets. The others only help: one that cannot connect,
        breaks or stalls gives back its unacknowledged pieces and this connection writes
        them, so only a failure of the session's own connection fails the upload (and the
        caller starts it again from the beginning). The file is closed here last, once every
        piece is acknowledged and the other connections have closed their handles: when
        this returns, the server has the whole file.
        """
        digest = hashlib.sha256()
        handle = _open_handle(client, remote_path, _WRITE_FLAGS)
        # Blocks of whole requests: no short write at the end of every block.
        block_size = request_size * max(1, LOCAL_BLOCK // request_size)
        reader = _BlockReader(local, digest, block_size)
        pieces = _UploadPieces(reader, request_size, self.timeout)
        reported = None

        def report() -> None:
            nonlocal reported
            if progress is not None and pieces.acknowledged != reported:
                reported = pieces.acknowledged
                progress(reported)

        stream = _WriteStream(client, handle, pieces, request_size, report)
        helpers: list[SftpSession] = []
        try:
            if os.fstat(local.fileno()).st_size >= STREAMS_FROM:
                helpers = self._start_writing_alongside(remote_path, pieces, request_size)
            stream.write_all()
            while pieces.settle():  # another connection broke off: write what it gave back
                stream.write_all()
            stream.close()
        except BaseException:
            pieces.stop()
            for helper in helpers:
                helper.close()  # a helper waiting for replies fails at once
            pieces.wait_until_alone()
            stream.abandon()
            raise
        finally:
            reader.stop()
        if progress is not None and reported != pieces.size:
            progress(pieces.size)  # an empty file: one call, at its size
        return pieces.size, digest.hexdigest()

    def _start_writing_alongside(
        self, remote_path: str, pieces: _UploadPieces, request_size: int
    ) -> list["SftpSession"]:
        """UPLOAD_STREAMS - 1 helper sessions, each connecting and writing in a thread."""
        helpers = []
        for _ in range(UPLOAD_STREAMS - 1):
            helper = self._helper()
            thread = threading.Thread(
                target=helper._write_alongside,
                args=(remote_path, pieces, request_size),
                name="sftp-upload-stream",
                daemon=True,
            )
            helpers.append(helper)
            thread.start()
        return helpers

    def get_file(
        self, remote_path: str, local_path, *, progress: Progress | None = None
    ) -> tuple[int, str]:
        """Download to `local_path` (written, fsynced); returns its (size, SHA-256 hex)."""
        client = self._client()
        try:
            handle = _open_handle(client, remote_path, SFTP_FLAG_READ)
        except FileNotFoundError:
            raise SftpError(f"{remote_path} does not exist on {self.where}.") from None
        except _TRANSFER_ERRORS as error:
            raise self._fail(f"Opening {remote_path}", error) from None
        try:
            try:
                local = os.open(local_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)
                try:
                    result = self._download(client, handle, remote_path, local, progress)
                    os.fsync(local)
                finally:
                    os.close(local)
            except BaseException:
                _close_quietly(client, handle)
                raise
            client._request(CMD_CLOSE, handle)
            return result
        except _TRANSFER_ERRORS as error:
            raise self._fail(f"Downloading {remote_path} to {local_path}", error) from None

    def read_small_files(self, files: dict[str, int], limit: int) -> dict[str, bytes | None]:
        """The whole of each small file (path -> listed size), read at once into memory; None
        for one that is gone. One longer than `limit` comes back longer than `limit`."""
        try:
            return sftp_batch.read_whole(self._client(), files, limit, self._read_size)
        except _TRANSFER_ERRORS as error:
            raise self._fail(f"Reading {len(files)} files", error) from None

    def read_and_get_files(
        self, small: dict[str, int], limit: int, files: dict[str, tuple[int, Path]]
    ) -> tuple[dict[str, bytes | None], dict[str, tuple[int, str] | OSError | None]]:
        """`read_small_files` of the `small` files, and the `files` (path -> (listed size,
        local path)) downloaded, each written and fsynced, their requests pipelined together:
        (size, SHA-256 hex) of each file, None for one that is gone, the OSError for one whose
        local copy failed (a full disk: the others go on). What was written of a file that did
        not complete is left for the caller to remove."""
        try:
            client = self._client()
            return sftp_batch.read_and_download(client, small, limit, files, self._read_size)
        except _TRANSFER_ERRORS as error:
            raise self._fail(f"Reading {len(small) + len(files)} files", error) from None

    def _download(self, client, handle: bytes, remote_path: str, local: int, progress):
        """Read the remote file into `local` over this connection and, for a large file, over
        DOWNLOAD_STREAMS - 1 more at once; returns its (size, SHA-256 hex).

        Why more than one: a connection has at most its window in flight, so over a long round
        trip the window bounds it far below what the client could take in, and another
        connection with a window and reads of its own adds as much again. Over a short one the
        window is not the bound, and a second connection's threads only contend with the first's
        for the interpreter lock (bench/README.md). So the file's size (FSTAT, sent with the
        first read) and the session's round trip decide (`_reading_alongside_pays`): a smaller
        file is done before another connection would be up. The other connections only help: one
        that cannot connect or breaks gives its ranges back and this connection reads them, so
        only a failure of the session's own connection fails the download (and the caller starts
        it again from the beginning).
        """
        writer = _BlockWriter(local)
        helpers: list[SftpSession] = []
        reported = None

        def report() -> None:
            nonlocal reported
            if progress is not None and writer.written != reported:
                reported = writer.written
                progress(reported)

        def sized(size: int | None) -> None:
            writer.size = size
            if not self._reading_alongside_pays(size):
                return
            for _ in range(DOWNLOAD_STREAMS - 1):
                helper = self._helper()
                thread = threading.Thread(
                    target=helper._read_alongside,
                    args=(remote_path, size, writer),
                    name="sftp-download-stream",
                    daemon=True,
                )
                helpers.append(helper)
                thread.start()

        try:
            _read_stream(client, handle, writer, self._read_size, report, sized)
            while writer.wait_for_others():  # a helper broke off: read what it left
                _read_stream(client, handle, writer, self._read_size, report)
            # A helper still connecting finds nothing left and closes its connection; the file
            # does not wait for it.
            writer.stop()
            size = writer.finish()
        except BaseException:
            writer.stop()
            for helper in helpers:
                helper.close()  # a helper waiting for replies fails at once, giving them back
            writer.wait_until_idle()  # then nothing writes to `local` any more
            raise
        finally:
            writer.abandon()
        if progress is not None and reported != size:
            progress(size)  # the rest came over the other connections; an empty file: 0
        return size, writer.digest.hexdigest()

    def _helper(self) -> "SftpSession":
        """A session like this one, for a connection of its own."""
        return SftpSession(
            host=self.host,
            port=self.port,
            username=self.username,
            private_key=self._private_key,
            host_key=self.host_key,
            timeout=self.timeout,
        )

    def _read_alongside(self, remote_path: str, size: int, writer: "_BlockWriter") -> None:
        """A helper's whole life (its own thread): connect, open the same file, read ranges
        from `writer` until none are left, close. Its failures are logged, not raised: its
        ranges went back to the writer."""
        try:
            self.connect()
            client = self._sftp
            handle = _open_handle(client, remote_path, SFTP_FLAG_READ)
            try:
                kind, message = client._request(CMD_FSTAT, handle)
                if kind != CMD_ATTRS or SFTPAttributes._from_msg(message).st_size != size:
                    return  # not the file the session opened, or it changed meanwhile
                _read_stream(client, handle, writer, self._read_size)
            finally:
                _close_quietly(client, handle)
        except Exception as error:
            log.info("A second stream of %s on %s stopped: %s", remote_path, self.where, error)
        finally:
            self.close()

    def _write_alongside(self, remote_path: str, pieces: _UploadPieces, request_size: int) -> None:
        """A helper's whole life (its own thread): connect, open the file the session created,
        write pieces from `pieces` until none are left, close it. Its failures are logged,
        not raised: its unacknowledged pieces went back."""
        try:
            self.connect()
            if not pieces.join():
                return  # the session's own connection has written the whole file meanwhile
            try:
                client = self._sftp
                # Neither created nor truncated: the session's open did that, and has written.
                handle = _open_handle(client, remote_path, SFTP_FLAG_WRITE)
                stream = _WriteStream(client, handle, pieces, request_size)
                try:
                    stream.write_all()
                    stream.close()
                except BaseException:
                    stream.abandon()
                    raise
            finally:
                pieces.leave()
        except Exception as error:
            log.info("A second stream of %s on %s stopped: %s", remote_path, self.where, error)
        finally:
            self.close()


def _invoke_sftp(transport: paramiko.Transport, channel: paramiko.Channel, timeout: float):
    """Ask for the sftp subsystem within `timeout`. paramiko waits for the answer without a
    timeout, so a connection that stalls at that moment would hold the worker for ever; a timer
    closes the transport instead, which ends the wait."""
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        transport.close()

    watchdog = threading.Timer(timeout, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        channel.invoke_subsystem("sftp")
    except (paramiko.SSHException, EOFError):
        if expired.is_set():
            raise TimeoutError() from None
        raise
    finally:
        watchdog.cancel()


def _limits(client: paramiko.SFTPClient) -> tuple[int, int, int, int] | None:
    """OpenSSH's `limits@openssh.com`: (packet, read, write, open handles); None if absent."""
    try:
        kind, message = client._request(CMD_EXTENDED, "limits@openssh.com")
    except OSError:
        return None  # SSH_FX_OP_UNSUPPORTED: not an OpenSSH server
    if kind != CMD_EXTENDED_REPLY:
        return None
    return tuple(message.get_int64() for _ in range(4))


_WRITE_FLAGS = SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_TRUNC
_TRANSFER_ERRORS = (paramiko.SSHException, OSError, EOFError, SFTPError)


def _open_handle(client: paramiko.SFTPClient, path: str, flags: int) -> bytes:
    kind, message = client._request(CMD_OPEN, path, flags, SFTPAttributes())
    if kind != CMD_HANDLE:
        raise SFTPError("Expected a handle")
    return message.get_binary()


def _close_quietly(client: paramiko.SFTPClient, handle: bytes) -> None:
    """Close a handle after a failure; the failure is what gets reported."""
    if not client.sock.closed:
        with contextlib.suppress(Exception):
            client._async_request(type(None), CMD_CLOSE, handle)


def _check_written(reply, request_size: int) -> None:
    kind, message = reply
    if kind != CMD_STATUS:
        raise SFTPError("Expected a status reply to a write")
    if message.get_int() != SFTP_OK:
        text = message.get_text()
        if request_size > SMALL_REQUEST:
            raise _WriteRefused(text)
        raise OSError(text)


def _check_closed(reply) -> None:
    kind, message = reply
    if kind != CMD_STATUS:
        raise SFTPError("Expected a status reply to a close")
    if message.get_int() != SFTP_OK:
        raise OSError(message.get_text())


class _WriteRefused(OSError):
    """A large write request was refused: retry the file with small requests."""
