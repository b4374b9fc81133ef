"""A full inbox over a 10 ms round trip: the portal's fetch against OpenSSH's `sftp -b` get.

    .venv/bin/python -m bench.inbox [--files 98] [--size-kib 100] [--runs 3] [--rtt-ms 10]

A throwaway portal (SQLite in a temporary folder, migrated) with an integration ready for all 98
municipalities and the simulator (`manage.py serviceplatform`, the portal's database as
registry); no worker cluster. Per run and link, the receiving account's `IN/` is filled as the
platform fills it: the sending account uploads `--files` random files of `--size-kib` to `OUT/`
with SftpSession.put_file, each followed by its trigger (transfers.protocol.build_trigger, one
route per municipality) written with put_bytes, and the simulator routes every pair into the
receiver's `IN/<name>` + `IN/<name>.metadata` (the bench waits for every success receipt). Then,
in alternating order:
- OpenSSH: one `sftp -b` process as the receiving user (its key in a 0600 file, the simulator's
  host key pinned in a known_hosts file), `get IN/* DIR/`, defaults: the data files and their
  metadata, nothing removed. Wall time of the whole process; every file's SHA-256 is checked.
- the portal: `transfers.fetch.fetch_inbox(receiver)` in this process, with no cached session
  (connect and authenticate are inside the time, as they are for `sftp`): list, read and check
  each metadata, download and fsync each data file, record it, remove the pair. Wall time of
  the call; then every file is checked (a ReceivedFile in state received with the SHA-256 sent,
  the stored bytes the same) and `IN/` must be empty.
Links: through bench/delay_proxy.py (`--rtt-ms`; a process of its own, so its threads do not
share this process's interpreter lock with the fetch) and plain loopback. Floor: the portal's
fetch takes no longer than the OpenSSH get at 10 ms. Prints a table and writes
bench/results/inbox-<date>.json. See bench/README.md.
"""

import argparse
import contextlib
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from bench.common import ROOT, Row, machine, now, print_rows, save
from bench.end_to_end import (
    RECEIVER,
    SENDER,
    Integration,
    answered_inside,
    file_sha256,
    in_child,
    point_accounts_at,
    sending_integration,
    simulator,
    start_portal,
    throwaway_portal,
    wait_until,
)
from bench.throughput import SFTP

BENCHMARK = "inbox"
IN, OUT = "IN", "OUT"
# The name `sftp` looks the simulator's host key up under, whichever port it reaches it on.
HOST_ALIAS = "serviceplatform.bench"


# -- filling the inbox, as the platform does ----------------------------------------------------


def write_files(directory: Path, count: int, size: int) -> list[tuple[Path, str]]:
    """`count` random files of `size` bytes and their SHA-256, sent anew under fresh names each
    time the inbox is filled."""
    directory.mkdir(parents=True)
    files = []
    for number in range(count):
        path = directory / f"udtraek-{number:03d}.csv"
        path.write_bytes(os.urandom(size))
        files.append((path, file_sha256(path)))
    return files


def trigger_for(route, name: str, size: int) -> bytes:
    """The trigger transfers.tasks writes for a send on `route` (fresh ids, timestamp now)."""
    import datetime

    from transfers import protocol

    authority = route.municipality.cvr
    return protocol.build_trigger(
        protocol.Trigger(
            descriptor=protocol.FileDescriptor(
                file_name=name,
                size=size,
                sender=SENDER,
                recipients=(protocol.ROUTING_RECIPIENT,),
                senders_file_id=str(uuid.uuid4()),
            ),
            routing=protocol.RoutingInfo(
                infref=route.infref.name,
                sender_it_system=route.sender.uuid,
                sender_authority_cvr=authority,
                transaction_id=uuid.uuid4(),
                sender_timestamp=datetime.datetime.now(datetime.UTC),
                recipient_authority_cvr=authority,
                recipient_it_system=route.receiver.uuid,
            ),
        )
    )


