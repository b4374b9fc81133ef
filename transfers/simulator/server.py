"""A local Serviceplatformen SFTP server on paramiko: key logins, `IN/` and `OUT/`, routing.

Each user sees `/` with `IN` and `OUT`, backed by `<data-dir>/<username>/`. A file may have any
name the platform's contract allows that is safe as one path component, the names that
`transfers.protocol.file_name_problem` accepts ("Udtræk Aarhus 2024.csv", "data(1)+v2.csv"; not
`/`, `\\`, NUL or other control characters, `.`, `..`, invisible or look-alike characters, nor
over 255 bytes in UTF-8): `folders.safe_file_name`. Any other name is refused with *permission
denied* (a `/` makes a path into a sub-folder: *no such file*) and never reaches the disk, and
such names on the disk are not listed. `..` anywhere in a path, links, sub-folders and writes
outside `OUT` are refused, and so is an `OUT/<name>.trigger` whose receipt `<name>.sftpreceipt`
would be over 255 bytes (the router could not answer it). Uploads go to `OUT`; closing a written
`OUT/<name>.trigger` hands it to the router, which takes it up after its delay: until then the
client may still stat and set-stat it by name.
"""

import base64
import contextlib
import errno
import hashlib
import logging
import os
import posixpath
import socket
import stat
import threading
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from paramiko.sftp import (
    SFTP_FAILURE,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    SFTP_OP_UNSUPPORTED,
    SFTP_PERMISSION_DENIED,
)

from transfers.simulator.folders import IN, INTERNAL, OUT, Folders, safe_file_name
from transfers.simulator.registry import (
    DatabaseRegistry,
    FileRegistry,
    Registry,
    StaticRegistry,
)
from transfers.simulator.router import TRIGGER_SUFFIX, Router, trigger_base

log = logging.getLogger("transfers.simulator")

HOST_KEY_NAME = "ssh_host_ed25519_key"
MAX_READ = 1 << 20  # one read request answers at most this much
READ_CHUNK = 1 << 20  # how much the SFTP server takes from its channel at a time
READ_AHEAD = 1 << 18  # how much one recv() on a connection may take
NAMES_PER_READDIR = 100  # about as many as OpenSSH's sftp-server puts in one reply
# The server offers what is fast first; the client's order decides (SSH picks the first of the
# client's list that the server has), so aes128-gcm is used whenever a client asks for it.
CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
)
MACS = (
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256",
    "hmac-sha2-512",
)


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint of a key (`ssh-keygen -l`)."""
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def load_or_create_host_key(path: str | os.PathLike) -> paramiko.PKey:
    """The host key in `path`; a new Ed25519 key is made and kept there when there is none."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        with contextlib.suppress(FileExistsError):  # another start won the race: use its key
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
            log.info("Made a new Ed25519 host key in %s", path)
    return paramiko.PKey.from_path(path)


class _Failure(int):
    """SFTP_FAILURE with the reason as its message: a full disk says so, not just "Failure"."""

    def __new__(cls, text: str):
        status = super().__new__(cls, SFTP_FAILURE)
        status.text = text
        return status


def _errno_code(error: OSError) -> int:
    if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return _Failure(os.strerror(error.errno))
    if error.errno in (errno.ENOENT, errno.ENOTDIR):
        return SFTP_NO_SUCH_FILE
    if error.errno in (errno.EACCES, errno.EPERM, errno.ELOOP, errno.EISDIR):
        return SFTP_PERMISSION_DENIED
    return SFTP_FAILURE


