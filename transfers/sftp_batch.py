"""Many files over one SFTP connection at once: their opens, reads, closes and removes pipelined
across the files, so that a batch pays a round trip per step rather than each file per request.

Used by the fetch, where an inbox holds a data file and its metadata per delivered send: read one
after another, each file costs an open, a read or two and a close, and each removal one more;
over a link with tens of milliseconds of round trip that, not the bytes, is the time. Small sends
that go together write their data files, then their triggers, the same way (`write_many`). Here
every request of a step goes out before the first reply is waited for, with a bound on the files
open and on the bytes asked for at once (kept within what the channel's window lets the server
send). The fetch's listing of its inbox is pipelined the same way (`list_folder`).

The functions take paramiko's SFTP client and raise OSError (the server refused), EOFError or
paramiko's SSHException (the connection broke); transfers.sftp.SftpSession wraps them.
"""

import contextlib
import errno
import hashlib
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import paramiko
from paramiko.sftp import (
    CMD_CLOSE,
    CMD_DATA,
    CMD_HANDLE,
    CMD_NAME,
    CMD_OPEN,
    CMD_OPENDIR,
    CMD_READ,
    CMD_READDIR,
    CMD_REMOVE,
    CMD_STATUS,
    CMD_WRITE,
    SFTP_EOF,
    SFTP_FAILURE,
    SFTP_FLAG_CREATE,
    SFTP_FLAG_READ,
    SFTP_FLAG_TRUNC,
    SFTP_FLAG_WRITE,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    int64,
)
from paramiko.sftp_attr import SFTPAttributes

# Handles open at once: a fetch's batch of 64 pairs (its metadata and data files) in one wave.
# OpenSSH allows as many as its process may open files (1024 or more); a reader meets a lower
# cap of a server by opening fewer (`_Reader.at_once`).
FILES_AT_ONCE = 128
BYTES_IN_FLIGHT = 8 * 1024 * 1024  # read bytes asked for and not yet answered, all files
HASH_BLOCK = 1024 * 1024
COMPLETERS = 8  # files fsynced and hashed at once while the rest are read
# A file listed at up to this size is gathered in memory and written whole by a completer: the
# reading thread then makes no file and no write of its own. 128 files at once hold 32 MiB.
GATHERED_BYTES = 256 * 1024
# READDIR requests out at once on a folder: servers answer with about 100 names each (OpenSSH,
# the simulator), so an inbox of up to 150 pairs lists in one wave, which learns in the same
# round trip that it was all.
READDIRS_IN_FLIGHT = 4


class _Pipeline:
    """Requests out on one connection, each with what to do with its reply when it comes."""

    def __init__(self, client: paramiko.SFTPClient):
        self.client = client
        self._then: dict[int, Callable[[int, paramiko.Message], None]] = {}
        self._arrived: deque[tuple[int, int, paramiko.Message]] = deque()

    def ask(self, kind: int, *args, then: Callable[[int, paramiko.Message], None]) -> None:
        self._then[self.client._async_request(self, kind, *args)] = then

    def _async_response(self, kind: int, message: paramiko.Message, number: int) -> None:
        self._arrived.append((number, kind, message))  # paramiko calls this with each reply

    def run(self) -> None:
        """Handle replies (a handler may ask more) until none is awaited."""
        while self._then:
            if not self._arrived:
                self.client._read_response()
                continue
            number, kind, message = self._arrived.popleft()
            then = self._then.pop(number, None)
            if then is not None:
                then(kind, message)

    def close_unwaited(self, handles: list[bytes]) -> None:
        """Close these handles; their replies are let go as they come (paramiko drops a reply
        to a request asked for no one)."""
        for handle in handles:
            self.client._async_request(type(None), CMD_CLOSE, handle)

    def abandon(self, handles: list[bytes]) -> None:
        """After a failure: close what is open without waiting; later replies are ignored."""
        self._then.clear()
        if not self.client.sock.closed:
            # The failure being raised is what matters, not one of closing after it.
            with contextlib.suppress(Exception):
                self.close_unwaited(handles)


def _status(message: paramiko.Message) -> tuple[int, str]:
    code = message.get_int()
    return code, message.get_text() if code != SFTP_OK else ""


def _refused(path: str, code: int, text: str) -> OSError:
    if code == SFTP_NO_SUCH_FILE:
        return FileNotFoundError(errno.ENOENT, text, path)
    return OSError(f"{path}: {text}")


