"""Many small transfers over a 10 ms round trip: the portal's workers against OpenSSH's `sftp -b`.

    .venv/bin/python -m bench.many_files [--files 98] [--size-kib 100] [--runs 3] [--rtt-ms 10]

Starts a real sshd (tests/support/sshd.py) and a delay proxy in front of it (bench/delay_proxy.py,
half the round trip each way), writes `--files` random files, then per run, in rotating order:
- OpenSSH: one `sftp -b` process uploading every file in one batch (`put DIR/* ref/`, defaults);
  the wall time of the whole process (start, connect, authenticate, upload, exit);
- the portal: the same files sent as the workers send them, each file to `OUT/<name>` with
  SftpSession.put_file, then its trigger (transfers.protocol.build_trigger) with put_bytes to
  `OUT/<name>.trigger`, by 1, 2 and 4 worker processes (the default cluster has Q_WORKERS = 2),
  each with one session reused for its share of the files (round robin). Wall time from the
  moment the ready workers are told to go (imports done, not yet connected) until the last one
  has closed its session: connect, authenticate, every transfer, close.
Then the same on plain loopback (no proxy), as files per second. Every upload is checked
(SHA-256 of each data file on the server; every trigger parses, names its file with its size, and
was written after its data file). Prints a table and writes bench/results/many-files-<date>.json.
See bench/README.md.
"""

import argparse
import dataclasses
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import ROOT, Row, allow_sftp_to, machine, now, save
from bench.delay_proxy import DelayProxy, measure_round_trip
from bench.throughput import file_sha256, openssh_cipher, run_openssh

SESSIONS = (1, 2, 4)
DEFAULT_WORKERS = 2  # Q_WORKERS in portal/settings.py
OUT = "OUT"
REFERENCE = "ref"
USERNAME = "fddbench"
AUTHORITY_CVR = "29189846"


# -- the portal side: one worker process -------------------------------------------------------


def trigger_for(name: str, size: int) -> bytes:
    """A trigger like transfers.tasks._trigger writes (route-based, fresh ids, timestamp now)."""
    from transfers import protocol

    return protocol.build_trigger(
        protocol.Trigger(
            descriptor=protocol.FileDescriptor(
                file_name=name,
                size=size,
                sender=USERNAME,
                recipients=(protocol.ROUTING_RECIPIENT,),
                senders_file_id=str(uuid.uuid4()),
            ),
            routing=protocol.RoutingInfo(
                infref="INFREF000123",
                sender_it_system=uuid.UUID("3c5d3b1e-8f4a-4f5e-9a43-2b8d1c0e7f61"),
                sender_authority_cvr=AUTHORITY_CVR,
                transaction_id=uuid.uuid4(),
                sender_timestamp=datetime.datetime.now(datetime.UTC),
                recipient_authority_cvr=AUTHORITY_CVR,
                recipient_it_system=uuid.UUID("9b2f6a70-1d3e-4c8b-8e5a-6f0c2d4b7a19"),
            ),
        )
    )


def child(spec: dict) -> dict:
    """A worker: ready after imports, then on "go": connect, send its files, close."""
    sys.path.insert(0, str(ROOT))
    allow_sftp_to(spec["host"], spec["port"])
    from transfers.sftp import SftpSession

    trigger_for("warm-up.csv", 1)  # loads and compiles the XSD, as a running worker has done
    session = SftpSession(
        host=spec["host"],
        port=spec["port"],
        username=spec["username"],
        private_key=Path(spec["key"]).read_bytes(),
        host_key=spec["host_key"],
    )
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("not told to go")
    started = time.monotonic()
    session.connect()
    connected = time.monotonic()
    sent = []
    for local in spec["files"]:
        name = Path(local).name
        size, digest = session.put_file(local, f"{OUT}/{name}")
        session.put_bytes(trigger_for(name, size), f"{OUT}/{name}.trigger")
        sent.append({"name": name, "size": size, "sha256": digest})
    session.close()
    return {
        "started": started,
        "connect_seconds": connected - started,
        "finished": time.monotonic(),
        "sent": sent,
    }


def run_portal(server, files: list[Path], sessions: int) -> dict:
    """`sessions` worker processes, files dealt round robin; wall time from "go" to the last."""
    workers = []
    for number in range(sessions):
        spec = {
            "host": server.host,
            "port": server.port,
            "username": server.username,
            "key": str(server.private_key_path),
            "host_key": server.host_key,
            "files": [str(path) for path in files[number::sessions]],
        }
        workers.append(
            subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "bench.many_files", "--child", json.dumps(spec)],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        for worker in workers:
            if worker.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a worker did not start:\n{worker.stderr.read()}")
        go = time.monotonic()
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        results = []
        for worker in workers:
            output, error = worker.communicate(timeout=300)
            if worker.returncode != 0:
                raise RuntimeError(f"a worker failed:\n{error}")
            results.append(json.loads(output))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    return {
        "seconds": max(result["finished"] for result in results) - go,
        "connect_seconds": max(result["connect_seconds"] for result in results),
        "sent": [item for result in results for item in result["sent"]],
    }


