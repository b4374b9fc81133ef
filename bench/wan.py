"""A large file up and down over a long, fast link: the portal's session against OpenSSH `sftp`.

    .venv/bin/python -m bench.wan [--size-mib 1024] [--rtt-ms 40] [--rate-mb 100] [--runs 1]

This kernel has no netem, so the link is bench/delay_proxy.py in user space, in front of a real
sshd (tests/support/sshd.py): `--rtt-ms` of round trip (half each way) and `--rate-mb` MB/s in
each direction, shared by every connection through it. Its bandwidth-delay product (100 MB/s
over 40 ms: 4 MB) is well above the 2 MiB an OpenSSH channel keeps in flight by default, so what
decides the rate is how much each client keeps in flight, as on the portal's real link to
Serviceplatformen, tens of milliseconds away. First a raw TCP stream each way through the proxy,
to show that it reaches the cap (the proxy is not the limit); then per run an upload and a
download with each client, a fresh process each, the file checked by SHA-256, who goes first
alternating by run (bench.throughput's `measure`). Floor: the session at least 1.0x OpenSSH in
both directions. See bench/README.md.
"""

import argparse
import dataclasses
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import ROOT, Row, machine, now, print_rows, save
from bench.delay_proxy import DelayProxy, measure_round_trip
from bench.throughput import MB, make_file, measure, sshd_target

BENCHMARK = "wan"
RAW_BYTES = 256 * 1024 * 1024
RAW_CHUNK = 1024 * 1024
FLOOR = 1.0
RAW_SHARE = 0.95  # of the cap, for a raw TCP stream
# What the link may queue beyond what is on its way: a router's buffer, not a bottomless one.
QUEUE_BYTES = 1024 * 1024


