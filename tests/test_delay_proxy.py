"""bench/delay_proxy.py: adds the delay in each direction, passes bytes intact, stops cleanly."""

import os
import socket
import statistics
import threading
import time

import pytest

from bench.delay_proxy import DelayProxy

pytestmark = pytest.mark.system


@pytest.fixture
def echo_port():
    """A loopback echo server (one thread per connection); yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stopping = threading.Event()

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def serve() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(10)
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stopping.set()
    thread.join()
    listener.close()


def _receive(sock: socket.socket, size: int) -> bytes:
    parts, left = [], size
    while left:
        data = sock.recv(min(left, 1 << 20))
        assert data, "connection closed early"
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


def test_round_trip_takes_twice_the_one_way_delay(echo_port):
    with (
        DelayProxy("127.0.0.1", echo_port, delay=0.005) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock,
    ):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        times = []
        for number in range(10):
            started = time.perf_counter()
            sock.sendall(bytes([number]))
            assert _receive(sock, 1) == bytes([number])
            times.append(time.perf_counter() - started)
    assert min(times) >= 0.010
    assert statistics.median(times) < 0.020  # a loaded machine may add a little, not a lot


def test_bytes_pass_intact_both_ways_and_stop_closes_connections(echo_port):
    payload = os.urandom(8 << 20)
    proxy = DelayProxy("127.0.0.1", echo_port, delay=0.002, max_buffered=1 << 20)
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
            sender = threading.Thread(target=sock.sendall, args=(payload,))
            sender.start()
            assert _receive(sock, len(payload)) == payload
            sender.join()
            sock.shutdown(socket.SHUT_WR)  # the half-close reaches the echo server, which ends
            assert sock.recv(1) == b""
        second = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        second.sendall(b"x")
        assert _receive(second, 1) == b"x"
    finally:
        started = time.monotonic()
        proxy.stop()
    assert time.monotonic() - started < 2
    assert not [t for t in threading.enumerate() if t.name.startswith("delay-proxy")]
    assert second.recv(1) == b""  # stop() closed the open connection
    second.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=1)


def test_a_rate_caps_the_link_and_is_shared_by_its_connections(echo_port):
    """Two connections at once over a link of 8 MB/s each way: 4 MiB echoed on each cannot take
    less than the 8 MiB the link carries in each direction need, and arrives intact."""
    rate, size = 8_000_000, 4 << 20
    payloads = [os.urandom(size), os.urandom(size)]
    echoed: list[bytes] = [b"", b""]
    with DelayProxy("127.0.0.1", echo_port, delay=0.001, rate=rate) as proxy:

        def stream(index: int) -> None:
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
                sender = threading.Thread(target=sock.sendall, args=(payloads[index],))
                sender.start()
                echoed[index] = _receive(sock, size)
                sender.join()

        started = time.monotonic()
        streams = [threading.Thread(target=stream, args=(i,)) for i in range(2)]
        for thread in streams:
            thread.start()
        for thread in streams:
            thread.join(60)
        elapsed = time.monotonic() - started
    assert echoed == payloads
    assert elapsed >= 2 * size / rate