class _ReadAheadSocket:
    """A socket for paramiko's Transport that reads ahead: one recv() takes what the kernel has
    (up to READ_AHEAD) and the Transport's many small reads (a packet's first block, its rest,
    its MAC) are served from memory: a few system calls per packet fewer."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._buffer = b""
        self._position = 0

    def recv(self, n: int) -> bytes:
        if self._position < len(self._buffer):
            start = self._position
            self._position = min(start + n, len(self._buffer))
            return self._buffer[start : self._position]
        data = self._sock.recv(max(n, READ_AHEAD))
        if len(data) <= n:
            return data
        self._buffer, self._position = data, n
        return data[:n]

    def __getattr__(self, name):
        return getattr(self._sock, name)


class _SftpServer(paramiko.SFTPServer):
    """paramiko's SFTP server with a faster way of reading requests off the channel.

    paramiko reads each request in two small pieces (length, body) from the channel's buffer,
    and every small read moves the whole rest of that buffer (up to the 2 MiB window) forward.
    Reading everything there is at once and slicing our own buffer avoids that.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._incoming = bytearray()
        self._position = 0

    def _send_status(self, request_number, code, desc=None):
        if desc is None:
            desc = getattr(code, "text", None)  # a _Failure's reason
        super()._send_status(request_number, code, desc)

    def _read_folder(self, request_number, folder):
        """About NAMES_PER_READDIR names a reply, as OpenSSH's sftp-server sends, where paramiko
        sends 16: a listing of a full inbox is a few round trips, not one per sixteen files."""
        names = []
        while len(names) < NAMES_PER_READDIR and (more := folder._get_next_files()):
            names += more
        if not names:
            self._send_status(request_number, paramiko.sftp.SFTP_EOF)
            return
        message = paramiko.Message()
        message.add_int(request_number)
        message.add_int(len(names))
        for attributes in names:
            message.add_string(attributes.filename)
            message.add_string(attributes)  # the long form: paramiko's str() of the attributes
            attributes._pack(message)
        self._send_packet(paramiko.sftp.CMD_NAME, message)

    def _read_all(self, n):
        incoming = self._incoming
        while len(incoming) - self._position < n:
            chunk = self.sock.recv(max(n, READ_CHUNK))
            if not chunk:
                raise EOFError()
            if self._position:
                del incoming[: self._position]
                self._position = 0
            incoming += chunk
        start = self._position
        self._position += n
        with memoryview(incoming) as view:  # one copy, and the view is gone before any resize
            return bytes(view[start : self._position])


class _Server(paramiko.ServerInterface):
    """Public-key logins for registered users; sessions only for the sftp subsystem."""

    def __init__(self, simulator: "Simulator", transport: paramiko.Transport):
        self.simulator = simulator
        self.transport = transport
        self._registry: Registry | None = None

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        if self._registry is None:  # once per connection: a login sees the registry of now
            try:
                self._registry = self.simulator.registry.get()
            except Exception:
                log.exception("Cannot read the registry; refusing the login of %s", username)
                return paramiko.AUTH_FAILED
        if self._registry.accepts(username, key.asbytes()):
            return paramiko.AUTH_SUCCESSFUL
        log.info("Refused key %s for user %r", fingerprint(key), username)
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_subsystem_request(self, channel, name):
        if name != "sftp":
            return False
        username = self.transport.get_username()
        try:
            # IN/ and OUT/ exist before the client hears that its session started.
            self.simulator.folders.ensure_user(username)
        except (OSError, ValueError) as error:
            log.error("Refused the SFTP session of %s: %s", username, error)
            return False
        return super().check_channel_subsystem_request(channel, name)


class _Handle(paramiko.SFTPHandle):
    """An open file: reads and writes at offsets straight on the descriptor (pread/pwrite)."""

    def __init__(self, sftp: "_Sftp", fd: int, flags: int, filename: str, writing: bool):
        super().__init__(flags)
        self.sftp = sftp
        self.fd = fd
        self.filename = filename
        self.writing = writing
        self.closed = False

    def read(self, offset, length):
        try:
            return os.pread(self.fd, min(length, MAX_READ), offset)
        except OSError as error:
            return _errno_code(error)

    def write(self, offset, data):
        if not self.writing:
            return SFTP_PERMISSION_DENIED
        try:
            view = memoryview(data)
            while view:
                written = os.pwrite(self.fd, view, offset)
                offset += written
                view = view[written:]
        except OSError as error:
            return _errno_code(error)
        return SFTP_OK

    def stat(self):
        try:
            return paramiko.SFTPAttributes.from_stat(os.fstat(self.fd), self.filename)
        except OSError as error:
            return _errno_code(error)

    def chattr(self, attr):
        try:
            if attr._flags & attr.FLAG_SIZE:
                if not self.writing:
                    return SFTP_PERMISSION_DENIED
                os.ftruncate(self.fd, attr.st_size)
            if attr._flags & attr.FLAG_AMTIME and self.writing:  # IN's times: see chattr
                os.utime(self.fd, (attr.st_atime, attr.st_mtime))
        except OSError as error:
            return _errno_code(error)
        return SFTP_OK  # permissions and owners are the simulator's business

    def close(self):
        if self.closed:
            return
        self.closed = True
        os.close(self.fd)
        if self.writing:
            # A handle closed because the session ended is not a finished upload.
            self.sftp.router.writer_closed(
                self.sftp.username, self.filename, complete=not self.sftp.ending
            )


