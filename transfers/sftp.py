"""The one SFTP session type the portal's workers use to send and fetch files (paramiko).

A worker opens a session, keeps it for many files and closes it. The server's host key must be
pinned: an unknown key raises `HostKeyUnknown` (an operator confirms the fingerprint and pins
it), a different key raises `HostKeyChanged`; both before any authentication is attempted. An
endpoint that SFTP_ALLOWED_HOSTS does not allow raises `EndpointRefused` before any connection is
tried (transfers/endpoints.py). Every other failure is an `SftpError` with a message fit for an
operator.

Performance (measured, see `bench/README.md`):
aes128-gcm when the server offers it, TCP_NODELAY, pipelined 255 KiB writes (OpenSSH's
`limits@openssh.com`; 32 KiB on other servers), and a download loop of our own with a fixed
number of read requests in flight, whose local hashing and writing (and an upload's reading and
hashing) run in a helper thread. Round trips per uploaded file (what decides many small files on a
real link): two. The open waits for its handle; the writes and the close then go out without
waiting, and the file counts as written only once every write and the close are acknowledged;
no stat before or after. paramiko's `prefetch()` is never used: its race (paramiko PR
#2519) can make memory grow with the file size. The channel's receive buffer is replaced by one
that does not memmove on every read (`_ChunkPipe`), the main cost of paramiko downloads. The
channel window stays at paramiko's default (2 MiB).

This module relies on a few paramiko internals (`SFTPClient._async_request`, `_read_response`,
`_request`, `BufferedPipe`'s buffer hooks, `Channel.in_buffer`), checked against paramiko 5.1
by tests/test_sftp_session.py.
"""

import base64
import contextlib
import hashlib
import io
import os
import queue
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable

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

from transfers import endpoints

Progress = Callable[[int], None]

PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
SMALL_REQUEST = 32 * 1024  # every SFTP server accepts this much per read or write
LARGE_REQUEST = 255 * 1024  # 261,120 bytes: OpenSSH's limits@openssh.com read and write length
LOCAL_BLOCK = 1024 * 1024  # local file reads for uploads
QUEUE_BLOCKS = 4  # blocks (uploads) or replies (downloads) between the SFTP and local threads
WRITES_IN_FLIGHT = 32  # unacknowledged write requests (the channel window also bounds them)
READS_IN_FLIGHT = 16  # outstanding read requests: memory is bounded by this times the size
KEEPALIVE_SECONDS = 30


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
        transport = paramiko.Transport(sock)
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

    def frombytes(self, data: bytes) -> None:
        if data:
            self._parts.append(bytes(data))
            self._size += len(data)

    def take(self, limit: int | None) -> bytes:
        """Up to `limit` bytes from the front (all if None), without consuming them."""
        want = self._size if limit is None else min(limit, self._size)
        first = self._parts[0] if self._parts else b""
        if self._offset == 0 and len(first) == want:
            return first
        if len(first) - self._offset >= want:
            return first[self._offset : self._offset + want]
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

    def _buffer_frombytes(self, data):
        self._buffer.frombytes(data)

    def _buffer_tobytes(self, limit=None):
        return self._buffer.take(limit)


class _SFTPClient(paramiko.SFTPClient):
    """paramiko's client with linear-time packet reads and writes (no repeated slicing)."""

    def _read_all(self, n):
        parts = []
        while n > 0:
            data = self.sock.recv(n)
            if not data:
                raise EOFError()
            parts.append(data)
            n -= len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _write_all(self, out):
        view = memoryview(out)
        while view:
            sent = self.sock.send(view)
            if sent <= 0:
                raise EOFError()
            view = view[sent:]


class _BlockReader:
    """Reads and hashes an upload's local file in a helper thread, a few blocks ahead.

    Hashing and file reads release the GIL, so they overlap with paramiko's packet work in the
    calling thread; the queue holds at most QUEUE_BLOCKS blocks.
    """

    def __init__(self, local, digest):
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_BLOCKS)
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(local, digest), name="sftp-upload-reader", daemon=True
        )
        self._thread.start()

    def _run(self, local, digest) -> None:
        try:
            while not self._stopping.is_set():
                block = local.read(LOCAL_BLOCK)
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