# -- checks ------------------------------------------------------------------------------------


def check_portal(server, sent: list[dict], expected: dict[str, str], size: int) -> None:
    """Every data file is on the server intact; its trigger parses, matches and came after it."""
    from transfers import protocol

    if sorted(item["name"] for item in sent) != sorted(expected):
        raise RuntimeError("the workers did not send exactly the files given")
    out = server.root / OUT
    for name, digest in expected.items():
        data, trigger = out / name, out / f"{name}.trigger"
        if file_sha256(data) != digest:
            raise RuntimeError(f"{name}: the uploaded file differs")
        parsed = protocol.parse_trigger(trigger.read_bytes())
        if (parsed.descriptor.file_name, parsed.descriptor.size) != (name, size):
            raise RuntimeError(f"{name}: the trigger names {parsed.descriptor}")
        if data.stat().st_mtime_ns > trigger.stat().st_mtime_ns:
            raise RuntimeError(f"{name}: the data file was written after its trigger")
    if len(list(out.iterdir())) != 2 * len(expected):
        raise RuntimeError("unexpected files in OUT")


def check_reference(server, expected: dict[str, str]) -> None:
    ref = server.root / REFERENCE
    if sorted(path.name for path in ref.iterdir()) != sorted(expected):
        raise RuntimeError("sftp did not upload exactly the files given")
    for name, digest in expected.items():
        if file_sha256(ref / name) != digest:
            raise RuntimeError(f"{name}: sftp's upload differs")


def empty(directory: Path) -> None:
    for path in directory.iterdir():
        path.unlink()


# -- the benchmark ------------------------------------------------------------------------------


def measure(link: str, server, via, source: Path, files: list[Path], expected, size, runs):
    """Interleaved runs of OpenSSH and the portal at each session count, through `via`."""
    variants = ["openssh", *(f"portal_{count}" for count in SESSIONS)]
    rows = []
    for run in range(runs):
        order = variants[run % len(variants) :] + variants[: run % len(variants)]
        row = {}
        for variant in order:
            if variant == "openssh":
                result = run_openssh(via, f"put {source}/* {REFERENCE}/\n")
                check_reference(server, expected)
                empty(server.root / REFERENCE)
            else:
                result = run_portal(via, files, int(variant.split("_")[1]))
                check_portal(server, result.pop("sent"), expected, size)
                empty(server.root / OUT)
            result["files_per_s"] = len(files) / result["seconds"]
            row[variant] = result
            print(
                f"  {link:9} run {run + 1} {variant:9} {result['seconds']:6.2f} s "
                f"{result['files_per_s']:7.1f} files/s",
                flush=True,
            )
        rows.append(row)
    return rows


def summarise(rows: list[dict], files: int) -> dict:
    openssh = statistics.median(row["openssh"]["seconds"] for row in rows)
    summary = {
        "openssh": {
            "seconds": round(openssh, 3),
            "files_per_s": round(files / openssh, 1),
            "ms_per_file": round(openssh / files * 1000, 1),
        }
    }
    for count in SESSIONS:
        seconds = statistics.median(row[f"portal_{count}"]["seconds"] for row in rows)
        summary[f"portal_{count}"] = {
            "sessions": count,
            "seconds": round(seconds, 3),
            "files_per_s": round(files / seconds, 1),
            "ms_per_file": round(seconds / files * 1000, 1),
            "connect_seconds": round(
                statistics.median(row[f"portal_{count}"]["connect_seconds"] for row in rows), 3
            ),
            "ratio": round(seconds / openssh, 3),  # portal time / OpenSSH time: <= 1 is the floor
        }
    return summary


def benchmark(count: int, size_kib: int, runs: int, rtt_ms: float, base: str | None) -> dict:
    from tests.support.sshd import running_sshd

    size = size_kib * 1024
    delay = rtt_ms / 2000
    rtt = measure_round_trip(delay)
    report = {
        "date": now(),
        "machine": machine(),
        "settings": {
            "files": count,
            "size_bytes": size,
            "runs": runs,
            "sessions": list(SESSIONS),
            "default_workers": DEFAULT_WORKERS,
            "rtt_ms": rtt_ms,
            "one_way_delay_ms": delay * 1000,
            "measured_rtt_ms": {
                "min": round(min(rtt) * 1000, 2),
                "median": round(statistics.median(rtt) * 1000, 2),
            },
            "openssh_batch": f"put DIR/* {REFERENCE}/",
            "dir": base or tempfile.gettempdir(),
        },
    }
    with running_sshd(base) as server, tempfile.TemporaryDirectory(dir=base) as temp:
        source = Path(temp) / "files"
        source.mkdir()
        files, expected = [], {}
        for _ in range(count):
            path = source / f"{USERNAME}_FDD_{uuid.uuid4()}.csv"
            data = os.urandom(size)
            path.write_bytes(data)
            files.append(path)
            expected[path.name] = file_sha256(path)
        files.sort()
        for directory in (OUT, REFERENCE):
            (server.root / directory).mkdir()
        report["settings"]["openssh_cipher"] = openssh_cipher(server)
        print(
            f"{count} files of {size_kib} KiB; round trip through the proxy "
            f"{report['settings']['measured_rtt_ms']['median']} ms (median)",
            flush=True,
        )
        with DelayProxy(server.host, server.port, delay=delay) as proxy:
            via = dataclasses.replace(server, port=proxy.port)
            delayed = measure("delay", server, via, source, files, expected, size, runs)
        loopback = measure("loopback", server, server, source, files, expected, size, runs)
    report["runs"] = {"delay": delayed, "loopback": loopback}
    report["summary"] = {"delay": summarise(delayed, count), "loopback": summarise(loopback, count)}
    floor = report["summary"]["delay"][f"portal_{DEFAULT_WORKERS}"]
    report["summary"]["floor"] = {
        "statement": (
            f"at {rtt_ms:g} ms RTT, {count} transfers (data file + trigger) by "
            f"{DEFAULT_WORKERS} workers take no longer than OpenSSH sftp uploading the "
            f"{count} data files in one batch"
        ),
        "ratio": floor["ratio"],
        "holds": floor["ratio"] <= 1.0,
    }
    report["machine"]["load_average_after"] = os.getloadavg()
    report["rows"] = [row.as_dict() for row in rows_of(report)]
    return report


