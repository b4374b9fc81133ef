"""A TCP proxy on loopback that breaks connections on purpose, for tests of network faults.

    with FaultProxy(server_port, plan=RandomFaults(mean_bytes=150_000, seed=1)) as proxy:
        connect to ("127.0.0.1", proxy.port)
        proxy.faults        # what it did: [Fault(connection, kind, after), ...]
        proxy.offsets       # {connection: [where each forwarded piece ended, ...]}

Each accepted connection gets a `Fate` from `plan(number)`: forwarded untouched, or, once
`after` bytes have passed (both directions counted together):
- "cut": both sockets are closed at once with a reset, mid-stream, whatever is in flight;
- "stall": nothing more is forwarded either way, the bytes are swallowed (a black hole), and the
  sockets stay open; when the client gives up and closes, the server's side is closed `linger`
  seconds later, the time a server takes to notice a dead peer.

`RandomFaults` draws `after` from an exponential distribution, so a connection reused for many
files meets a fault on average every `mean_bytes`, at a random offset in whatever it carries.
bench/delay_proxy.py is the model; this one is for tests only and keeps no delay.
"""

import contextlib
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass

CHUNK = 64 * 1024
POLL = 0.1  # seconds: how soon the accept loop notices stop()


@dataclass(frozen=True)
class Fate:
    kind: str = "pass"  # "pass", "cut" or "stall"
    after: int = 0  # bytes forwarded (both directions) before the fault


@dataclass(frozen=True)
class Fault:
    connection: int
    kind: str
    after: int
    at: float  # time.monotonic()


class RandomFaults:
    """Every connection meets a fault after an exponentially distributed number of bytes with
    mean `mean_bytes`; `stall_share` of the faults are stalls, the rest cuts."""

    def __init__(self, mean_bytes: int, stall_share: float = 0.3, seed: int | None = None):
        self.mean_bytes, self.stall_share = mean_bytes, stall_share
        self._random = random.Random(seed)  # noqa: S311 - test data, not secrets
        self._lock = threading.Lock()

    def __call__(self, number: int) -> Fate:
        with self._lock:
            after = int(self._random.expovariate(1 / self.mean_bytes))
            kind = "stall" if self._random.random() < self.stall_share else "cut"
        return Fate(kind, after)


class _Link:
    """One proxied connection: two pumps (blocking sockets), one byte count, one fate."""

    def __init__(self, proxy: "FaultProxy", number: int, client, upstream, fate: Fate):
        self.proxy, self.number, self.fate = proxy, number, fate
        self.client, self.upstream = client, upstream
        self.forwarded = 0
        self.offsets = proxy.offsets.setdefault(number, [])  # where each forwarded piece ended
        self.stalled = False
        # The fate has struck: nothing more passes either way. Decided once, so that the two
        # pumps cannot both strike (and count the fault twice) before a cut closes the link.
        self.faulted = False
        self.closed = threading.Event()
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._pump, args=pair, name="fault-proxy", daemon=True)
            for pair in ((client, upstream), (upstream, client))
        ]
        for thread in self.threads:
            thread.start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        while True:
            try:
                data = source.recv(CHUNK)
            except OSError:
                data = b""
            if not data:  # this side has gone (or the link was closed)
                with self.lock:
                    client_gave_up = self.stalled and source is self.client
                if client_gave_up and not self.closed.is_set():
                    # The server notices a dead peer only after a while.
                    timer = threading.Timer(self.proxy.linger, self.close)
                    timer.daemon = True
                    timer.start()
                else:
                    self.close()
                return
            # Decided under the lock, sent outside it: a pump blocked in sendall must never
            # keep the other direction from reading.
            with self.lock:
                if self.faulted:
                    continue  # swallowed
                fault = self.fate.kind != "pass" and self.forwarded + len(data) > self.fate.after
                if fault:
                    data = data[: max(self.fate.after - self.forwarded, 0)]
                    self.faulted = True
                    self.stalled = self.fate.kind == "stall"
                self.forwarded += len(data)
                if data:
                    self.offsets.append(self.forwarded)
            try:
                if data:
                    target.sendall(data)
            except OSError:
                self.close()
                return
            if fault:
                self.proxy._record(self.number, self.fate.kind, self.fate.after)
                if self.fate.kind == "cut":
                    self.close(reset=True)
                    return

    def close(self, reset: bool = False) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                # SHUT_RD wakes the other pump's recv and sends nothing; then a reset (SO_LINGER
                # on, zero seconds, and close), or an orderly end.
                sock.shutdown(socket.SHUT_RD if reset else socket.SHUT_RDWR)
                if reset:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()

    def join(self, timeout: float) -> None:
        for thread in self.threads:
            thread.join(timeout)


class FaultProxy:
    """Listens on 127.0.0.1 (a free port, `.port`) and forwards to the target with faults."""

    def __init__(
        self,
        target_port: int,
        *,
        plan=lambda number: Fate(),
        linger: float = 1.0,
        target_host: str = "127.0.0.1",
    ):
        self.target = (target_host, target_port)
        self.plan, self.linger = plan, linger
        self.faults: list[Fault] = []
        # By connection: the byte offsets at which forwarded pieces ended (with TCP_NODELAY on
        # both ends, mostly the ends of SSH packets): where a fault may be placed on purpose.
        self.offsets: dict[int, list[int]] = {}
        self.connections = 0
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(POLL)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="fault-proxy-accept", daemon=True)
        self._thread.start()

    def _record(self, connection: int, kind: str, after: int) -> None:
        with self._lock:
            self.faults.append(Fault(connection, kind, after, time.monotonic()))

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
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(None)
            with self._lock:
                self.connections += 1
                number = self.connections
                self._links = [link for link in self._links if not link.closed.is_set()]
                self._links.append(_Link(self, number, client, upstream, self.plan(number)))

    def cut(self, number: int) -> None:
        """Reset connection `number` now, wherever it has got to: for a test that places the
        cut by what the other connections are doing rather than at a byte offset."""
        with self._lock:
            link = next(link for link in self._links if link.number == number)
        with link.lock:
            link.faulted = True
            after = link.forwarded
        self._record(number, "cut", after)
        link.close(reset=True)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._thread.join(timeout)
        self._listener.close()
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            link.close()
            link.join(timeout)

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