class _BlockWriter:
    """Hashes and writes a download's data in a helper thread, in order.

    The calling thread keeps the SFTP requests going meanwhile; the queue holds at most
    QUEUE_BLOCKS replies. A local write error is raised in the calling thread.
    """

    def __init__(self, local, digest):
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_BLOCKS)
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(local, digest), name="sftp-download-writer", daemon=True
        )
        self._thread.start()

    def _run(self, local, digest) -> None:
        while (data := self._queue.get()) is not None:
            if self._error is None:
                try:
                    digest.update(data)
                    local.write(data)
                except BaseException as error:  # handed to the calling thread
                    self._error = error

    def write(self, data, timeout: float) -> None:
        if self._error is not None:
            raise self._error
        try:
            self._queue.put(data, timeout=timeout)
        except queue.Full:
            raise TimeoutError("writing the local file timed out") from None

    def finish(self) -> None:
        """Wait for everything queued to be written; raise the writer's error if any."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


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
            _invoke_sftp(transport, channel, self.timeout)
            sftp = _SFTPClient(channel)
            limits = _limits(sftp)
        except (HostKeyUnknown, HostKeyChanged, SftpError):
            transport.close()
            raise
        except (paramiko.SSHException, OSError, EOFError, SFTPError) as error:
            transport.close()
            raise SftpUnreachable(f"Cannot open SFTP on {self.where}: {_describe(error)}") from None
        self._transport, self._sftp = transport, sftp
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

    # -- files --------------------------------------------------------------------------------

    def put_bytes(self, data: bytes, remote_path: str) -> None:
        """Write a small file (a trigger): open, then the writes and the close pipelined.

        Two round trips; returns only when every write and the close are acknowledged.
        """
        client = self._client()
        try:
            handle = _open_handle(client, remote_path, _WRITE_FLAGS)
            replies = _Replies()
            pending: deque[int] = deque()
            try:
                for offset in range(0, len(data), self._write_size):
                    piece = data[offset : offset + self._write_size]
                    pending.append(
                        client._async_request(replies, CMD_WRITE, handle, int64(offset), piece)
                    )
                    if len(pending) >= WRITES_IN_FLIGHT:
                        _check_written(replies.wait(client, pending.popleft()), SMALL_REQUEST)
            except BaseException:
                _close_quietly(client, handle)
                raise
            closing = client._async_request(replies, CMD_CLOSE, handle)
            while pending:
                _check_written(replies.wait(client, pending.popleft()), SMALL_REQUEST)
            _check_closed(replies.wait(client, closing))
        except _TRANSFER_ERRORS as error:
            raise self._fail(f"Writing {remote_path}", error) from None

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
        digest = hashlib.sha256()
        handle = _open_handle(client, remote_path, _WRITE_FLAGS)
        replies = _Replies()
        pending: deque[int] = deque()
        offset = 0
        closing = None  # the CLOSE request's number once sent, right behind the last write
        reader = _BlockReader(local, digest)
        try:
            while block := reader.next_block(self.timeout):
                view = memoryview(block)
                for start in range(0, len(block), request_size):
                    piece = view[start : start + request_size]
                    number = client._async_request(replies, CMD_WRITE, handle, int64(offset), piece)
                    pending.append(number)
                    offset += len(piece)
                    # collect acknowledgements that are there; wait only when too many are out
                    while pending and (
                        len(pending) >= WRITES_IN_FLIGHT or client.sock.recv_ready()
                    ):
                        _check_written(replies.wait(client, pending.popleft()), request_size)
                if progress is not None:
                    progress(offset)
            # No waiting for the last acknowledgements first: that would cost a round trip.
            closing = client._async_request(replies, CMD_CLOSE, handle)
            while pending:
                _check_written(replies.wait(client, pending.popleft()), request_size)
            _check_closed(replies.wait(client, closing))
            if progress is not None and offset == 0:
                progress(0)  # an empty file: one call, at its size
        except BaseException:
            if closing is None:
                _close_quietly(client, handle)
            raise
        finally:
            reader.stop()
        return offset, digest.hexdigest()

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
                with open(local_path, "wb") as local:
                    digest = hashlib.sha256()
                    writer = _BlockWriter(local, digest)
                    try:
                        size = self._download(client, handle, writer, progress)
                    finally:
                        writer.finish()
                    local.flush()
                    os.fsync(local.fileno())
            except BaseException:
                _close_quietly(client, handle)
                raise
            client._request(CMD_CLOSE, handle)
            return size, digest.hexdigest()
        except _TRANSFER_ERRORS as error:
            raise self._fail(f"Downloading {remote_path} to {local_path}", error) from None

    def _download(self, client, handle: bytes, writer: "_BlockWriter", progress) -> int:
        """Read requests of `_read_size`, at most READS_IN_FLIGHT outstanding, written in order.

        The file's size (FSTAT, sent with the first read) bounds the requests; a request at the
        end confirms it. Memory stays at READS_IN_FLIGHT replies plus the writer's queue,
        whatever the file size.
        """
        request_size = self._read_size
        replies = _Replies()
        pending: deque[tuple[int, int, int]] = deque()  # (request number, offset, length)
        received = 0
        end: int | None = None  # the size FSTAT reported

        def ask(offset: int, length: int) -> None:
            number = client._async_request(replies, CMD_READ, handle, int64(offset), length)
            pending.append((number, offset, length))

        stat_number = client._async_request(replies, CMD_FSTAT, handle)
        ask(0, request_size)
        next_offset = request_size
        kind, message = replies.wait(client, stat_number)
        if kind == CMD_ATTRS:
            end = SFTPAttributes._from_msg(message).st_size
        eof = False
        while pending:
            while (
                not eof and len(pending) < READS_IN_FLIGHT and (end is None or next_offset <= end)
            ):
                ask(next_offset, request_size)
                next_offset += request_size
            number, offset, length = pending.popleft()
            kind, message = replies.wait(client, number)
            if kind == CMD_STATUS:
                if message.get_int() != SFTP_EOF:
                    raise OSError(message.get_text())
                eof = True
                if end is not None and received < end:
                    raise SFTPError("the file shrank while it was read")
                continue
            if kind != CMD_DATA:
                raise SFTPError("Expected data")
            if offset != received:
                raise SFTPError("the file changed while it was read")
            raw = message.asbytes()
            (count,) = struct.unpack(">I", raw[4:8])
            writer.write(memoryview(raw)[8 : 8 + count], self.timeout)
            received += count
            if progress is not None:
                progress(received)
            if count < length and (end is None or received < end):
                # a short read inside the file: ask for the rest before anything else
                number = client._async_request(
                    replies, CMD_READ, handle, int64(received), length - count
                )
                pending.appendleft((number, received, length - count))
            elif count < length:
                eof = True
        if progress is not None and received == 0:
            progress(0)  # an empty file: one call, at its size
        return received


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