def fill_inbox(integration: Integration, sim, files: list[tuple[Path, str]]) -> dict[str, str]:
    """Send every file with its trigger on loopback and wait until the simulator has routed each
    pair into the receiver's IN/; the SHA-256 of each name there (data files and metadata)."""
    from transfers import protocol
    from transfers.keys import decrypt_private_key
    from transfers.models import Route
    from transfers.queueing import remote_name
    from transfers.sftp import SftpSession

    # Read back: the instances made in setting up hold the UUIDs as the strings given.
    routes = list(
        Route.objects.filter(pk__in=[route.pk for route in integration.routes.values()])
        .select_related("infref", "sender", "receiver", "municipality")
        .order_by("municipality__municipality_code")
    )
    sent: dict[str, str] = {}
    with SftpSession(
        host="127.0.0.1",
        port=sim.port,
        username=SENDER,
        private_key=decrypt_private_key(integration.sender.private_key_encrypted),
        host_key=sim.host_key,
    ) as session:
        for number, (path, digest) in enumerate(files):
            name = remote_name(integration.sender, path.name)
            size, sha256 = session.put_file(path, f"{OUT}/{name}")
            if sha256 != digest:
                raise RuntimeError(f"{path.name} changed while it was sent")
            trigger = trigger_for(routes[number % len(routes)], name, size)
            session.put_bytes(trigger, f"{OUT}/{name}.trigger")
            sent[name] = digest

    # The receipt is the router's last step: once it is there the pair is in IN/, whole.
    receipts = sim.data_dir / SENDER / IN
    wait_until(
        lambda: all((receipts / f"{name}.sftpreceipt").exists() for name in sent),
        120,
        what=f"the simulator to route {len(sent)} files",
    )
    for name in sent:
        receipt = receipts / f"{name}.sftpreceipt"
        parsed = protocol.parse_receipt(receipt.read_bytes())
        if not parsed.success:
            raise RuntimeError(f"the simulator refused {name}: {parsed.errors}")
        receipt.unlink()
    inbox = sim.data_dir / RECEIVER / IN
    expected = {**sent, **{f"{n}.metadata": file_sha256(inbox / f"{n}.metadata") for n in sent}}
    if sorted(os.listdir(inbox)) != sorted(expected):
        raise RuntimeError(f"the receiver's IN/ holds other files: {sorted(os.listdir(inbox))[:5]}")
    return expected


# -- OpenSSH --------------------------------------------------------------------------------------


@contextlib.contextmanager
def pinned_login(integration: Integration, sim, work: Path) -> Iterator[list[str]]:
    """`sftp` options for the receiving user: its key in a 0600 file, the simulator's host key
    the only one accepted (a known_hosts file of its own, under HOST_ALIAS)."""
    from transfers.keys import decrypt_private_key

    folder = work / "openssh"
    folder.mkdir()
    key = folder / "receiver_key"
    key.touch(mode=0o600)
    key.write_bytes(decrypt_private_key(integration.receiver.private_key_encrypted))
    known_hosts = folder / "known_hosts"
    known_hosts.write_text(f"{HOST_ALIAS} {sim.host_key}\n")
    try:
        yield [
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            f"HostKeyAlias={HOST_ALIAS}",
            "-i",
            str(key),
        ]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def sftp_command(login: list[str], port: int, *extra: str) -> list[str]:
    return [SFTP, *extra, "-b", "-", *login, "-P", str(port), f"{RECEIVER}@127.0.0.1"]


def openssh_cipher(login: list[str], port: int) -> str:
    """The cipher `sftp` negotiates with the simulator (and proof that the pinned key works)."""
    output = subprocess.run(  # noqa: S603 - fixed arguments
        sftp_command(login, port, "-v"), input="pwd\n", capture_output=True, text=True, check=False
    )
    if output.returncode != 0:
        raise RuntimeError(f"sftp cannot log in as {RECEIVER}: {output.stderr[-2000:]}")
    match = re.search(r"server->client cipher: (\S+)", output.stderr)
    return match[1] if match else "unknown"


