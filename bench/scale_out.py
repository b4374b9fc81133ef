"""Scale-out: two worker clusters on one PostgreSQL database share the sends, each sent once.

    .venv/bin/python -m bench.scale_out [--sends 200] [--no-save]

A throwaway PostgreSQL database (made on POSTGRES_URL's server, `fdd_bench_e2e_scale_<pid>`,
dropped after), the simulator in this process (the portal's database as registry, every file
its SFTP server opens for writing counted), and two `manage.py qcluster` processes with the
default settings, as two hosts would run them: the same queue, each its own log. `--sends` 1
KiB files are queued as the upload form queues them (queue_send), spread over the 98
municipalities' routes, then the bench waits until every one is delivered and fetched.

Checked: on the simulator, each data file and each trigger opened for writing once and each
name routed once, without error; in the database, every transfer delivered in one attempt, one
send task that sent it, one received file with the same SHA-256; nothing left in any IN/. How
the work was shared comes from each cluster's log (the name of every task its workers took)
joined with django-q2's task records. See bench/README.md.
"""

import argparse
import io
import os
import re
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from bench.common import ROOT, Row, machine, now, print_rows, save, service_cluster
from bench.end_to_end import (
    RECEIVER,
    SENDER,
    answered_inside,
    fetched_files,
    file_sha256,
    in_child,
    seconds,
    sending_integration,
    show_logs_on_failure,
    start_portal,
    throwaway_portal,
    wait_for_idle,
    wait_until,
)

BENCHMARK = "scale_out"
CLUSTERS = ("a", "b")
SIZE = 1024
# "Process-<id> processing <task name> '<function>'", whatever the words in between.
TASK_TAKEN = re.compile(r"(Process-\w+) \S+ (\S+) '([\w.]+)'")


class UploadLog:
    """Every file the simulator's clients open for writing, per (user, name): the server's own
    count of uploads, which no client can get wrong."""

    def __init__(self, simulator):
        self.counts: Counter = Counter()
        self._lock = threading.Lock()
        opened = simulator.router.writer_opened

        def counted(user: str, filename: str) -> None:
            with self._lock:
                self.counts[(user, filename)] += 1
            opened(user, filename)

        simulator.router.writer_opened = counted


def queue_sends(routes: list, count: int, user) -> list:
    """`count` sends of SIZE bytes, one after another as clicks would, routes taken in turn."""
    from transfers.queueing import Channel, queue_send

    transfers = []
    for number in range(count):
        route = routes[number % len(routes)]
        code = route.municipality.municipality_code
        body = f"kommunekode;cpr;navn\r\n{code};0101011234;Borger {number}\r\n".encode()
        transfers.append(
            queue_send(
                route,
                io.BytesIO(body.ljust(SIZE, b"x")),
                original_name=f"borgere-{code}-{number}.csv",
                user=user,
                channel=Channel.PAGE,
            )
        )
    return transfers


def wait_until_fetched(transfers: list, timeout: float) -> tuple[list, dict]:
    """The transfers once all are delivered and fetched; (rows, transfer id -> ReceivedFile)."""
    from transfers.models import Transfer

    ids = [transfer.pk for transfer in transfers]

    def done():
        rows = list(Transfer.objects.filter(pk__in=ids))
        if any(row.state in Transfer.State.FINAL - {Transfer.State.DELIVERED} for row in rows):
            raise RuntimeError(f"a transfer failed: {[r.last_error for r in rows if r.last_error]}")
        if all(row.state == Transfer.State.DELIVERED for row in rows):
            received = fetched_files(rows)
            return (rows, received) if len(received) == len(rows) else None
        return None

    return wait_until(done, timeout, what="every send delivered and fetched")


def sent_once(rows: list, received: dict, uploads: UploadLog, simulator, since) -> list[str]:
    """Everything that says a file went more or less than once; empty when all is well."""
    from django_q.models import Task

    from transfers.models import ReceivedFile
    from transfers.queueing import SEND_TASK

    problems = []
    routed = Counter(outcome.name for outcome in simulator.router.outcomes)
    refused = [outcome for outcome in simulator.router.outcomes if outcome.error is not None]
    if refused:
        problems.append(f"the simulator refused {len(refused)}: {refused[:3]}")
    # Each send's own task ran once: it sent the file, or found it taken by a task that sent it
    # together with its own (the uploads and routings below count what went).
    runs = Task.objects.filter(func=SEND_TASK, started__gte=since).values_list("args", "result")
    sent = Counter(args[0] for args, result in runs if result in ("sent", "not queued"))
    for row in rows:
        name = row.remote_name
        data = uploads.counts[(SENDER, name)]
        trigger = uploads.counts[(SENDER, f"{name}.trigger")]
        file = received.get(row.pk)
        if (data, trigger) != (1, 1):
            problems.append(f"{name}: data file uploaded {data} times, trigger {trigger}")
        if routed[name] != 1:
            problems.append(f"{name}: routed {routed[name]} times")
        if row.state != row.State.DELIVERED or row.attempts != 1:
            problems.append(f"{name}: {row.state} after {row.attempts} attempts")
        if sent[row.pk] != 1:
            problems.append(f"{name}: its send task ran {sent[row.pk]} times")
        if file is None or not file.sha256 == row.sha256 == file_sha256(Path(file.stored_path)):
            problems.append(f"{name}: not fetched intact")
    if len({file.pk for file in received.values()}) != len(received):
        problems.append("two transfers share one received file")
    quarantined = ReceivedFile.objects.filter(state=ReceivedFile.State.QUARANTINED).count()
    if quarantined:
        problems.append(f"{quarantined} fetched files quarantined")
    for user in (SENDER, RECEIVER):
        if left := os.listdir(simulator.data_dir / user / "IN"):
            problems.append(f"left in {user}'s IN: {sorted(left)[:3]}")
    return problems