def rows_of(report: dict) -> list[Row]:
    summary = report["summary"]
    rtt = report["settings"]["rtt_ms"]
    count = report["settings"]["files"]
    workers = f"portal_{DEFAULT_WORKERS}"
    return [
        Row(
            "many-files",
            f"{count} sends at {rtt:g} ms RTT, {DEFAULT_WORKERS} workers / OpenSSH batch",
            summary["floor"]["ratio"],
            "ratio",
            "<= 1.00",
            summary["floor"]["holds"],
        ),
        Row(
            "many-files",
            f"{count} sends at {rtt:g} ms RTT, {DEFAULT_WORKERS} workers",
            summary["delay"][workers]["seconds"],
            "s",
        ),
        Row(
            "many-files",
            f"{count} sends on loopback, {DEFAULT_WORKERS} workers",
            summary["loopback"][workers]["files_per_s"],
            "files/s",
        ),
    ]


def run(quick: bool = False) -> dict:
    return benchmark(98, 100, 1 if quick else 3, 10.0, None)


def print_report(report: dict) -> None:
    settings, summary = report["settings"], report["summary"]
    print()
    print(
        f"{settings['files']} files of {settings['size_bytes'] // 1024} KiB, "
        f"{settings['runs']} runs interleaved, medians. OpenSSH: one `sftp -b` "
        f"({settings['openssh_cipher']}) uploading the data files alone; portal: data file + "
        f"trigger each, N worker processes with one SftpSession each."
    )
    print(
        f"Delay proxy: {settings['one_way_delay_ms']:g} ms each way, measured round trip "
        f"{settings['measured_rtt_ms']['median']} ms. ratio = portal time / OpenSSH time "
        "(<= 1.00: no slower)."
    )
    print()
    print(
        f"{'client':22} {'10 ms RTT: s':>12} {'ms/file':>8} {'ratio':>6}   "
        f"{'loopback: s':>11} {'files/s':>8} {'ratio':>6}"
    )
    for key in ("openssh", *(f"portal_{count}" for count in SESSIONS)):
        delayed, loop = summary["delay"][key], summary["loopback"][key]
        label = "OpenSSH sftp -b" if key == "openssh" else f"portal, {key[7:]} worker(s)"
        ratios = (
            ("", "") if key == "openssh" else (f"{delayed['ratio']:6.2f}", f"{loop['ratio']:6.2f}")
        )
        print(
            f"{label:22} {delayed['seconds']:12.2f} {delayed['ms_per_file']:8.1f} "
            f"{ratios[0]:>6}   {loop['seconds']:11.2f} {loop['files_per_s']:8.0f} {ratios[1]:>6}"
        )
    floor = summary["floor"]
    print()
    print(
        f"Floor ({floor['statement']}): ratio {floor['ratio']:.2f} -> "
        + ("HOLDS" if floor["holds"] else "MISSED")
    )
    load = report["machine"]
    print(
        f"load average before {load['load_average_before'][0]:.2f}, "
        f"after {load['load_average_after'][0]:.2f} (high: noisy figures)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=98)
    parser.add_argument("--size-kib", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rtt-ms", type=float, default=10.0, help="added round trip (10)")
    parser.add_argument(
        "--dir", default=None, help="where sshd and the files live (default: TMPDIR)"
    )
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.child:
        print(json.dumps(child(json.loads(arguments.child))))
        return 0
    if not shutil.which("sftp"):
        print("OpenSSH's sftp is needed", file=sys.stderr)
        return 2
    report = benchmark(
        arguments.files, arguments.size_kib, arguments.runs, arguments.rtt_ms, arguments.dir
    )
    print_report(report)
    if not arguments.no_save:
        print(f"\nwrote {save('many-files', report).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