class _FileRead:
    """One remote file being read: its handle, the ranges asked, where it ends."""

    def __init__(self, path: str, size_hint: int, stop_at: int | None):
        self.path = path
        self.size_hint = size_hint  # the size listed; the reads learn the real one
        self.stop_at = stop_at  # no read is asked past this offset
        self.handle: bytes | None = None
        self.next_offset = 0
        self.asked = 0  # reads out
        self.probing = False  # a read past the expected end is out
        self.end: int | None = None  # known once a read meets the end of the file
        self.parts: dict[int, bytes] = {}  # offset -> bytes, for a file read into memory
        self.failed: OSError | None = None  # its local copy could not be written


class _Reader:
    """Reads `files` (remote path -> expected size) pipelined; each file's bytes go to `sink`,
    and `finished(file)` is called once the whole file is in and its close asked. No read of a
    file in `stops` is asked past the offset given there.

    A local failure (an OSError from `sink` or `finished`, such as a full disk) ends that
    file's reading and is kept in `failed`; the other files go on."""

    def __init__(self, client, files: dict[str, int], request_size: int, sink, finished, stops):
        self.pipeline = _Pipeline(client)
        self.request_size = request_size
        self.waiting = deque(_FileRead(path, hint, stops.get(path)) for path, hint in files.items())
        self.open: list[_FileRead] = []
        self.at_once = FILES_AT_ONCE  # lowered to what a server that caps open files allows
        self.in_flight = 0
        self.sink, self.finished = sink, finished
        self.missing: set[str] = set()
        self.failed: dict[str, OSError] = {}

    def run(self) -> None:
        try:
            self._start()
            self.pipeline.run()
        except BaseException:
            self.pipeline.abandon([f.handle for f in self.open if f.handle is not None])
            raise

    def _start(self) -> None:
        while self.waiting and len(self.open) < self.at_once:
            file = self.waiting.popleft()
            self.open.append(file)
            self.pipeline.ask(
                CMD_OPEN, file.path, SFTP_FLAG_READ, SFTPAttributes(), then=self._opened(file)
            )

    def _opened(self, file: _FileRead):
        def then(kind, message) -> None:
            if kind == CMD_STATUS:
                code, text = _status(message)
                if code == SFTP_FAILURE and len(self.open) > 1:
                    # A server that caps a session's open files says no more than "failure"
                    # (OpenSSH's, at its process's limit): the file waits for a handle to close,
                    # and no more are opened at once than are open now. Opened alone, a file
                    # that still fails fails the batch.
                    self.open.remove(file)
                    self.waiting.appendleft(file)
                    self.at_once = len(self.open)
                    return
                if code != SFTP_NO_SUCH_FILE:
                    raise _refused(file.path, code, text)
                self.missing.add(file.path)  # taken by someone else meanwhile
                self._closed(file)
                return
            if kind != CMD_HANDLE:
                raise OSError(f"{file.path}: expected a handle")
            file.handle = message.get_binary()
            self._ask_reads()

        return then

    def _ask_reads(self) -> None:
        """Ask for the next ranges of the open files, within the bytes allowed in flight."""
        for file in self.open:
            while file.handle is not None and file.end is None and file.failed is None:
                if file.stop_at is not None and file.next_offset >= file.stop_at:
                    break  # what was asked is enough for `sink` to end the file
                if file.next_offset < file.size_hint:
                    length = min(self.request_size, file.size_hint - file.next_offset)
                    if self.in_flight and self.in_flight + length > BYTES_IN_FLIGHT:
                        return
                    self._read(file, file.next_offset, length, counted=length)
                elif not file.probing:
                    # One read past the expected end learns where the file ends, in the same
                    # round trip as the rest when the listed size was right.
                    file.probing = True
                    length = self.request_size
                    self._read(file, file.next_offset, length, counted=0, probe=True)
                else:
                    break
                file.next_offset += length

    def _read(self, file, offset: int, length: int, counted: int, probe: bool = False) -> None:
        file.asked += 1
        self.in_flight += counted
        then = self._got(file, offset, length, counted, probe)
        self.pipeline.ask(CMD_READ, file.handle, int64(offset), length, then=then)

    def _got(self, file: _FileRead, offset: int, length: int, counted: int, probe: bool):
        def then(kind, message) -> None:
            file.asked -= 1
            self.in_flight -= counted
            if kind == CMD_STATUS:
                code, text = _status(message)
                if code != SFTP_EOF:
                    raise _refused(file.path, code, text)
                file.end = offset if file.end is None else min(file.end, offset)
            elif kind == CMD_DATA:
                data = message.get_binary()
                if data and file.failed is None:
                    try:
                        self.sink(file, offset, data)
                    except OSError as error:
                        file.failed = error
                # A failed file asks nothing more; its handle closes once its reads are in.
                if file.failed is None and len(data) < length:
                    # A short read: the server may stop early (at the end, or at a limit of
                    # its own); the rest is asked, and answers with more data or with the end.
                    rest = length - len(data)
                    self._read(file, offset + len(data), rest, counted=0, probe=probe)
                elif file.failed is None and probe:
                    # The read past the expected end came back full: the file is longer than
                    # it was listed, so the reads go on.
                    file.size_hint = file.next_offset + BYTES_IN_FLIGHT
                    file.probing = False
            else:
                raise OSError(f"{file.path}: expected data")
            ended = file.end is not None or file.failed is not None
            if file.asked == 0 and ended and file.handle is not None:
                self._finish(file)
            self._ask_reads()

        return then

    def _finish(self, file: _FileRead) -> None:
        """Every read of the file is answered: its close is asked, and the file is done. The
        close is not waited for (it was one more round trip a batch): every byte is here, and
        servers take requests in order. One that did not, and refused to remove a file still
        open, would fail the fetch's removal of the pair, which a later fetch does again."""
        handle, file.handle = file.handle, None
        self.pipeline.close_unwaited([handle])
        if file.failed is None:
            try:
                self.finished(file)
            except OSError as error:
                file.failed = error
        if file.failed is not None:
            self.failed[file.path] = file.failed
        self._closed(file)

    def _closed(self, file: _FileRead) -> None:
        self.open.remove(file)
        self._start()


