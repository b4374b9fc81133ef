"""Many municipalities end to end: one CSV file split into 98, sent and fetched through the queue.

    .venv/bin/python -m bench.end_to_end [--size-mib 10] [--runs 3] [--rtt-ms 10] [--no-save]

A throwaway portal (SQLite in a temporary folder, migrated) with an integration ready for all 98
municipalities, the simulator (`manage.py serviceplatform`, the portal's database as registry)
and, per batch, a fresh `manage.py qcluster` with the default worker settings. One CSV file of
`--size-mib` is split per municipality and queued as the portal does it (transfers.split), then
the workers send each part (data file, trigger, receipt) and fetch it from the receiving IT
system's inbox. Each batch runs on loopback and through bench/delay_proxy.py (`--rtt-ms`, the
accounts point at the proxy); OpenSSH `sftp -b` uploads the same 98 parts in one batch to the
simulator through the same link, alternating which goes first. Every file is checked: the bytes
fetched equal the split part, each is routed once, fetched once, in one attempt.

This module also holds the harness that bench/latency.py and bench/scale_out.py share: a
throwaway portal for a child process, the integration, the clusters. See bench/README.md.
"""

import argparse
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.common import (
    ROOT,
    Row,
    in_service,
    machine,
    now,
    own_database,
    own_environment,
    print_rows,
    save,
    service_cluster,
)

BENCHMARK = "end_to_end"
SENDS_FLOOR = 0.5  # sends through queue and workers against OpenSSH's batch (issue 20, point 3)
KEEPING_UP_FLOOR = 1.5  # click to last fetched against the sends' own time (issue 20, point 4)
SENDER, RECEIVER = "nordlys_omsorg", "fjordsoft_journal"
COLUMN = "kommunekode"


# -- the harness: a throwaway portal in a child process -----------------------------------------


@contextlib.contextmanager
def throwaway_portal(label: str, database: str = "sqlite") -> Iterator[dict[str, str]]:
    """The environment of a portal of its own: data folder and database made here, gone after.
    DEBUG off, as the portal's workers run in service: with it on, Django keeps every query a
    worker makes, a tenth of their time."""
    workspace = Path(tempfile.mkdtemp(prefix=f"fdd-bench-{label}-"))
    try:
        with own_database(database, workspace, f"fdd_bench_e2e_{label}_{os.getpid()}") as url:
            yield own_environment(
                DJANGO_SETTINGS_MODULE="portal.settings",
                **in_service(workspace),
                ALLOWED_HOSTS="localhost,testserver",
                # The simulator and the delay proxies listen on free loopback ports.
                SFTP_ALLOWED_HOSTS="127.0.0.1:*",
                PORTAL_DATA_DIR=str(workspace / "data"),
                PYTHONUNBUFFERED="1",
                DATABASE_URL=url,
            )
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


def answered_inside(inside: str | None, drive: Callable[[dict], dict]) -> bool:
    """In the child `in_child` starts (`--inside OPTIONS`): run `drive` on the options and
    leave its report where `in_child` reads it. False in the parent, which has no options."""
    if not inside:
        return False
    options = json.loads(inside)
    Path(options["report"]).write_text(json.dumps(drive(options), default=str))
    return True


def in_child(module: str, environment: dict[str, str], options: dict) -> dict:
    """Run `python -m <module> --inside` in the portal's environment; its report.

    A child of its own because Django is configured once per process, and each bench wants
    its own database.
    """
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        report_path = Path(handle.name)
    try:
        options = {**options, "report": str(report_path)}
        completed = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", module, "--inside", json.dumps(options)],
            cwd=ROOT,
            env=environment,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"{module} failed (exit {completed.returncode}); see above")
        return json.loads(report_path.read_text())
    finally:
        report_path.unlink(missing_ok=True)


def start_portal() -> None:
    """In the child: Django up, the throwaway database migrated."""
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    Path(settings.DATA_DIR).mkdir(parents=True, exist_ok=True)

    call_command("migrate", verbosity=0, interactive=False)
    # Every task queued, login and SFTP session is logged at INFO; in this process the bench's
    # own lines are what matter (the workers and the simulator process keep their logs).
    for chatty in ("django-q", "axes", "paramiko", "transfers.simulator"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


def wait_until(condition: Callable[[], object], timeout: float, interval: float = 0.2, what=""):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"after {timeout:g} s still waiting for {what or condition}")
        time.sleep(interval)
    return result


