"""Every benchmark in one run, one summary table: `make bench` (`python -m bench`).

    .venv/bin/python -m bench            # the full set, about 11 minutes on 2 cores
    .venv/bin/python -m bench --quick    # small sizes: a smoke run of the same code, not figures
    .venv/bin/python -m bench pdf pages  # only these

Each benchmark runs in its own process (they set up their own databases and Django settings),
writes its full report to bench/results/<name>-<date>.json, and hands its summary rows back;
the table and the machine go to bench/results/summary-<date>.json. The exit status is 1 if a
floor is missed or a benchmark fails.
"""

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time

from bench.common import ROOT, machine, now, print_rows, save

# The floors of issue 7, cheapest first, so a broken set-up shows early; the throughput runs
# last longest. `many_files` (the bare sessions without the queue) is a diagnostic of the same
# floor end_to_end holds through the queue: run by name, not by default.
BENCHMARKS = ("pdf", "latency", "end_to_end", "inbox", "scale_out", "pages", "throughput", "wan")
EXTRA = ("many_files",)


def run_one(name: str, quick: bool, out: str) -> None:
    """In the child: run one benchmark, save its report, hand back its rows."""
    report = importlib.import_module(f"bench.{name}").run(quick=quick)
    # A smoke run's figures are no figures: nothing of it goes to bench/results.
    path = None if quick else str(save(name.replace("_", "-"), report).relative_to(ROOT))
    with open(out, "w") as rows:
        json.dump({"report": path, "rows": report["rows"]}, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(BENCHMARKS + EXTRA))
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    unknown = set(arguments.names) - set(BENCHMARKS + EXTRA)
    if unknown:
        parser.error(f"no such benchmark: {', '.join(sorted(unknown))}")
    if arguments.one:
        run_one(arguments.one, arguments.quick, arguments.out)
        return 0

    started = time.monotonic()
    summary = {"date": now(), "machine": machine(), "quick": arguments.quick, "benchmarks": {}}
    rows, failed = [], []
    for name in arguments.names or BENCHMARKS:
        print(f"\n== {name} ==", flush=True)
        began = time.monotonic()
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            command = [sys.executable, "-m", "bench", "--one", name, "--out", out.name]
            if arguments.quick:
                command.append("--quick")
            finished = subprocess.run(command, cwd=ROOT, check=False)  # noqa: S603
            result = json.loads(out.read() or "{}") if finished.returncode == 0 else None
        seconds = round(time.monotonic() - began, 1)
        if result is None:
            failed.append(name)
            summary["benchmarks"][name] = {"seconds": seconds, "failed": True}
            continue
        rows += result["rows"]
        summary["benchmarks"][name] = {"seconds": seconds, "report": result["report"]}

    summary["rows"] = rows
    summary["seconds"] = round(time.monotonic() - started, 1)
    summary["machine"]["load_average_after"] = os.getloadavg()
    print()
    print_rows(rows)
    missed = [row for row in rows if row["holds"] is False]
    print(
        f"\n{len(rows)} figures, {sum(row['holds'] is True for row in rows)} floors held, "
        f"{len(missed)} missed, {len(failed)} benchmarks failed{': ' if failed else ''}"
        f"{', '.join(failed)}; {summary['seconds'] / 60:.1f} min; load average now "
        f"{summary['machine']['load_average_after'][0]:.2f}"
    )
    if not arguments.quick:
        print(f"wrote {save('summary', summary).relative_to(ROOT)}")
    return 1 if missed or failed else 0


if __name__ == "__main__":
    sys.exit(main())
