"""What the tests of a large file over two connections share (tests/test_download_streams.py,
tests/test_upload_streams.py): files whose misplaced pieces show, the second stream's threads,
faults on one connection of the proxy, and a progress callback that lets the second stream in."""

import hashlib
import os
import threading
import time
from pathlib import Path

from tests.support.fault_proxy import Fate, FaultProxy

MIB = 1 << 20


def write_file(path: Path, size: int) -> str:
    """`size` random bytes, no block repeated (a piece written at a wrong offset shows)."""
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        left = size
        while left:
            piece = os.urandom(min(left, MIB))
            digest.update(piece)
            out.write(piece)
            left -= len(piece)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def threads_named(name: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == name]


def carried(proxy: FaultProxy, connection: int) -> int:
    """Bytes the proxy forwarded on one connection, both directions."""
    offsets = proxy.offsets.get(connection, [])
    return offsets[-1] if offsets else 0


def fail_connection(number: int, kind: str, after: int):
    return lambda connection: Fate(kind, after) if connection == number else Fate()


def until(condition, deadline: float = 15.0) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, "waited in vain"
        time.sleep(0.01)


def second_stream_joins(condition, calls: list | None = None):
    """A progress callback that holds the session's own stream at its first progress until
    `condition()`: on loopback it could otherwise move the whole file before the second
    connection is up."""

    def progress(done: int) -> None:
        if calls is not None:
            calls.append(done)
        if not progress.waited:
            progress.waited = True
            until(condition)

    progress.waited = False
    return progress


def cut_the_first_while_both_carry(proxy: FaultProxy):
    """A progress callback that cuts the session's own connection (the proxy's first) once the
    second has carried a MiB, with the session's own requests in flight. At a fixed offset
    instead, the second connection, which takes pieces as fast as it can, could carry so much
    of the file that the first never got there."""

    def progress(_done: int) -> None:
        if not proxy.faults:
            until(lambda: carried(proxy, 2) > MIB)
            proxy.cut(1)

    return progress