@dataclasses.dataclass
class Integration:
    staff: object
    sender: object  # SftpAccount
    receiver: object  # SftpAccount
    routes: dict  # municipality code -> Route


def sending_integration(codes: list[str] | None, port: int, host_key: str) -> Integration:
    """A vendor sending to another vendor's IT system for the municipalities given (all if None),
    onboarded as far as a send needs, with SFTP accounts on the simulator at `port`."""
    from django.contrib.auth import get_user_model

    from portal.accounts.models import Membership, Organisation
    from portal.itsystems.models import ItSystem
    from tests.support import engine

    municipalities = Organisation.objects.filter(kind=Organisation.Kind.MUNICIPALITY)
    if codes is not None:
        municipalities = municipalities.filter(municipality_code__in=codes)
    municipalities = list(municipalities.order_by("municipality_code"))
    nordlys = Organisation.objects.create(
        kind="vendor", name="Nordlys Systemer A/S", cvr="39123452"
    )
    fjordsoft = Organisation.objects.create(kind="vendor", name="Fjordsoft ApS", cvr="41872632")
    users = get_user_model().objects
    staff = users.create_user("nordlys", email="drift@nordlys.example")
    Membership.objects.create(user=staff, organisation=nordlys)
    operator = users.create_user("kombit", email="kdi@kombit.example")
    Membership.objects.create(user=operator, organisation=Organisation.objects.get(kind="kombit"))
    sender = ItSystem.objects.create(
        uuid="6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b",
        name="Nordlys Omsorg",
        vendor=nordlys,
        is_sender=True,
    )
    receiver = ItSystem.objects.create(
        uuid="0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d",
        name="Fjordsoft Journal",
        vendor=fjordsoft,
        is_receiver=True,
    )
    integration = engine.ready_integration(
        staff=staff,
        operator=operator,
        sender=sender,
        receiver=receiver,
        municipalities=municipalities,
    )
    link = {"host": "127.0.0.1", "port": port, "host_key": host_key}
    return Integration(
        staff=staff,
        sender=engine.account(sender, SENDER, None, **link),
        receiver=engine.account(receiver, RECEIVER, None, **link),
        routes=engine.routes_for(integration, municipalities),
    )


def point_accounts_at(integration: Integration, port: int) -> None:
    """Both accounts to `port`: the simulator itself, or a proxy in front of it."""
    from transfers.models import SftpAccount

    SftpAccount.objects.filter(pk__in=[integration.sender.pk, integration.receiver.pk]).update(
        port=port
    )


@contextlib.contextmanager
def simulator(data_dir: Path, delay: float | None = None) -> Iterator:
    """`manage.py serviceplatform` on a free port, the portal's database as registry; `delay`:
    the seconds it waits before routing a trigger (None: the simulator's default)."""
    from tests.support.simulator_fixtures import simulator_process
    from transfers.simulator.server import load_or_create_host_key

    key_path = data_dir.parent / "simulator_host_key"
    key = load_or_create_host_key(key_path)
    options = ["--host-key", str(key_path)]
    if delay is not None:
        options += ["--delay", str(delay)]
    with simulator_process(
        data_dir, None, *options, env={"DJANGO_SETTINGS_MODULE": "portal.settings"}
    ) as process:
        process.host_key = f"{key.get_name()} {key.get_base64()}"
        process.data_dir = data_dir
        yield process


@contextlib.contextmanager
def cluster(**options) -> Iterator[subprocess.Popen]:
    """A `manage.py qcluster` (tests/support/workers.py), returned once it is idle with nothing
    queued, so its start-up and its first scheduled rounds stay out of what is measured."""
    with service_cluster(**options) as process:
        wait_for_idle([process])
        yield process


def wait_for_idle(processes: list[subprocess.Popen], timeout: float = 90) -> None:
    from django_q.conf import Conf
    from django_q.models import OrmQ
    from django_q.status import Stat

    def idle() -> bool:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"qcluster {process.pid} exited with {process.returncode}")
        ready = {stat.pid for stat in Stat.get_all() if stat.status == Conf.IDLE}
        return ready >= {process.pid for process in processes} and not OrmQ.objects.exists()

    wait_until(idle, timeout, what="the worker clusters to be idle")