def share(logs: dict[str, Path], since) -> dict:
    """Which cluster (and which of its workers) took which tasks, by function."""
    from django_q.models import Task

    func_of = dict(Task.objects.filter(started__gte=since).values_list("name", "func"))
    shares = {}
    for cluster, log in logs.items():
        tasks, workers = Counter(), Counter()
        for line in log.read_text(errors="replace").splitlines():
            taken = TASK_TAKEN.search(line)
            if taken and taken.group(2) in func_of:
                process, _name, func = taken.groups()
                tasks[func.rsplit(".", 1)[1]] += 1
                if func.endswith(".send_transfer"):
                    workers[process] += 1
        shares[cluster] = {"tasks": dict(tasks), "sends_per_worker": sorted(workers.values())}
    return shares


def drive(options: dict) -> dict:
    start_portal()
    from django.conf import settings

    with show_logs_on_failure(Path(settings.DATA_DIR)):
        return _drive(options)


def _drive(options: dict) -> dict:
    from django.conf import settings
    from django.utils import timezone

    from transfers.simulator import Simulator

    work = Path(settings.DATA_DIR)
    count = options["sends"]
    simulator = Simulator(work / "serviceplatform", registry=None, port=0).start()
    try:
        host_key = f"{simulator.host_key.get_name()} {simulator.host_key.get_base64()}"
        integration = sending_integration(None, simulator.port, host_key)
        uploads = UploadLog(simulator)
        logs = {name: work / f"qcluster{name}.log" for name in CLUSTERS}
        with (
            service_cluster(output=logs["a"]) as first,
            service_cluster(output=logs["b"]) as second,
        ):
            wait_for_idle([first, second])
            click = timezone.now()
            started = time.monotonic()
            transfers = queue_sends(list(integration.routes.values()), count, integration.staff)
            queued = time.monotonic() - started
            rows, received = wait_until_fetched(transfers, timeout=max(120, count * 2))
        problems = sent_once(rows, received, uploads, simulator, click)
        if problems:
            raise RuntimeError(f"{len(problems)} problems: {problems[:10]}")
    finally:
        simulator.stop()
    shares = share(logs, click)
    delivered = seconds(max(row.finished_at for row in rows), click)
    fetched = seconds(max(file.received_at for file in received.values()), click)
    print(f"  {count} sends: all delivered {delivered:.2f} s, all fetched {fetched:.2f} s")
    for cluster, taken in shares.items():
        print(f"  cluster {cluster}: {taken}")
    return {
        "date": now(),
        "settings": {
            "sends": count,
            "size_bytes": SIZE,
            "clusters": len(CLUSTERS),
            "workers_per_cluster": settings.Q_CLUSTER["workers"],
            "database": settings.DATABASES["default"]["ENGINE"],
        },
        "summary": {
            "queue_seconds": round(queued, 3),
            "click_to_delivered_s": delivered,
            "click_to_fetched_s": fetched,
            "sends_per_s": round(count / delivered, 1),
            "each_sent_once": not problems,
            "sends_by_cluster": {c: shares[c]["tasks"].get("send_transfer", 0) for c in CLUSTERS},
        },
        "shares": shares,
    }


def rows(report: dict) -> list[Row]:
    summary, count = report["summary"], report["settings"]["sends"]
    by_cluster = summary["sends_by_cluster"]
    return [
        Row(
            BENCHMARK,
            f"{count} sends by 2 clusters: each sent exactly once",
            float(summary["each_sent_once"]),
            "yes=1",
            "= 1",
            summary["each_sent_once"],
        ),
        Row(
            BENCHMARK,
            f"{count} sends: queued to all delivered",
            summary["click_to_delivered_s"],
            "s",
        ),
        Row(BENCHMARK, f"{count} sends: queued to all fetched", summary["click_to_fetched_s"], "s"),
        *(
            Row(BENCHMARK, f"sends taken by cluster {cluster}", float(taken), "sends")
            for cluster, taken in by_cluster.items()
        ),
    ]


def run(quick: bool = False, *, sends: int | None = None) -> dict:
    """200 sends by two clusters on a throwaway PostgreSQL database; quick: 40."""
    info = machine()
    with throwaway_portal("scale", database="postgresql") as environment:
        report = in_child(
            "bench.scale_out", environment, {"sends": sends or (40 if quick else 200)}
        )
    info["load_average_after"] = os.getloadavg()
    report["machine"] = info
    report["rows"] = [row.as_dict() for row in rows(report)]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sends", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="40 sends")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    parser.add_argument("--inside", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if answered_inside(arguments.inside, drive):
        return 0
    report = run(arguments.quick, sends=None if arguments.quick else arguments.sends)
    print()
    print_rows(report["rows"])
    if not (arguments.no_save or arguments.quick):
        print(f"\nwrote {save('scale-out', report).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