def read_whole(
    client: paramiko.SFTPClient, files: dict[str, int], limit: int, request_size: int
) -> dict[str, bytes | None]:
    """The whole of each small file (remote path -> expected size), read into memory; None for a
    file that is not there. Reading a file stops once it is longer than `limit` bytes: what it
    returns is then longer than the limit, for the caller to refuse."""
    return read_and_download(client, files, limit, {}, request_size)[0]


def read_and_download(
    client: paramiko.SFTPClient,
    small: dict[str, int],
    limit: int,
    files: dict[str, tuple[int, Path]],
    request_size: int,
) -> tuple[dict[str, bytes | None], dict[str, tuple[int, str] | OSError | None]]:
    """`read_whole` of the `small` files, and each of the others (remote path -> (expected
    size, local path)) written to its local path and fsynced: its (size, SHA-256 hex) once
    complete, None if it is not there, the OSError if its local copy could not be written (the
    others go on). All pipelined together: a fetch reads its pairs' metadata and data files in
    the round trips of one. On a failure of the connection the local files written so far are
    left for the caller to remove.

    A complete file is made durable and hashed by `COMPLETERS` threads while the replies of the
    others are still read: an fsync waits on the disk for milliseconds, and one after another
    in the reading thread they held up every file behind them. A file listed at up to
    `GATHERED_BYTES` is gathered in memory and written whole by one of them, made, written,
    fsynced and hashed from memory: in a profile of a full inbox, creating and writing the
    files was a sixth of the reading thread's time."""
    read: dict[str, bytes | None] = {}
    descriptors: dict[str, int] = {}
    completing: dict[str, tuple[int, Future[str]]] = {}
    downloaded: dict[str, tuple[int, str] | OSError | None] = {}

    gathered = {path for path, (size, _local) in files.items() if size <= GATHERED_BYTES}

    def local(path: str) -> int:
        if path not in descriptors:
            descriptors[path] = _create(files[path][1])
        return descriptors[path]

    def sink(file: _FileRead, offset: int, data: bytes) -> None:
        if file.path in small:
            file.parts[offset] = data
            if offset + len(data) > limit:
                file.end = offset + len(data)  # longer than the limit: read no further
        elif file.path in gathered:
            file.parts[offset] = data
            if offset + len(data) > GATHERED_BYTES:
                # Longer than it was listed: written as it comes from here on.
                gathered.discard(file.path)
                for at in sorted(file.parts):
                    _write_block(local(file.path), at, file.parts[at])
                file.parts.clear()
        else:
            _write_block(local(file.path), offset, data)

    def finished(file: _FileRead) -> None:
        if file.path in small:
            read[file.path] = _joined(file)
        elif file.path in gathered:
            future = completers.submit(_write_whole, files[file.path][1], _joined(file), file.end)
            completing[file.path] = (file.end, future)
        else:
            # `local` opens it here if no write did: an empty file.
            future = completers.submit(_complete, local(file.path), file.end)
            completing[file.path] = (file.end, future)

    expected = dict(small) | {path: size for path, (size, _local) in files.items()}
    try:
        with ThreadPoolExecutor(COMPLETERS, thread_name_prefix="sftp-complete") as completers:
            stops = dict.fromkeys(small, limit + 1)
            reader = _Reader(client, expected, request_size, sink, finished, stops)
            reader.run()
        # Every completion has ended here, the pool's exit waited for them.
        for path, (size, digest) in completing.items():
            try:
                downloaded[path] = (size, digest.result())
            except OSError as error:
                downloaded[path] = error
    finally:
        for descriptor in descriptors.values():
            os.close(descriptor)
    for path in reader.missing:
        (read if path in small else downloaded)[path] = None
    downloaded.update(reader.failed)
    return read, downloaded


