"""A TCP proxy on loopback that adds a fixed one-way delay in each direction, for benchmarks.

    with DelayProxy("127.0.0.1", server_port, delay=0.005) as proxy:  # 5 ms each way: 10 ms RTT
        connect to ("127.0.0.1", proxy.port)

    .venv/bin/python -m bench.delay_proxy TARGET_PORT [--delay-ms 5] [--port 0]

Each chunk read from one side is stamped with the time it arrived and written to the other side
when `delay` has passed since then (chunks that are due together go out in one write). With `rate`
(bytes per second), each direction is also a link of that bandwidth, shared by every connection
through the proxy: a chunk leaves only once the link has carried it and the ones before it, so
that a stream through it, however large its window, reaches the rate and no more. Per connection and
direction one thread reads and one writes; time.sleep (clock_nanosleep) keeps the delay to within a
fraction of a millisecond, which asyncio's millisecond timers would not. Memory is bounded: a
direction stops reading while `max_buffered` bytes wait to be forwarded (16 MiB: far above what a
10 ms delay needs at loopback speeds). A half-close is forwarded after the delay too. `stop()`
closes the listener and every connection and joins every thread.

What it does not model: loss, reordering, or TCP's own behaviour over a long link (slow start,
Nagle against a real RTT): the endpoints talk TCP to the proxy over loopback.
"""

import argparse
import contextlib
import signal
import socket
import sys
import threading
import time
from collections import deque

CHUNK = 256 * 1024
MAX_BUFFERED = 16 * 1024 * 1024
ACCEPT_POLL = 0.1  # seconds: how soon the accept loop notices stop()


class _Link:
    """One direction's bandwidth: each chunk takes its size / rate of the link's time."""

    def __init__(self, rate: float | None):
        self.rate = rate
        self.free_at = 0.0
        self.lock = threading.Lock()

    def carried(self, size: int, handed: float) -> float:
        """The moment a chunk of `size` bytes handed to the link at `handed` is through it: it
        starts once the ones before it have gone, and takes its own size / rate after that. The
        chunk counts from when it was due, not from when this thread got to it, so that a late
        wake-up does not leave the link idle."""
        with self.lock:
            self.free_at = max(self.free_at, handed) + size / self.rate
            return self.free_at


