"""Queue latency on the embedded default: a 1 KiB send from the click to delivered and to fetched.

    .venv/bin/python -m bench.latency [--sends 20] [--no-save]

A throwaway portal as `make run` has it (SQLite, the ORM queue with its doorbell,
portal/core/queue_broker.py, `manage.py qcluster` with the default worker settings, `manage.py
serviceplatform` routing each trigger at once: the real platform's own time to route is not the
portal's), one route to Aarhus. Each send is the upload form posted through Django's test Client,
logged in as the vendor's staff (the real view: form, queue_send, audit record, redirect), one
after another: the next click comes once the previous file is fetched. Timed from just before the
POST to the transfer's `finished_at` (receipt recorded: delivered) and to the ReceivedFile's
`received_at` (stored and recorded by the receiving IT system's fetch), with each step in between
from the row's own timestamps. Then, with nothing to do, what a cluster asks of the queue per
second, with the doorbell and with django-q2's plain ORM broker (bench/counted_cluster.py): the
doorbell must not buy its speed with more polling. See bench/README.md.
"""

import argparse
import os
import statistics
import sys
from pathlib import Path

from bench.common import ROOT, Row, machine, now, print_rows, save, service_cluster
from bench.end_to_end import (
    answered_inside,
    cluster,
    fetched_files,
    in_child,
    seconds,
    sending_integration,
    show_logs_on_failure,
    simulator,
    start_portal,
    throwaway_portal,
    wait_until,
)

BENCHMARK = "latency"
FLOOR_SECONDS = 0.5  # median, click to fetched
SIZE = 1024
AARHUS = "751"
IDLE_SETTLE_SECONDS = 5  # a cluster's start-up queries stay out of its idle count
IDLE_SECONDS = 20
BROKERS = ("doorbell", "plain")
# Two counts taken 20 s apart are each a poll or so off: 5 % is that, not more polling.
IDLE_TOLERANCE = 1.05


def one_send(client, route, number: int) -> dict:
    """Post the form, then wait for the file to be fetched; the timeline of that one send."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse
    from django.utils import timezone

    from transfers.models import Transfer

    body = f"kommunekode;cpr;navn\r\n{AARHUS};0101011234;Borger {number}\r\n".encode()
    data = SimpleUploadedFile("borgere.csv", body.ljust(SIZE, b"x"), "text/csv")
    click = timezone.now()
    response = client.post(reverse("transfers:send"), {"route": route.pk, "data_file": data})
    if response.status_code != 302 or "/transfers/" not in response["Location"]:
        raise RuntimeError(f"the send form answered {response.status_code}")
    transfer_id = int(response["Location"].rstrip("/").rsplit("/", 1)[1])

    def fetched():
        transfer = Transfer.objects.get(pk=transfer_id)
        if transfer.state == Transfer.State.FAILED:
            raise RuntimeError(f"transfer {transfer_id} failed: {transfer.last_error}")
        received = fetched_files([transfer]).get(transfer_id)
        return (transfer, received) if received else None

    transfer, received = wait_until(fetched, 60, interval=0.05, what=f"send {number} fetched")
    if transfer.attempts != 1 or received.sha256 != transfer.sha256 or received.size != SIZE:
        raise RuntimeError(f"send {number} did not arrive intact in one attempt")
    return {
        "click_to_delivered_s": seconds(transfer.finished_at, click),
        "click_to_fetched_s": seconds(received.received_at, click),
        "steps_s": {
            "click_to_queued": seconds(transfer.queued_at, click),
            "in_queue": seconds(transfer.started_at, transfer.queued_at),
            "upload_and_trigger": seconds(transfer.sent_at, transfer.started_at),
            "receipt": seconds(transfer.finished_at, transfer.sent_at),
            "fetch": seconds(received.received_at, transfer.finished_at),
        },
    }


def drive(options: dict) -> dict:
    start_portal()
    from django.conf import settings

    with show_logs_on_failure(Path(settings.DATA_DIR)):
        return _drive(options)


def _drive(options: dict) -> dict:
    from django.conf import settings
    from django.test import Client

    work = Path(settings.DATA_DIR)
    sends = []
    # The platform's own wait before routing is not the portal's time: routed at once here.
    with simulator(work / "serviceplatform", delay=0) as sim:
        integration = sending_integration([AARHUS], sim.port, sim.host_key)
        client = Client(SERVER_NAME="localhost")
        client.force_login(integration.staff)
        with cluster(output=work / "qcluster.log"):
            for number in range(options["sends"]):
                sends.append(one_send(client, integration.routes[AARHUS], number))
                print(
                    f"  send {number + 1:2}: delivered {sends[-1]['click_to_delivered_s']:5.2f} s, "
                    f"fetched {sends[-1]['click_to_fetched_s']:5.2f} s  {sends[-1]['steps_s']}",
                    flush=True,
                )
    idle = idle_queries_per_second(work)
    return {
        "date": now(),
        "settings": {
            "sends": options["sends"],
            "size_bytes": SIZE,
            "database": settings.DATABASES["default"]["ENGINE"],
            "workers": settings.Q_CLUSTER["workers"],
            "poll_s": settings.Q_CLUSTER["poll"],
        },
        "sends": sends,
        "summary": summarise(sends),
        "idle_queries_per_s": idle,
    }


def idle_queries_per_second(work: Path) -> dict[str, float]:
    """What a cluster with nothing to do asks of the queue's table per second: the portal's
    queue with its doorbell, and django-q2's plain ORM broker (bench/counted_cluster.py). The
    two idle side by side, each counting its own processes' queries."""
    import contextlib
    import time

    counts = {broker: work / f"idle-queries-{broker}" for broker in BROKERS}
    with contextlib.ExitStack() as clusters:
        for broker, path in counts.items():
            environment = {"BENCH_QUERY_COUNT": str(path)}
            if broker == "plain":
                environment["BENCH_PLAIN_ORM"] = "1"
            clusters.enter_context(
                service_cluster(env=environment, command=("-m", "bench.counted_cluster"))
            )
        time.sleep(IDLE_SETTLE_SECONDS)
        before = {broker: int(path.read_text()) for broker, path in counts.items()}
        started = time.monotonic()
        time.sleep(IDLE_SECONDS)
        after = {broker: int(path.read_text()) for broker, path in counts.items()}
        seconds = time.monotonic() - started
    return {broker: round((after[broker] - before[broker]) / seconds, 2) for broker in BROKERS}