def _joined(file: _FileRead) -> bytes:
    """A file read into memory, whole: its reads follow one another without a gap."""
    return b"".join(file.parts[offset] for offset in sorted(file.parts))


def _create(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)


def _write_block(descriptor: int, offset: int, data: bytes) -> None:
    os.pwrite(descriptor, data, offset)


def _write_whole(path: Path, data: bytes, size: int) -> str:
    """A file gathered in memory written to `path` and made durable; its SHA-256."""
    if len(data) != size:
        raise OSError(errno.EIO, "the reads of the file do not add up to its size")
    descriptor = _create(path)
    try:
        view, offset = memoryview(data), 0
        while offset < len(data):
            offset += os.write(descriptor, view[offset:])
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return hashlib.sha256(data).hexdigest()


def _complete(descriptor: int, size: int) -> str:
    """Make the file `size` bytes and durable; its SHA-256, read back in order (its ranges may
    have come in any order)."""
    os.ftruncate(descriptor, size)
    os.fsync(descriptor)
    digest = hashlib.sha256()
    offset = 0
    while offset < size:
        block = os.pread(descriptor, min(HASH_BLOCK, size - offset), offset)
        if not block:
            raise OSError(errno.EIO, "the file is shorter than what was written to it")
        digest.update(block)
        offset += len(block)
    return digest.hexdigest()


def write_many(
    client: paramiko.SFTPClient,
    files: dict[str, bytes],
    request_size: int,
    *,
    acted_on_at_close: bool = False,
) -> dict[str, OSError | None]:
    """Write each small file whole (remote path -> its bytes), created or emptied first: None for
    each written and closed, the OSError for one the server refused (the others go on). Every
    file is held in memory, so the caller keeps a batch small.

    Each file's writes go out together once its handle is in, and its close right behind them:
    two round trips for the batch; a refused file may be left partly written. For files the
    server acts on once they are closed (`acted_on_at_close`: triggers), the close waits for
    the writes' answers, and a file not written whole is removed before it is closed: three
    round trips, and never a partial file closed in place."""
    pipeline = _Pipeline(client)
    waiting = deque(files)
    results: dict[str, OSError | None] = {}
    handles: dict[str, bytes] = {}
    state = {"open": 0}
    flags = SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_TRUNC

    def start() -> None:
        while waiting and state["open"] < FILES_AT_ONCE:
            path = waiting.popleft()
            state["open"] += 1
            pipeline.ask(CMD_OPEN, path, flags, SFTPAttributes(), then=opened(path))

    def done(path: str, error: OSError | None) -> None:
        results[path] = error
        state["open"] -= 1
        start()

    def opened(path: str):
        def then(kind, message) -> None:
            if kind == CMD_STATUS:
                done(path, _refused(path, *_status(message)))
                return
            if kind != CMD_HANDLE:
                raise OSError(f"{path}: expected a handle")
            handles[path] = message.get_binary()
            data = memoryview(files[path])
            offsets = range(0, len(data), request_size)
            file = {"refusals": [], "unanswered": len(offsets)}
            for offset in offsets:
                piece = data[offset : offset + request_size]
                pipeline.ask(
                    CMD_WRITE, handles[path], int64(offset), piece, then=written(path, file)
                )
            if not acted_on_at_close or not offsets:
                close(path, file)

        return then

    def written(path: str, file: dict):
        def then(kind, message) -> None:
            code, text = _status(message) if kind == CMD_STATUS else (-1, "no status reply")
            if code != SFTP_OK:
                file["refusals"].append(_refused(path, code, text))
            file["unanswered"] -= 1
            if acted_on_at_close and not file["unanswered"]:
                if file["refusals"]:
                    pipeline.ask(CMD_REMOVE, path, then=lambda *_reply: None)
                close(path, file)

        return then

    def close(path: str, file: dict) -> None:
        def then(kind, message) -> None:
            del handles[path]
            code, text = _status(message) if kind == CMD_STATUS else (-1, "no status reply")
            if code != SFTP_OK:
                file["refusals"].append(_refused(path, code, text))
            done(path, file["refusals"][0] if file["refusals"] else None)

        pipeline.ask(CMD_CLOSE, handles[path], then=then)

    try:
        start()
        pipeline.run()
    except BaseException:
        pipeline.abandon(list(handles.values()))
        raise
    return results