class _Direction:
    """Bytes from `source` to `target`, each chunk held until `delay` after it arrived, and
    until `link` has carried it."""

    def __init__(
        self, source: socket.socket, target: socket.socket, delay: float, limit: int, link: _Link
    ):
        self.source, self.target, self.delay, self.limit = source, target, delay, limit
        self.link = link
        self.chunks: deque[tuple[float, bytes | None]] = deque()  # (due, data); None: EOF
        self.buffered = 0
        self.stopping = False
        self.condition = threading.Condition()

    def read(self) -> None:
        try:
            while True:
                data = self.source.recv(CHUNK)
                due = time.monotonic() + self.delay
                with self.condition:
                    while self.buffered >= self.limit and not self.stopping:
                        self.condition.wait()
                    if self.stopping:
                        return
                    self.chunks.append((due, data or None))
                    self.buffered += len(data)
                    self.condition.notify_all()
                if not data:
                    return
        except OSError:
            self.stop()

    def write(self) -> None:
        try:
            while True:
                with self.condition:
                    while not self.chunks and not self.stopping:
                        self.condition.wait()
                    if self.stopping:
                        return
                    due = self.chunks[0][0]
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                with self.condition:
                    if self.stopping:
                        return
                    now, pieces, end = time.monotonic(), [], False
                    while self.chunks and self.chunks[0][0] <= now:
                        due, data = self.chunks.popleft()
                        if data is None:
                            end = True
                            break
                        pieces.append((due, data))
                        self.buffered -= len(data)
                    self.condition.notify_all()
                if pieces and self.link.rate is not None:
                    for due, piece in pieces:
                        wait = self.link.carried(len(piece), due) - time.monotonic()
                        if wait > 0:
                            time.sleep(wait)
                        self.target.sendall(piece)
                elif pieces:
                    self.target.sendall(b"".join(piece for _due, piece in pieces))
                if end:
                    self.target.shutdown(socket.SHUT_WR)
                    return
        except OSError:
            self.stop()

    def stop(self) -> None:
        with self.condition:
            self.stopping = True
            self.condition.notify_all()
        for sock in (self.source, self.target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Connection:
    def __init__(
        self,
        client: socket.socket,
        upstream: socket.socket,
        delay: float,
        limit: int,
        links: tuple[_Link, _Link],
    ):
        self.sockets = (client, upstream)
        self.directions = (
            _Direction(client, upstream, delay, limit, links[0]),
            _Direction(upstream, client, delay, limit, links[1]),
        )
        self.threads = [
            threading.Thread(target=work, name=f"delay-proxy-{work.__name__}", daemon=True)
            for direction in self.directions
            for work in (direction.read, direction.write)
        ]
        for thread in self.threads:
            thread.start()

    def finished(self) -> bool:
        return not any(thread.is_alive() for thread in self.threads)

    def stop(self, timeout: float) -> None:
        for direction in self.directions:
            direction.stop()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.close()

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


class DelayProxy:
    """Listens on `host`:`port` (0: a free port, see `.port`) and forwards to the target."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        delay: float,
        host: str = "127.0.0.1",
        port: int = 0,
        max_buffered: int = MAX_BUFFERED,
        rate: float | None = None,
    ):
        if delay < 0:
            raise ValueError("delay must not be negative")
        self.target = (target_host, target_port)
        self.delay = delay
        self.max_buffered = max_buffered
        self.links = (_Link(rate), _Link(rate))  # towards the target, and back
        self._listener = socket.create_server((host, port))
        self._listener.settimeout(ACCEPT_POLL)
        self.host, self.port = self._listener.getsockname()[:2]
        self._connections: list[_Connection] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="delay-proxy-accept", daemon=True)
        self._thread.start()

    @property
    def connections(self) -> int:
        """Connections still open."""
        with self._lock:
            return sum(not connection.finished() for connection in self._connections)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._stopping.is_set():
                    client.close()
                    upstream.close()
                    return
                for done in [c for c in self._connections if c.finished()]:
                    done.close()
                    self._connections.remove(done)
                self._connections.append(
                    _Connection(client, upstream, self.delay, self.max_buffered, self.links)
                )

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._thread.join(timeout)
        self._listener.close()
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.stop(timeout)

    def __enter__(self) -> "DelayProxy":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def measure_round_trip(delay: float, count: int = 20) -> list[float]:
    """Seconds per 1-byte ping through a fresh proxy with `delay` to a throwaway echo server."""
    listener = socket.create_server(("127.0.0.1", 0))

    def echo() -> None:
        with contextlib.suppress(OSError):
            conn, _address = listener.accept()
            with conn:
                while data := conn.recv(CHUNK):
                    conn.sendall(data)

    server = threading.Thread(target=echo, name="delay-proxy-echo", daemon=True)
    server.start()
    times = []
    try:
        with (
            DelayProxy("127.0.0.1", listener.getsockname()[1], delay=delay) as proxy,
            socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock,
        ):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(count):
                started = time.perf_counter()
                sock.sendall(b"x")
                if sock.recv(1) != b"x":
                    raise RuntimeError("the echo through the delay proxy failed")
                times.append(time.perf_counter() - started)
    finally:
        listener.close()
        server.join(5)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target_port", type=int)
    parser.add_argument("--target-host", default="127.0.0.1")
    parser.add_argument("--delay-ms", type=float, default=5.0, help="one way (default 5)")
    parser.add_argument("--port", type=int, default=0, help="listen port (default: a free one)")
    arguments = parser.parse_args(argv)
    proxy = DelayProxy(
        arguments.target_host, arguments.target_port, delay=arguments.delay_ms / 1000
    )
    print(
        f"127.0.0.1:{proxy.port} -> {arguments.target_host}:{arguments.target_port}, "
        f"{arguments.delay_ms:g} ms each way; Ctrl-C stops",
        flush=True,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with contextlib.suppress(KeyboardInterrupt):
        stopped.wait()
    proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