def openssh_get(login: list[str], port: int, expected: dict[str, str], into: Path) -> dict:
    """One `sftp -b` process getting IN/* (data files and metadata); timed start to exit, the
    way bench/throughput.py times it; every file checked, then the copies removed."""
    into.mkdir()
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 - fixed arguments
        sftp_command(login, port, "-q"),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    process.stdin.write(f"get {IN}/* {into}/\n".encode())
    process.stdin.close()
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    error = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"sftp failed ({os.waitstatus_to_exitcode(status)}): {error}")
    got = sorted(os.listdir(into))
    if got != sorted(expected):
        raise RuntimeError(f"sftp got {len(got)} files, not the {len(expected)} in IN/")
    for name, digest in expected.items():
        if file_sha256(into / name) != digest:
            raise RuntimeError(f"sftp's copy of {name} differs")
    shutil.rmtree(into)
    return {"seconds": round(seconds, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3)}


# -- the portal ----------------------------------------------------------------------------------


def portal_fetch(integration: Integration, sim, expected: dict[str, str]) -> dict:
    """`fetch_inbox` of the receiving account from a fresh session, timed from the call to its
    return; every pair stored, recorded with its SHA-256 and gone from the server after."""
    from transfers.fetch import fetch_inbox
    from transfers.models import ReceivedFile
    from transfers.sessions import drop_session

    account = integration.receiver.pk
    drop_session(account)
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    result = fetch_inbox(account)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    drop_session(account)

    names = [name for name in expected if not name.endswith(".metadata")]
    if result.received != len(names):
        raise RuntimeError(f"fetch_inbox received {result.received} of {len(names)}: {result}")
    records = {
        record.remote_name: record
        for record in ReceivedFile.objects.filter(account_id=account, remote_name__in=names)
    }
    for name in names:
        record = records.get(name)
        if record is None or record.state != ReceivedFile.State.RECEIVED:
            raise RuntimeError(f"{name}: not recorded as received ({record and record.state})")
        if not record.sha256 == file_sha256(Path(record.stored_path)) == expected[name]:
            raise RuntimeError(f"{name}: the file stored is not the file sent")
    if leftovers := sorted(os.listdir(sim.data_dir / RECEIVER / IN)):
        raise RuntimeError(f"left in IN/ after the fetch: {leftovers[:5]}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"seconds": round(seconds, 3), "cpu_s": round(cpu, 3)}


# -- the benchmark --------------------------------------------------------------------------------


@contextlib.contextmanager
def delay_proxy(target_port: int, delay_ms: float) -> Iterator[int]:
    """`python -m bench.delay_proxy` in a process of its own; its port."""
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "bench.delay_proxy", str(target_port), "--delay-ms", str(delay_ms)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        match = re.match(r"127\.0\.0\.1:(\d+) ->", line)
        if match is None:
            raise RuntimeError(f"the delay proxy did not start: {line!r}")
        yield int(match[1])
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def measure(integration, sim, login, files, work: Path, link: str, port: int, run: int) -> dict:
    """One run on one link: OpenSSH and the portal, which goes first alternating by run."""
    point_accounts_at(integration, port)
    expected = fill_inbox(integration, sim, files)
    result = {"order": "openssh first" if run % 2 == 0 else "portal first"}
    if run % 2 == 0:
        result["openssh"] = openssh_get(login, port, expected, work / "got")
        result["portal"] = portal_fetch(integration, sim, expected)
    else:
        result["portal"] = portal_fetch(integration, sim, expected)
        # The fetch emptied IN/: the same number of files again, sent the same way.
        expected = fill_inbox(integration, sim, files)
        result["openssh"] = openssh_get(login, port, expected, work / "got")
        # OpenSSH removes nothing; the next run starts from an empty inbox.
        for name in expected:
            (sim.data_dir / RECEIVER / IN / name).unlink()
    result["ratio"] = round(result["portal"]["seconds"] / result["openssh"]["seconds"], 3)
    count = len(files)
    print(
        f"  run {run + 1} {link:8} portal {result['portal']['seconds']:6.2f} s "
        f"({result['portal']['seconds'] / count * 1000:5.1f} ms/pair), OpenSSH "
        f"{result['openssh']['seconds']:6.2f} s ({result['openssh']['seconds'] / count * 1000:5.1f}"
        f" ms/pair): ratio {result['ratio']:.2f}; CPU s portal {result['portal']['cpu_s']:.2f}, "
        f"sftp {result['openssh']['cpu_s']:.2f}; {result['order']}",
        flush=True,
    )
    return result


def drive(options: dict) -> dict:
    """In the child: the whole bench against a fresh portal."""
    start_portal()
    from django.conf import settings
    from django.utils import timezone

    from bench.delay_proxy import measure_round_trip

    work = Path(settings.DATA_DIR)
    size = int(options["size_kib"] * 1024)
    files = write_files(work / "files", options["files"], size)
    delay_ms = options["rtt_ms"] / 2
    rtt = measure_round_trip(delay_ms / 1000)
    report = {
        "date": now(),
        "settings": {
            "files": options["files"],
            "size_bytes": size,
            "runs": options["runs"],
            "rtt_ms": options["rtt_ms"],
            "one_way_delay_ms": delay_ms,
            "measured_rtt_ms": round(statistics.median(rtt) * 1000, 2),
            "openssh_batch": f"get {IN}/* DIR/",
        },
        "runs": {"delay": [], "loopback": []},
    }
    with simulator(work / "serviceplatform") as sim:
        integration = sending_integration(None, sim.port, sim.host_key)
        with pinned_login(integration, sim, work) as login, delay_proxy(sim.port, delay_ms) as via:
            report["settings"]["openssh_cipher"] = openssh_cipher(login, sim.port)
            print(
                f"{options['files']} files of {options['size_kib']:g} KiB and their metadata in "
                f"one inbox; round trip through the proxy {report['settings']['measured_rtt_ms']}"
                f" ms; sftp negotiates {report['settings']['openssh_cipher']}",
                flush=True,
            )
            for run in range(options["runs"]):
                for link, port in (("delay", via), ("loopback", sim.port)):
                    report["runs"][link].append(
                        measure(integration, sim, login, files, work, link, port, run)
                    )
    report["summary"] = {
        link: summarise(runs, options["files"]) for link, runs in report["runs"].items()
    }
    report["finished"] = timezone.now().isoformat(timespec="seconds")
    return report


def summarise(runs: list[dict], files: int) -> dict:
    def median(pick) -> float:
        return round(statistics.median(pick(run) for run in runs), 3)

    portal = median(lambda run: run["portal"]["seconds"])
    openssh = median(lambda run: run["openssh"]["seconds"])
    return {
        "portal_s": portal,
        "openssh_s": openssh,
        "ratio": median(lambda run: run["ratio"]),
        "portal_ms_per_pair": round(portal / files * 1000, 1),
        "openssh_ms_per_pair": round(openssh / files * 1000, 1),
        "portal_cpu_s": median(lambda run: run["portal"]["cpu_s"]),
        "openssh_cpu_s": median(lambda run: run["openssh"]["cpu_s"]),
    }


def add_round_trips(report: dict) -> None:
    """Round trips per pair (a data file and its metadata), estimated: what the delayed link
    adds to each client's loopback time, in measured round trips, over the pairs. It says how a
    client's time grows with the round trip, which neither time alone does."""
    settings, summary = report["settings"], report["summary"]
    rtt = settings["measured_rtt_ms"] / 1000
    for client in ("portal", "openssh"):
        added = summary["delay"][f"{client}_s"] - summary["loopback"][f"{client}_s"]
        summary["delay"][f"{client}_round_trips_per_pair"] = round(
            added / rtt / settings["files"], 1
        )


def floor_statement(report: dict) -> str:
    return f"portal fetch <= 1.0x OpenSSH get at {report['settings']['rtt_ms']:g} ms RTT"


def rows(report: dict) -> list[Row]:
    delay, loop = report["summary"]["delay"], report["summary"]["loopback"]
    files, rtt = report["settings"]["files"], report["settings"]["rtt_ms"]
    return [
        Row(
            BENCHMARK,
            f"{rtt:g} ms RTT: portal fetch of {files} files + metadata",
            delay["portal_s"],
            "s",
        ),
        Row(BENCHMARK, f"{rtt:g} ms RTT: OpenSSH sftp -b get of the same", delay["openssh_s"], "s"),
        Row(
            BENCHMARK,
            f"{rtt:g} ms RTT: portal fetch / OpenSSH get",
            delay["ratio"],
            "ratio",
            "<= 1.00",
            delay["ratio"] <= 1.0,
        ),
        Row(BENCHMARK, "loopback: portal fetch", loop["portal_s"], "s"),
        Row(BENCHMARK, "loopback: OpenSSH sftp -b get", loop["openssh_s"], "s"),
        Row(BENCHMARK, "loopback: portal fetch / OpenSSH get", loop["ratio"], "ratio"),
    ]


def run(
    quick: bool = False,
    *,
    files: int | None = None,
    size_kib: float = 100,
    runs: int | None = None,
    rtt_ms: float = 10.0,
) -> dict:
    """The whole bench in a throwaway portal. As `make bench` runs it: one run of 98 files (the
    OpenSSH get alone takes a quarter of a minute at 10 ms); quick: 20 files, one run."""
    options = {
        "files": files or (20 if quick else 98),
        "size_kib": size_kib,
        "runs": runs or 1,
        "rtt_ms": rtt_ms,
    }
    info = machine()
    with throwaway_portal("inbox") as environment:
        report = in_child("bench.inbox", environment, options)
    info["load_average_after"] = os.getloadavg()
    report["machine"] = info
    add_round_trips(report)
    report["summary"]["floor"] = {
        "statement": floor_statement(report),
        "ratio": report["summary"]["delay"]["ratio"],
        "holds": report["summary"]["delay"]["ratio"] <= 1.0,
    }
    report["rows"] = [row.as_dict() for row in rows(report)]
    return report


def print_report(report: dict) -> None:
    settings, summary = report["settings"], report["summary"]
    delay, loop = summary["delay"], summary["loopback"]
    print()
    print(
        f"{settings['files']} files of {settings['size_bytes'] // 1024} KiB with their metadata "
        f"(a pair each), {settings['runs']} run(s), medians. OpenSSH: one `sftp -b` "
        f"({settings['openssh_cipher']}) running `{settings['openssh_batch']}`; portal: "
        "fetch_inbox, from connecting to every pair stored, recorded and removed."
    )
    print(
        f"Delay proxy: {settings['one_way_delay_ms']:g} ms each way, measured round trip "
        f"{settings['measured_rtt_ms']} ms. ratio = portal time / OpenSSH time (<= 1.00: no "
        "slower)."
    )
    print()
    print(
        f"{'link':10} {'portal s':>9} {'ms/pair':>8} {'OpenSSH s':>10} {'ms/pair':>8} {'ratio':>6}"
    )
    for label, figures in ((f"{settings['rtt_ms']:g} ms RTT", delay), ("loopback", loop)):
        print(
            f"{label:10} {figures['portal_s']:9.2f} {figures['portal_ms_per_pair']:8.1f} "
            f"{figures['openssh_s']:10.2f} {figures['openssh_ms_per_pair']:8.1f} "
            f"{figures['ratio']:6.2f}"
        )
    print(
        "Round trips per pair (what the delay adds over loopback): portal "
        f"{delay['portal_round_trips_per_pair']:g}, "
        f"OpenSSH {delay['openssh_round_trips_per_pair']:g}"
    )
    floor = summary["floor"]
    print(
        f"\nFloor ({floor['statement']}): ratio {floor['ratio']:.2f} -> "
        + ("HOLDS" if floor["holds"] else "MISSED")
    )
    load = report["machine"]
    print(
        f"load average before {load['load_average_before'][0]:.2f}, "
        f"after {load['load_average_after'][0]:.2f} (high: noisy figures)"
    )
    print()
    print_rows(report["rows"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=None, help="files in the inbox (98)")
    parser.add_argument("--size-kib", type=float, default=100.0, help="each file's size (100)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rtt-ms", type=float, default=10.0, help="added round trip (10)")
    parser.add_argument("--quick", action="store_true", help="20 files, one run")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    parser.add_argument("--inside", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if answered_inside(arguments.inside, drive):
        return 0
    if not shutil.which(SFTP):
        print("OpenSSH's sftp is needed", file=sys.stderr)
        return 2
    report = run(
        arguments.quick,
        files=arguments.files,
        size_kib=arguments.size_kib,
        runs=None if arguments.quick else arguments.runs,
        rtt_ms=arguments.rtt_ms,
    )
    print_report(report)
    if not (arguments.no_save or arguments.quick):
        print(f"\nwrote {save(BENCHMARK, report).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