def remove_many(client: paramiko.SFTPClient, paths: list[str]) -> set[str]:
    """Remove every path, all asked at once; returns those already gone. Any other refusal is
    raised once every reply is in, so none is left unanswered on the connection."""
    pipeline = _Pipeline(client)
    gone: set[str] = set()
    refused: list[OSError] = []

    def removed(path: str):
        def then(kind, message) -> None:
            code, text = _status(message) if kind == CMD_STATUS else (-1, "no status reply")
            if code == SFTP_NO_SUCH_FILE:
                gone.add(path)
            elif code != SFTP_OK:
                refused.append(_refused(path, code, text))

        return then

    for path in paths:
        pipeline.ask(CMD_REMOVE, path, then=removed(path))
    pipeline.run()
    if refused:
        raise refused[0]
    return gone


def list_folder(client: paramiko.SFTPClient, path: str) -> list[SFTPAttributes]:
    """The folder's entries but `.` and `..`, as paramiko's `listdir_attr` gives them, in two
    round trips where it takes four: its READDIRs go out in waves of `READDIRS_IN_FLIGHT` (a
    server answers the requests on one handle in order, each with the next names or the end),
    and the folder's close is not waited for. A fetch lists its inbox again and again while
    a batch of sends comes in: each listing it waits for is time that the last file waits."""
    pipeline = _Pipeline(client)
    entries: list[SFTPAttributes] = []
    state = {"handle": None, "asked": 0, "ended": False}

    def wave() -> None:
        for _ in range(READDIRS_IN_FLIGHT):
            state["asked"] += 1
            pipeline.ask(CMD_READDIR, state["handle"], then=named)

    def opened(kind, message) -> None:
        if kind == CMD_STATUS:
            raise _refused(path, *_status(message))
        if kind != CMD_HANDLE:
            raise OSError(f"{path}: expected a handle")
        state["handle"] = message.get_binary()
        wave()

    def named(kind, message) -> None:
        state["asked"] -= 1
        if state["ended"]:
            return  # a READDIR past the end: whatever a server answers to it is of no account
        if kind == CMD_STATUS:
            code, text = _status(message)
            if code != SFTP_EOF:
                raise _refused(path, code, text)
            state["ended"] = True
        elif kind == CMD_NAME:
            for _ in range(message.get_int()):
                name, long_name = message.get_text(), message.get_text()
                attributes = SFTPAttributes._from_msg(message, name, long_name)
                if name not in (".", ".."):
                    entries.append(attributes)
        else:
            raise OSError(f"{path}: expected names")
        if not state["asked"] and not state["ended"]:
            wave()

    pipeline.ask(CMD_OPENDIR, path, then=opened)
    try:
        pipeline.run()
    except BaseException:
        if state["handle"] is not None:
            pipeline.abandon([state["handle"]])
        raise
    pipeline.close_unwaited([state["handle"]])
    return entries