def raw_stream(delay: float, rate: float, limit: int, direction: str) -> float:
    """MB/s of one TCP stream of RAW_BYTES over a link like the one measured, "up" (towards the
    server) or "down", to and from a sink here."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _address = server.accept()
        with connection:
            if direction == "up":
                while connection.recv(RAW_CHUNK):
                    pass
                connection.sendall(b"!")  # everything arrived
            else:
                block = b"\0" * RAW_CHUNK
                for _ in range(RAW_BYTES // RAW_CHUNK):
                    connection.sendall(block)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    target = server.getsockname()[1]
    try:
        with (
            DelayProxy("127.0.0.1", target, delay=delay, rate=rate, max_buffered=limit) as link,
            socket.create_connection(("127.0.0.1", link.port), timeout=120) as stream,
        ):
            started = time.perf_counter()
            if direction == "up":
                block = b"\0" * RAW_CHUNK
                for _ in range(RAW_BYTES // RAW_CHUNK):
                    stream.sendall(block)
                stream.shutdown(socket.SHUT_WR)
                if stream.recv(1) != b"!":
                    raise RuntimeError("the raw stream did not arrive whole")
            else:
                received = 0
                while data := stream.recv(RAW_CHUNK):
                    received += len(data)
                if received != RAW_BYTES:
                    raise RuntimeError(f"the raw stream brought {received} bytes, not {RAW_BYTES}")
            return RAW_BYTES / (time.perf_counter() - started) / MB
    finally:
        thread.join(60)
        server.close()


def in_flight() -> dict:
    """What each client keeps in flight, by its settings: the reason for its rate."""
    import paramiko.common

    from transfers import sftp

    return {
        "session": {
            "channel_window_bytes": paramiko.common.DEFAULT_WINDOW_SIZE,
            "read_request_bytes": sftp.LARGE_REQUEST,
            "reads_in_flight_per_connection": sftp.READS_IN_FLIGHT,
            "download_connections": sftp.DOWNLOAD_STREAMS,
            "write_request_bytes": sftp.LARGE_REQUEST,
            "writes_in_flight_per_connection": sftp.WRITES_IN_FLIGHT,
            "upload_connections": sftp.UPLOAD_STREAMS,
            "connections_from_bytes": sftp.STREAMS_FROM,
            "download_connections_from_round_trip_s": sftp.STREAMS_FROM_ROUND_TRIP,
        },
        # sftp(1)'s defaults (-R 64, -B 32768) and OpenSSH's channel window (2 MiB).
        "openssh": {
            "channel_window_bytes": 2 * 1024 * 1024,
            "request_bytes": 32 * 1024,
            "requests_in_flight": 64,
        },
    }


def benchmark(size_mib: int, runs: int, rtt_ms: float, rate_mb: float) -> dict:
    sys.path.insert(0, str(ROOT))
    delay, rate = rtt_ms / 2000, rate_mb * MB
    report = {
        "date": now(),
        "settings": {"size_mib": size_mib, "runs": runs, "rtt_ms": rtt_ms, "rate_mb_s": rate_mb},
        "bandwidth_delay_product_bytes": int(rate * rtt_ms / 1000),
        "in_flight": in_flight(),
    }
    report["round_trip_ms"] = statistics.median(measure_round_trip(delay)) * 1000
    work = Path(tempfile.mkdtemp(prefix="fdd-bench-wan-"))
    try:
        source = work / "source.bin"
        print(f"Writing a {size_mib} MiB random file in {work} ...", flush=True)
        source_sha = make_file(source, size_mib)
        # The link holds what is on its way (rate x one-way delay) and a router's queue.
        limit = int(rate * delay) + QUEUE_BYTES
        report["raw_tcp_mb_s"] = {
            direction: raw_stream(delay, rate, limit, direction) for direction in ("up", "down")
        }
        print(f"  raw TCP through the link: {report['raw_tcp_mb_s']} MB/s", flush=True)
        with (
            sshd_target(None) as target,
            DelayProxy(
                "127.0.0.1", target.port, delay=delay, rate=rate, max_buffered=limit
            ) as proxy,
        ):
            over_wan = dataclasses.replace(target, name="sshd", port=proxy.port)
            rows = measure(over_wan, work, source, source_sha, runs)
        report["runs"] = rows
        report["summary"] = {
            key: statistics.median(row[key]["mb_per_s"] for row in rows) for key in rows[0]
        }
    finally:
        for path in work.iterdir():
            path.unlink()
        work.rmdir()
    return report


def rows(report: dict) -> list[Row]:
    summary, settings = report["summary"], report["settings"]
    link = f"{settings['rtt_ms']:g} ms RTT, {settings['rate_mb_s']:g} MB/s"
    size = f"{settings['size_mib']} MiB"
    # The proxy is not the limit: a raw stream reaches the cap, within what timing costs.
    reached = RAW_SHARE * settings["rate_mb_s"]
    out = [
        Row(
            BENCHMARK,
            f"{link}: raw TCP {direction}",
            report["raw_tcp_mb_s"][direction],
            "MB/s",
            f">= {reached:g}",
            report["raw_tcp_mb_s"][direction] >= reached,
        )
        for direction in ("up", "down")
    ]
    for direction in ("upload", "download"):
        session, openssh = summary[f"session_{direction}"], summary[f"openssh_{direction}"]
        out += [
            Row(BENCHMARK, f"{link}: {size} {direction}, SftpSession", session, "MB/s"),
            Row(BENCHMARK, f"{link}: {size} {direction}, OpenSSH sftp", openssh, "MB/s"),
            Row(
                BENCHMARK,
                f"{link}: {size} {direction}, SftpSession / OpenSSH",
                session / openssh,
                "ratio",
                f">= {FLOOR:.2f}",
                session / openssh >= FLOOR,
            ),
        ]
    return out


def measured(size_mib: int, runs: int, rtt_ms: float, rate_mb: float) -> dict:
    """The benchmark's report with the machine it ran on and its rows."""
    info = machine()
    report = benchmark(size_mib, runs, rtt_ms, rate_mb)
    info["load_average_after"] = os.getloadavg()
    report["machine"] = info
    report["rows"] = [row.as_dict() for row in rows(report)]
    return report


def run(quick: bool = False) -> dict:
    """1 GiB, one run; quick: 64 MiB."""
    return measured(64 if quick else 1024, 1, 40.0, 100.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--rtt-ms", type=float, default=40.0)
    parser.add_argument("--rate-mb", type=float, default=100.0, help="MB/s each way (100)")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    arguments = parser.parse_args(argv)
    report = measured(arguments.size_mib, arguments.runs, arguments.rtt_ms, arguments.rate_mb)
    print()
    print_rows(report["rows"])
    print(json.dumps(report["in_flight"], indent=1))
    if not arguments.no_save:
        print(f"\nwrote {save(BENCHMARK, report).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