def _writable_name(name: str) -> bool:
    """A name an upload may get in OUT: a trigger only when the router can route and answer it
    (its receipt's name fits too), so that no trigger is left without a receipt."""
    return not name.endswith(TRIGGER_SUFFIX) or trigger_base(name) is not None


class _Sftp(paramiko.SFTPServerInterface):
    """One user's SFTP session, rooted at `<data-dir>/<username>/`."""

    def __init__(self, server: _Server, *args, **kwargs):
        super().__init__(server, *args, **kwargs)
        self.simulator = server.simulator
        self.router = self.simulator.router
        self.username = server.transport.get_username()
        if not server.transport.is_authenticated() or not self.username:
            raise paramiko.SSHException("SFTP without an authenticated user")
        self.root = self.simulator.folders.user_root(self.username)
        self.ending = False

    def session_started(self):
        log.info("SFTP session of %s started", self.username)

    def session_ended(self):
        self.ending = True
        log.info("SFTP session of %s ended", self.username)

    # --- paths ---

    def _resolve(self, path: str):
        """(folder, name) for a path: (None, None) is `/`, (IN|OUT, None) a folder; else an
        SFTP error code. Never anything outside the user's root."""
        if "\x00" in path or "\\" in path:
            return SFTP_PERMISSION_DENIED
        parts = [part for part in path.split("/") if part not in ("", ".")]
        if ".." in parts:
            return SFTP_PERMISSION_DENIED
        if not parts:
            return None, None
        if parts[0] not in (IN, OUT):
            return SFTP_NO_SUCH_FILE
        if len(parts) == 1:
            return parts[0], None
        if len(parts) > 2:
            return SFTP_NO_SUCH_FILE
        if not safe_file_name(parts[1]):
            return SFTP_PERMISSION_DENIED
        return parts[0], parts[1]

    def _file(self, path: str):
        """(folder, name, real path) of a file path, or an SFTP error code."""
        resolved = self._resolve(path)
        if isinstance(resolved, int):
            return resolved
        folder, name = resolved
        if name is None:
            return SFTP_PERMISSION_DENIED  # a folder where a file is needed
        return folder, name, self.root / folder / name

    def canonicalize(self, path):
        return posixpath.normpath("/" + path.replace("\x00", ""))

    # --- listing and attributes ---

    def list_folder(self, path):
        resolved = self._resolve(path)
        if isinstance(resolved, int):
            return resolved
        folder, name = resolved
        if name is not None:
            return SFTP_NO_SUCH_FILE
        if folder is None:
            return [
                paramiko.SFTPAttributes.from_stat(os.lstat(self.root / sub), sub)
                for sub in (IN, OUT)
            ]
        entries = []
        try:
            with os.scandir(self.root / folder) as scan:
                for entry in scan:
                    if not safe_file_name(entry.name) or not entry.is_file(follow_symlinks=False):
                        continue  # links, unsafe names and anything odd are not shown
                    with contextlib.suppress(OSError):
                        info = entry.stat(follow_symlinks=False)
                        entries.append(paramiko.SFTPAttributes.from_stat(info, entry.name))
        except OSError as error:
            return _errno_code(error)
        return entries

    def stat(self, path):
        resolved = self._resolve(path)
        if isinstance(resolved, int):
            return resolved
        folder, name = resolved
        real = self.root if folder is None else self.root / folder
        if name is not None:
            real = real / name
        try:
            info = os.lstat(real)
        except OSError as error:
            return _errno_code(error)
        if stat.S_ISLNK(info.st_mode):
            return SFTP_PERMISSION_DENIED  # a link is never followed, nor shown
        if name is not None and not stat.S_ISREG(info.st_mode):
            return SFTP_NO_SUCH_FILE
        return paramiko.SFTPAttributes.from_stat(info, name or folder or "/")

    lstat = stat

    def chattr(self, path, attr):
        """Set-stat by name: times on an upload in OUT are set (clients that preserve times
        set them after closing, and read them back); modes, owners and sizes are ignored."""
        result = self.stat(path)
        if isinstance(result, int):
            return result
        target = self._file(path)
        if isinstance(target, int) or target[0] != OUT or not attr._flags & attr.FLAG_AMTIME:
            return SFTP_OK  # IN's times are the clean-up's clock: not the client's to change
        try:
            os.utime(target[2], (attr.st_atime, attr.st_mtime), follow_symlinks=False)
        except OSError as error:
            return _errno_code(error)  # routed away meanwhile: "no such file", as on a stat
        return SFTP_OK

    # --- files ---

    def open(self, path, flags, attr):
        target = self._file(path)
        if isinstance(target, int):
            return target
        folder, name, real = target
        writing = bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC))
        if writing:
            if folder != OUT:
                return SFTP_PERMISSION_DENIED
            if not _writable_name(name):
                log.info(
                    "Refused writing OUT/%s of %s: a trigger it could not answer",
                    name,
                    self.username,
                )
                return SFTP_PERMISSION_DENIED
            if self.router.is_busy(self.username, name):
                log.info("Refused writing OUT/%s of %s: in process", name, self.username)
                return SFTP_PERMISSION_DENIED
        allowed = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_EXCL
        os_flags = (flags & allowed) | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            fd = os.open(real, os_flags, 0o600)
        except OSError as error:
            if error.errno == errno.EEXIST:
                return SFTP_FAILURE
            return _errno_code(error)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                return SFTP_PERMISSION_DENIED
            os.set_blocking(fd, True)
        except OSError as error:
            os.close(fd)
            return _errno_code(error)
        if writing:
            self.router.writer_opened(self.username, name)
        return _Handle(self, fd, flags, name, writing)

    def remove(self, path):
        target = self._file(path)
        if isinstance(target, int):
            return target
        folder, name, real = target
        if folder == OUT and self.router.is_busy(self.username, name):
            return SFTP_PERMISSION_DENIED
        try:
            info = os.lstat(real)
            if not stat.S_ISREG(info.st_mode):
                return SFTP_PERMISSION_DENIED
            os.unlink(real)
        except OSError as error:
            return _errno_code(error)
        return SFTP_OK

    def _rename(self, oldpath, newpath, replace: bool):
        source, target = self._file(oldpath), self._file(newpath)
        for checked in (source, target):
            if isinstance(checked, int):
                return checked
        (old_folder, old_name, old_real), (new_folder, new_name, new_real) = source, target
        if old_folder != OUT or new_folder != OUT or not _writable_name(new_name):
            return SFTP_PERMISSION_DENIED  # only uploads may be renamed, within OUT
        if self.router.is_busy(self.username, old_name) or self.router.is_busy(
            self.username, new_name
        ):
            return SFTP_PERMISSION_DENIED
        try:
            info = os.lstat(old_real)
            if not stat.S_ISREG(info.st_mode):
                return SFTP_PERMISSION_DENIED
            if replace:
                with contextlib.suppress(FileNotFoundError):
                    if not stat.S_ISREG(os.lstat(new_real).st_mode):
                        return SFTP_PERMISSION_DENIED
                os.rename(old_real, new_real)
            else:
                os.link(old_real, new_real, follow_symlinks=False)  # EEXIST: never overwrite
                os.unlink(old_real)
        except OSError as error:
            if error.errno == errno.EEXIST:
                return SFTP_FAILURE
            return _errno_code(error)
        base = trigger_base(new_name)
        if base is not None:
            self.router.trigger_arrived(self.username, base)
        return SFTP_OK

    def rename(self, oldpath, newpath):
        return self._rename(oldpath, newpath, replace=False)

    def posix_rename(self, oldpath, newpath):
        return self._rename(oldpath, newpath, replace=True)

    def mkdir(self, path, attr):
        resolved = self._resolve(path)
        if isinstance(resolved, tuple) and resolved[1] is None:
            return SFTP_FAILURE  # `/`, IN and OUT exist already
        return SFTP_PERMISSION_DENIED

    def rmdir(self, path):
        return SFTP_PERMISSION_DENIED

    def symlink(self, target_path, path):
        return SFTP_PERMISSION_DENIED

    def readlink(self, path):
        return SFTP_OP_UNSUPPORTED