def failed_tasks(since) -> list[str]:
    """django-q2's record of tasks that raised since `since`: the symptom of a defect."""
    from django_q.models import Failure

    return [
        f"{task.func}{task.args}: {str(task.result)[:200]}"
        for task in Failure.objects.filter(started__gte=since)
    ]


def cpu_seconds(root: int) -> float:
    """User and system CPU time of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        pending += children.get(pid, [])
        with contextlib.suppress(OSError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def seconds(later, earlier) -> float:
    return round((later - earlier).total_seconds(), 3)


def fetched_files(transfers: list) -> dict[int, object]:
    """transfer id -> its ReceivedFile (by the platform's FileTransferUUID), once fetched."""
    from transfers.models import ReceivedFile

    by_uuid = {t.file_transfer_uuid: t.pk for t in transfers if t.file_transfer_uuid}
    received = ReceivedFile.objects.filter(file_transfer_uuid__in=list(by_uuid)).select_related(
        "route__municipality"
    )
    return {by_uuid[file.file_transfer_uuid]: file for file in received}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def routed_names(output: list[str]) -> Counter:
    """How often the simulator's log says it routed each name (its own record of deliveries)."""
    return Counter(
        match.group(1) for line in output if (match := re.search(r"Routed (\S+) from ", line))
    )


# -- this bench -----------------------------------------------------------------------------------


def write_extract(path: Path, codes: list[str], size: int, seed: int = 7) -> None:
    """A CSV extract of `size` bytes, one row per citizen, municipalities mixed through it."""
    rng = random.Random(seed)  # noqa: S311 - test data, the same every run
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(f"{COLUMN};cpr;navn;adresse;ydelse;noter\r\n")
        written = 0
        while written < size:
            row = (
                f"{rng.choice(codes)};{rng.randrange(10**9, 10**10):010d};"
                f"Borger {rng.random():.6f};Vej {rng.randrange(1, 300)};hjemmepleje;"
                f"{rng.randbytes(24).hex()}\r\n"
            )
            written += out.write(row)


def send_batch(
    integration: Integration, source: Path, expected: dict[str, str], sim, workers
) -> dict:
    """Split and queue as the portal does, wait until every part is delivered and fetched."""
    from django.utils import timezone

    from transfers.models import Transfer
    from transfers.split import queue_split

    cpu = {"workers": cpu_seconds(workers.pid), "simulator": cpu_seconds(sim.process.pid)}
    click = timezone.now()
    transfers = queue_split(integration.routes.values(), source, COLUMN, user=integration.staff)
    queued = timezone.now()
    ids = [transfer.pk for transfer in transfers]

    def settled():
        rows = list(Transfer.objects.filter(pk__in=ids))
        if any(row.state in Transfer.State.FINAL - {Transfer.State.DELIVERED} for row in rows):
            raise RuntimeError(f"a transfer failed: {[r.last_error for r in rows if r.last_error]}")
        if all(row.state == Transfer.State.DELIVERED for row in rows):
            received = fetched_files(rows)
            return (rows, received) if len(received) == len(rows) else None
        return None

    try:
        rows, received = wait_until(settled, 300, what="every part delivered and fetched")
    except TimeoutError as error:
        raise TimeoutError(f"{error}: {progress(ids)}") from None
    cpu = {
        "workers": cpu_seconds(workers.pid) - cpu["workers"],
        "simulator": cpu_seconds(sim.process.pid) - cpu["simulator"],
    }
    check_batch(rows, received, expected, sim)
    by_transfer = [received[row.pk].received_at - row.queued_at for row in rows]
    return {
        "files": len(rows),
        "queue_split_s": seconds(queued, click),
        # the window: first upload started .. last trigger written
        "sends_s": seconds(max(r.sent_at for r in rows), min(r.started_at for r in rows)),
        # what the keeping-up ratio counts besides the sends: before the first upload, and
        # after the last trigger
        "click_to_first_upload_s": seconds(min(r.started_at for r in rows), click),
        "last_trigger_to_fetched_s": seconds(
            max(f.received_at for f in received.values()), max(r.sent_at for r in rows)
        ),
        "click_to_delivered_s": seconds(max(r.finished_at for r in rows), click),
        "click_to_fetched_s": seconds(max(f.received_at for f in received.values()), click),
        "queued_to_fetched_median_s": round(
            statistics.median(d.total_seconds() for d in by_transfer), 3
        ),
        "queued_to_fetched_max_s": round(max(d.total_seconds() for d in by_transfer), 3),
        "phase_medians_s": phases(rows, received),
        # the whole chain is Python on two cores: CPU per file says how far it is CPU-bound
        "cpu_ms_per_file": {
            process: round(used * 1000 / len(rows), 1) for process, used in cpu.items()
        },
        "tasks_run": tasks_run(click),
        "failed_tasks": failed_tasks(click),
    }


def tasks_run(since) -> dict[str, int]:
    """How many tasks of each kind the workers ran since `since` (django-q2's records)."""
    from django_q.models import Task

    return dict(Counter(Task.objects.filter(started__gte=since).values_list("func", flat=True)))


def phases(rows: list, received: dict) -> dict:
    """Median seconds of each step of a transfer, from the timestamps its row keeps."""
    steps = {
        "in_queue": lambda r: r.started_at - r.queued_at,
        "upload": lambda r: r.trigger_started_at - r.started_at,
        "trigger": lambda r: r.sent_at - r.trigger_started_at,
        "receipt": lambda r: r.finished_at - r.sent_at,
        "fetch": lambda r: received[r.pk].received_at - r.finished_at,
    }
    return {
        step: round(statistics.median(took(row).total_seconds() for row in rows), 3)
        for step, took in steps.items()
    }


def progress(ids: list[int]) -> dict:
    """Where the transfers are, and what went wrong: for a run that does not finish."""
    from transfers.models import Transfer

    transfers = Transfer.objects.filter(pk__in=ids)
    return {
        "states": Counter(transfers.values_list("state", flat=True)),
        "fetched": len(fetched_files(list(transfers))),
        "errors": sorted({e for e in transfers.values_list("last_error", flat=True) if e})[:5],
        "failed_tasks": failed_tasks(min(t.queued_at for t in transfers))[:5],
    }


def check_batch(rows: list, received: dict, expected: dict[str, str], sim) -> None:
    """Each part arrived intact, routed once, fetched once, in one attempt; nothing left over."""
    from transfers.models import ReceivedFile

    routed = routed_names(sim.output)
    for row in rows:
        file = received[row.pk]
        code = file.route.municipality.municipality_code
        if row.attempts != 1:
            raise RuntimeError(f"{row.remote_name}: {row.attempts} attempts")
        if routed[row.remote_name] != 1:
            raise RuntimeError(f"{row.remote_name}: routed {routed[row.remote_name]} times")
        if not file.sha256 == file_sha256(Path(file.stored_path)) == expected[code]:
            raise RuntimeError(f"{row.remote_name}: the file fetched is not the part for {code}")
    if len({file.pk for file in received.values()}) != len(rows):
        raise RuntimeError("two transfers share one received file")
    quarantined = ReceivedFile.objects.filter(state=ReceivedFile.State.QUARANTINED)
    if quarantined.exists():
        reasons = [f"{file.remote_name}: {file.reason}" for file in quarantined[:5]]
        raise RuntimeError(f"{quarantined.count()} fetched files quarantined: {reasons}")
    inbox = sim.data_dir / RECEIVER / "IN"
    if leftovers := sorted(os.listdir(inbox)) + sorted(os.listdir(sim.data_dir / SENDER / "IN")):
        raise RuntimeError(f"left on the simulator: {leftovers[:5]}")


def openssh_batch(integration: Integration, parts: Path, expected: dict, sim, port: int) -> dict:
    """`sftp -b` putting the 98 parts in one batch to the sender's OUT/ (no triggers: the
    simulator leaves them alone), timed as a whole process; checked, then removed."""
    from bench.throughput import run_openssh
    from transfers.keys import decrypt_private_key

    key = parts.parent / "sender_key"
    if not key.exists():
        key.write_bytes(decrypt_private_key(integration.sender.private_key_encrypted))
        key.chmod(0o600)
    server = argparse.Namespace(host="127.0.0.1", port=port, username=SENDER, private_key_path=key)
    result = run_openssh(server, f"put {parts}/* OUT/\n")
    out = sim.data_dir / SENDER / "OUT"
    for path in sorted(parts.iterdir()):
        code = path.stem.rsplit("-", 1)[1]
        if file_sha256(out / path.name) != expected[code]:
            raise RuntimeError(f"sftp's upload of {path.name} differs")
        (out / path.name).unlink()
    return {"seconds": round(result["seconds"], 3)}


@contextlib.contextmanager
def show_logs_on_failure(work: Path) -> Iterator[None]:
    """The workers' own words when a run fails: the folder they are in goes with the portal."""
    try:
        yield
    except BaseException:
        for log in sorted(work.glob("qcluster*.log")):
            print(f"--- the end of {log.name}:", *log.read_text().splitlines()[-40:], sep="\n")
        raise


def drive(options: dict) -> dict:
    """In the child: the whole bench against a fresh portal."""
    start_portal()
    from django.conf import settings

    with show_logs_on_failure(Path(settings.DATA_DIR)):
        return _drive(options)


def _drive(options: dict) -> dict:
    from django.conf import settings
    from django.utils import timezone

    from bench.delay_proxy import DelayProxy, measure_round_trip
    from portal.accounts.models import Organisation
    from transfers.split import split_csv

    work = Path(settings.DATA_DIR)
    source, parts = work / "borgere.csv", work / "parts"
    parts.mkdir(parents=True)
    codes = sorted(
        Organisation.objects.filter(kind=Organisation.Kind.MUNICIPALITY).values_list(
            "municipality_code", flat=True
        )
    )
    write_extract(source, codes, int(options["size_mib"] * 2**20))
    expected = {code: file_sha256(path) for code, path in split_csv(source, COLUMN, parts).items()}
    delay = options["rtt_ms"] / 2000
    rtt = measure_round_trip(delay)
    report = {
        "date": now(),
        "settings": {
            "municipalities": len(expected),
            "source_bytes": source.stat().st_size,
            "part_bytes": {
                "min": min(p.stat().st_size for p in parts.iterdir()),
                "max": max(p.stat().st_size for p in parts.iterdir()),
            },
            "runs": options["runs"],
            "one_way_delay_ms": delay * 1000,
            "measured_rtt_ms": round(statistics.median(rtt) * 1000, 2),
            "workers": settings.Q_CLUSTER["workers"],
            "poll_s": settings.Q_CLUSTER["poll"],
        },
        "runs": {"loopback": [], "delay": []},
    }
    print(
        f"{len(expected)} parts of {report['settings']['part_bytes']} bytes from one "
        f"{source.stat().st_size / 2**20:.1f} MiB file; round trip through the proxy "
        f"{report['settings']['measured_rtt_ms']} ms",
        flush=True,
    )
    # The platform's own wait before routing is not the portal's time: routed at once here.
    with simulator(work / "serviceplatform", delay=0) as sim:
        integration = sending_integration(None, sim.port, sim.host_key)
        with DelayProxy("127.0.0.1", sim.port, delay=delay) as proxy:
            for run in range(options["runs"]):
                for link, port in (("loopback", sim.port), ("delay", proxy.port)):
                    point_accounts_at(integration, port)
                    # Which goes first alternates: neither always meets a warm or a cold machine.
                    openssh_first = run % 2 == 0
                    if openssh_first:
                        openssh = openssh_batch(integration, parts, expected, sim, port)
                    with cluster(output=work / "qcluster.log") as workers:
                        portal = send_batch(integration, source, expected, sim, workers)
                    if not openssh_first:
                        openssh = openssh_batch(integration, parts, expected, sim, port)
                    ratio = round(portal["sends_s"] / openssh["seconds"], 3)
                    report["runs"][link].append(
                        {"portal": portal, "openssh": openssh, "ratio": ratio}
                    )
                    print(
                        f"  run {run + 1} {link:8} sends {portal['sends_s']:6.2f} s, OpenSSH "
                        f"{openssh['seconds']:6.2f} s (ratio {ratio:.2f}); click to last "
                        f"fetched {portal['click_to_fetched_s']:6.2f} s (first upload "
                        f"{portal['click_to_first_upload_s']:.2f} s after the click, last "
                        f"fetched {portal['last_trigger_to_fetched_s']:.2f} s after the last "
                        "trigger)\n"
                        f"    median s per step {portal['phase_medians_s']}\n"
                        f"    CPU ms per file {portal['cpu_ms_per_file']}\n"
                        f"    tasks {portal['tasks_run']}",
                        flush=True,
                    )
    report["summary"] = {link: summarise(runs) for link, runs in report["runs"].items()}
    report["finished"] = timezone.now().isoformat(timespec="seconds")
    return report


def summarise(runs: list[dict]) -> dict:
    def median(pick) -> float:
        return round(statistics.median(pick(run) for run in runs), 3)

    files = runs[0]["portal"]["files"]
    fetched = median(lambda run: run["portal"]["click_to_fetched_s"])
    return {
        "sends_s": median(lambda run: run["portal"]["sends_s"]),
        "openssh_s": median(lambda run: run["openssh"]["seconds"]),
        "ratio": median(lambda run: run["ratio"]),
        "click_to_delivered_s": median(lambda run: run["portal"]["click_to_delivered_s"]),
        "click_to_fetched_s": fetched,
        "fetched_to_sends": median(
            lambda run: run["portal"]["click_to_fetched_s"] / run["portal"]["sends_s"]
        ),
        "split_s": median(lambda run: run["portal"]["queue_split_s"]),
        "files_per_s": round(files / fetched, 1),
        "queued_to_fetched_median_s": median(
            lambda run: run["portal"]["queued_to_fetched_median_s"]
        ),
        "queued_to_fetched_max_s": median(lambda run: run["portal"]["queued_to_fetched_max_s"]),
        "failed_tasks": sum(len(run["portal"]["failed_tasks"]) for run in runs),
    }


def rows(report: dict) -> list[Row]:
    loop, delay = report["summary"]["loopback"], report["summary"]["delay"]
    files, rtt = report["settings"]["municipalities"], report["settings"]["measured_rtt_ms"]
    return [
        Row(
            BENCHMARK,
            f"{rtt:g} ms RTT: {files} sends, first upload to last trigger",
            delay["sends_s"],
            "s",
        ),
        Row(
            BENCHMARK,
            f"{rtt:g} ms RTT: OpenSSH sftp -b, the {files} data files",
            delay["openssh_s"],
            "s",
        ),
        Row(
            BENCHMARK,
            f"{rtt:g} ms RTT: sends / OpenSSH",
            delay["ratio"],
            "ratio",
            f"<= {SENDS_FLOOR:.2f}",
            delay["ratio"] <= SENDS_FLOOR,
        ),
        Row(BENCHMARK, f"{rtt:g} ms RTT: click to last fetched", delay["click_to_fetched_s"], "s"),
        Row(
            BENCHMARK,
            f"{rtt:g} ms RTT: click to last fetched / sends",
            delay["fetched_to_sends"],
            "ratio",
            f"<= {KEEPING_UP_FLOOR:.2f}",
            delay["fetched_to_sends"] <= KEEPING_UP_FLOOR,
        ),
        Row(BENCHMARK, f"{rtt:g} ms RTT: click to all queued (the split)", delay["split_s"], "s"),
        Row(BENCHMARK, "loopback: sends / OpenSSH", loop["ratio"], "ratio"),
        Row(
            BENCHMARK,
            "loopback: click to last fetched",
            loop["click_to_fetched_s"],
            "s",
            "< 30 s",
            loop["click_to_fetched_s"] < 30,
        ),
        Row(
            BENCHMARK,
            "loopback: files per second, click to fetched",
            loop["files_per_s"],
            "files/s",
        ),
        Row(
            BENCHMARK,
            "loopback: queued to fetched, median file",
            loop["queued_to_fetched_median_s"],
            "s",
        ),
    ]


def run(
    quick: bool = False,
    *,
    size_mib: float | None = None,
    runs: int | None = None,
    rtt_ms: float = 10.0,
) -> dict:
    """The whole bench in a throwaway portal; quick: 1 MiB, one run."""
    options = {
        "size_mib": size_mib or (1 if quick else 10),
        "runs": runs or (1 if quick else 3),
        "rtt_ms": rtt_ms,
    }
    info = machine()
    with throwaway_portal("split") as environment:
        report = in_child("bench.end_to_end", environment, options)
    info["load_average_after"] = os.getloadavg()
    report["machine"] = info
    report["rows"] = [row.as_dict() for row in rows(report)]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=float, default=10.0, help="the CSV file (10)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rtt-ms", type=float, default=10.0, help="added round trip (10)")
    parser.add_argument("--quick", action="store_true", help="1 MiB, one run")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    parser.add_argument("--inside", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if answered_inside(arguments.inside, drive):
        return 0
    report = run(
        arguments.quick,
        size_mib=None if arguments.quick else arguments.size_mib,
        runs=None if arguments.quick else arguments.runs,
        rtt_ms=arguments.rtt_ms,
    )
    print()
    print_rows(report["rows"])
    if not (arguments.no_save or arguments.quick):
        print(f"\nwrote {save('end-to-end', report).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