def summarise(sends: list[dict]) -> dict:
    summary = {}
    for measure in ("click_to_delivered_s", "click_to_fetched_s"):
        values = [send[measure] for send in sends]
        summary[measure] = {"median": statistics.median(values), "worst": max(values)}
    summary["steps_median_s"] = {
        step: statistics.median(send["steps_s"][step] for send in sends)
        for step in sends[0]["steps_s"]
    }
    return summary


def rows(report: dict) -> list[Row]:
    delivered = report["summary"]["click_to_delivered_s"]
    fetched = report["summary"]["click_to_fetched_s"]
    count = report["settings"]["sends"]
    return [
        Row(
            BENCHMARK,
            f"1 KiB send, click to delivered, median of {count}",
            delivered["median"],
            "s",
        ),
        Row(BENCHMARK, "1 KiB send, click to delivered, worst", delivered["worst"], "s"),
        Row(
            BENCHMARK,
            f"1 KiB send, click to fetched, median of {count}",
            fetched["median"],
            "s",
            f"< {FLOOR_SECONDS:g} s",
            fetched["median"] < FLOOR_SECONDS,
        ),
        Row(BENCHMARK, "1 KiB send, click to fetched, worst", fetched["worst"], "s"),
        Row(
            BENCHMARK,
            "idle cluster: queue queries per second, plain ORM broker",
            report["idle_queries_per_s"]["plain"],
            "/s",
        ),
        Row(
            BENCHMARK,
            "idle cluster: queue queries per second, with the doorbell",
            report["idle_queries_per_s"]["doorbell"],
            "/s",
            "<= plain (+5 %)",
            report["idle_queries_per_s"]["doorbell"]
            <= report["idle_queries_per_s"]["plain"] * IDLE_TOLERANCE,
        ),
    ]


def run(quick: bool = False, *, sends: int | None = None) -> dict:
    """20 sends one after another in a throwaway portal; quick: 5."""
    info = machine()
    with throwaway_portal("latency") as environment:
        report = in_child("bench.latency", environment, {"sends": sends or (5 if quick else 20)})
    info["load_average_after"] = os.getloadavg()
    report["machine"] = info
    report["rows"] = [row.as_dict() for row in rows(report)]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sends", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="5 sends")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    parser.add_argument("--inside", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if answered_inside(arguments.inside, drive):
        return 0
    report = run(arguments.quick, sends=None if arguments.quick else arguments.sends)
    print()
    print_rows(report["rows"])
    if not (arguments.no_save or arguments.quick):
        print(f"\nwrote {save('latency', report).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