class Simulator:
    """The SFTP server with its router. `start()` listens in the background, `stop()` ends all.

    `registry` is a Registry, a path to a JSON file, None for the portal's database, or any
    object with `get()` (and `close()`) returning a Registry.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        registry=None,
        host: str = "127.0.0.1",
        port: int = 0,
        host_key: paramiko.PKey | str | os.PathLike | None = None,
        delay: float = 0.0,
        cleanup_after: float = 0.0,
        max_connections: int = 64,
    ):
        self.folders = Folders(data_dir)
        if isinstance(registry, Registry):
            registry = StaticRegistry(registry)
        elif isinstance(registry, (str, os.PathLike)):
            registry = FileRegistry(registry)
        elif registry is None:
            registry = DatabaseRegistry()
        self.registry = registry
        if not isinstance(host_key, paramiko.PKey):
            host_key = load_or_create_host_key(
                host_key or self.folders.root / INTERNAL / HOST_KEY_NAME
            )
        self.host_key = host_key
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self.max_connections = max_connections
        self.router = Router(self.folders, registry, delay=delay, cleanup_after=cleanup_after)
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._transports: set[paramiko.Transport] = set()
        self._threads: set[threading.Thread] = set()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.host_key)

    @property
    def data_dir(self) -> Path:
        return self.folders.root

    def start(self) -> "Simulator":
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.requested_port))
            listener.listen(64)
        except OSError:
            listener.close()
            raise
        listener.settimeout(0.2)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self.router.start()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="simulator-accept", daemon=True
        )
        self._accept_thread.start()
        log.info(
            "Serviceplatform simulator on %s:%s, host key %s, data in %s, registry from %s",
            self.host,
            self.port,
            self.fingerprint,
            self.data_dir,
            self.registry.describe() if hasattr(self.registry, "describe") else self.registry,
        )
        return self

    def serve_forever(self) -> None:
        if self._listener is None:
            self.start()
        self._stopped.wait()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopped.set()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            transports, threads = list(self._transports), list(self._threads)
        for transport in transports:
            with contextlib.suppress(Exception):
                transport.close()
        for thread in threads:
            thread.join(timeout)
        self.router.stop(timeout)
        with contextlib.suppress(Exception):
            self.registry.close()

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopped.is_set():
                    return
                log.exception("accept() failed")
                self._stopped.wait(0.2)
                continue
            with self._lock:
                full = len(self._threads) >= self.max_connections
            if full:
                log.warning("Refused a connection from %s: too many connections", address)
                connection.close()
                continue
            thread = threading.Thread(
                target=self._serve, args=(connection, address), name="simulator-conn", daemon=True
            )
            with self._lock:
                self._threads.add(thread)
            thread.start()

    def _serve(self, connection: socket.socket, address) -> None:
        transport = None
        try:
            connection.settimeout(None)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            transport = paramiko.Transport(_ReadAheadSocket(connection))
            with self._lock:
                self._transports.add(transport)
            options = transport.get_security_options()
            options.ciphers = tuple(c for c in CIPHERS if c in options.ciphers)
            options.digests = tuple(m for m in MACS if m in options.digests)
            transport.add_server_key(self.host_key)
            transport.set_subsystem_handler("sftp", _SftpServer, _Sftp)
            if self._stopped.is_set():
                return
            transport.start_server(server=_Server(self, transport))
            # Accepted channels are kept: paramiko closes a channel that is garbage-collected.
            channels = [transport.accept(timeout=60)]
            if channels[0] is None:
                return  # logged in (or not) but never asked for a session
            while transport.is_active() and not self._stopped.is_set():
                channel = transport.accept(timeout=0.5)  # further channels on the connection
                if channel is not None:
                    channels = [c for c in channels if not c.closed] + [channel]
        except (paramiko.SSHException, EOFError, OSError) as error:
            log.info("Connection from %s ended: %s", address, error)
        except Exception:
            log.exception("Connection from %s failed", address)
        finally:
            if transport is not None:
                transport.close()
                with self._lock:
                    self._transports.discard(transport)
            else:
                connection.close()
            with self._lock:
                self._threads.discard(threading.current_thread())
