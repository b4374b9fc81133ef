"""Server time of the portal's pages over a million transfers, on SQLite and on PostgreSQL.

    .venv/bin/python -m bench.pages [--transfers 1000000] [--requests 50] [--database sqlite]

Per database (a fresh SQLite file; a fresh PostgreSQL database `fdd_bench_pages`, dropped after):
migrate, fill a small portal (`python -m bench.scale --transfers 10000 --routes 500`) and count
the queries of every page, then fill the full one (1,000,000 transfers, 50 vendors, 5,000
routes, a year; both databases' fills at once) and time every page: a warm-up, then
`--requests` requests through Django's test client in one process with DEBUG off, timed around
the request (server time: middleware, view, queries, template; no network). The figures per
page are the median and 95th percentile in ms, and the queries at both sizes. Floors (issue 20):
p95 < 50 ms for every page, < 100 ms for a search for a rare part of a name (as a vendor and as
the superuser, whose list shows the day charts), and the same number of queries at both sizes
(a page whose queries grow with the rows has an N+1). See bench/README.md.
"""

import argparse
import contextlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

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
)

BENCHMARK = "pages"
FLOOR_MS = 50.0
SEARCH_FLOOR_MS = 100.0  # a search for a rare part of a name, through the names' index
DATABASES = ("sqlite", "postgresql")
POSTGRES_NAME = "fdd_bench_pages"
FULL = {"transfers": 1_000_000, "vendors": 50, "routes": 5000, "days": 365}
SMALL = {"transfers": 10_000, "vendors": 50, "routes": 500, "days": 365}
QUICK_FULL = {"transfers": 20_000, "vendors": 20, "routes": 400, "days": 60}
QUICK_SMALL = {"transfers": 2000, "vendors": 20, "routes": 100, "days": 60}
WARM_UP = 3
SMALL_REQUESTS = 10  # over the small fill, for comparison: what a page costs apart from the rows


# -- in the child: the pages, measured ------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    name: str
    user: str  # vendor, architect, operator or superuser
    url: str
    expect: str  # text the page must show, so a page that renders the wrong thing is caught
    floor_ms: float = FLOOR_MS  # for its p95


def pages_of(users: dict) -> list[Page]:
    """The pages to measure, with what each should show, read from the filled database."""
    from django.urls import reverse

    from portal.accounts.models import Organisation
    from transfers import listing
    from transfers.models import Route, Transfer

    vendor = users["vendor"]
    seen = listing.transfers_seen(vendor).order_by(*listing.ORDER)
    newest = seen.first()
    # Two hundred pages back, or as far as a small portal goes.
    total = seen.count()
    deep_at = seen[max(0, min(200 * listing.PAGE_SIZE, total - 2 * listing.PAGE_SIZE))]
    cursor = listing.Cursor.of(deep_at, newer=False).encode()
    after = seen.filter(queued_at__lte=deep_at.queued_at).exclude(pk__gte=deep_at.pk).first()
    delivered = seen.filter(state=Transfer.State.DELIVERED).exclude(receipt_xml="").first()
    # A file looked for by its name: the words before its number, a few files of one day.
    wanted = seen[min(total - 1, 100 * listing.PAGE_SIZE)]
    fragment = wanted.original_name.rsplit("_", 1)[0]
    search_url = f"{reverse('transfers:list')}?{urlencode({'q': fragment})}"
    municipality = Organisation.objects.get(pk=users["municipality"])
    failed = (
        Transfer.objects.filter(route__municipality=municipality, state=Transfer.State.FAILED)
        .order_by(*listing.ORDER)
        .first()
    )
    route = Route.objects.filter(sender__vendor__memberships__user=vendor).order_by(
        "infref__number", "municipality__name"
    )
    list_url = reverse("transfers:list")
    return [
        Page("transfer list", "vendor", list_url, newest.original_name),
        Page("transfer list", "superuser", list_url, Transfer.objects.latest("pk").original_name),
        Page(
            "transfer list, municipality + failed",
            "superuser",
            f"{list_url}?{urlencode({'municipality': municipality.pk, 'state': 'failed'})}",
            failed.original_name if failed else municipality.name,
        ),
        Page(
            "transfer list, name search",
            "vendor",
            search_url,
            wanted.original_name,
            SEARCH_FLOOR_MS,
        ),
        Page(
            "transfer list, name search",
            "superuser",
            search_url,
            wanted.original_name,
            SEARCH_FLOOR_MS,
        ),
        Page(
            "transfer list, page 200 by cursor",
            "vendor",
            f"{list_url}?{urlencode({'cursor': cursor})}",
            after.original_name if after else "",
        ),
        Page(
            "transfer detail",
            "vendor",
            reverse("transfers:detail", args=[delivered.pk]),
            delivered.remote_name,
        ),
        Page("dashboard", "vendor", reverse("dashboard"), "<svg"),
        Page("dashboard", "architect", reverse("dashboard"), "<svg"),
        Page("dashboard", "operator", reverse("dashboard"), "<svg"),
        Page("dashboard", "superuser", reverse("dashboard"), "<svg"),
        Page(
            "municipal review",
            "architect",
            reverse("review:overview"),
            municipality.name,
        ),
        Page("routes", "vendor", reverse("transfers:routes"), route.first().infref.name),
    ]


def logged_in(user):
    """A test client with a session for `user`, past the two-step login where the portal asks
    for one (a confirmed authenticator device and a session that has used it)."""
    from django.apps import apps
    from django.test import Client

    client = Client()
    client.force_login(user)
    if apps.is_installed("django_otp.plugins.otp_totp"):
        from django_otp import DEVICE_ID_SESSION_KEY
        from django_otp.plugins.otp_totp.models import TOTPDevice

        device, _made = TOTPDevice.objects.get_or_create(
            user=user, name="bench", defaults={"confirmed": True}
        )
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
    return client


def the_users() -> dict:
    """The logins the fill made; the architect of the municipality with the most routes."""
    from django.contrib.auth import get_user_model
    from django.db.models import Count

    from bench.scale import logins
    from portal.accounts.models import Organisation

    busiest = (
        Organisation.objects.filter(kind=Organisation.Kind.MUNICIPALITY)
        .annotate(routes_count=Count("routes"))
        .order_by("-routes_count", "municipality_code")
        .first()
    )
    users = get_user_model().objects
    return {
        "vendor": users.get(username=logins.vendor_username(1)),
        "architect": users.get(username=logins.architect_username(busiest.municipality_code)),
        "operator": users.get(username=logins.OPERATOR),
        "superuser": users.get(username=logins.SUPERUSER),
        "municipality": busiest.pk,
    }


def fetch(client, page: Page):
    response = client.get(page.url)
    if response.status_code != 200:
        raise RuntimeError(f"{page.name} ({page.user}): HTTP {response.status_code}")
    return response


def count_queries(client, page: Page) -> int:
    """The queries one request of `page` makes."""
    from django.db import connection

    from portal.core.middleware import IdleSessionMiddleware

    # A session is saved again once a minute of requests (IdleSessionMiddleware): a query of the
    # moment, not of the page, which made the routes page count 18 in one run and 17 in another.
    # Marked seen just now, the session is not due during the request counted.
    session = client.session
    session[IdleSessionMiddleware.KEY] = int(time.time())
    session.save()
    queries = []

    def counted(run, sql, *rest):
        queries.append(sql)
        return run(sql, *rest)

    with connection.execute_wrapper(counted):
        fetch(client, page)
    return len(queries)


def measure(requests: int) -> dict:
    """Every page: its queries, and with `requests` its server times after a warm-up."""

    users = the_users()
    roles = ("vendor", "architect", "operator", "superuser")
    clients = {role: logged_in(users[role]) for role in roles}
    results = []
    for page in pages_of(users):
        client = clients[page.user]
        for _ in range(WARM_UP):
            body = fetch(client, page).content.decode()
        if page.expect not in body:
            raise RuntimeError(f"{page.name} ({page.user}) does not show {page.expect!r}")
        queries = count_queries(client, page)
        seconds = []
        for _ in range(requests):
            started = time.perf_counter()
            fetch(client, page)
            seconds.append(time.perf_counter() - started)
        results.append(
            {
                "page": page.name,
                "user": page.user,
                "url": page.url,
                "queries": queries,
                "floor_ms": page.floor_ms,
                "ms": [round(value * 1000, 2) for value in seconds],
            }
        )
    return {"pages": results}


def inside(options: dict) -> dict:
    """In the child, with the bench database's environment: Django up, the pages measured."""
    import django

    django.setup()
    from django.test.utils import override_settings

    # The production storage needs collectstatic's manifest; the URLs it makes cost the same.
    storage = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    from django.conf import settings

    with override_settings(STORAGES={**settings.STORAGES, "staticfiles": storage}):
        return measure(options["requests"])


# -- in the parent: databases, fills and figures ------------------------------------------------


@contextlib.contextmanager
def bench_portal(database: str) -> Iterator[dict[str, str]]:
    """The environment of a portal of its own, DEBUG off: its folder and database made here,
    both gone afterwards."""
    workspace = Path(tempfile.mkdtemp(prefix="fdd-bench-pages-"))
    try:
        with own_database(database, workspace, POSTGRES_NAME) as url:
            yield own_environment(
                DJANGO_SETTINGS_MODULE="portal.settings",
                **in_service(workspace),
                ALLOWED_HOSTS="testserver",
                PORTAL_DATA_DIR=str(workspace / "data"),
                LOG_LEVEL="WARNING",
                PYTHONUNBUFFERED="1",
                DATABASE_URL=url,
            )
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


def timed(environment: dict[str, str], *arguments: str) -> float:
    """Our interpreter with `arguments` and the bench's environment; its wall time in seconds."""
    started = time.monotonic()
    subprocess.run(  # noqa: S603 - our own interpreter, manage.py or our module
        [sys.executable, *arguments], cwd=ROOT, env=environment, check=True
    )
    return time.monotonic() - started


def manage(environment: dict[str, str], *arguments: str) -> float:
    return timed(environment, "manage.py", *arguments)


def fill_portal(environment: dict[str, str], size: dict, clear: bool = False) -> float:
    """The portal filled by `python -m bench.scale` to `size`; the fill's wall time."""
    arguments = [f"--{name}={value}" for name, value in size.items()]
    return timed(environment, "-m", "bench.scale", *arguments, *(["--clear"] if clear else []))


def in_child(environment: dict[str, str], options: dict) -> dict:
    """`python -m bench.pages --inside`: Django is configured once per process."""
    with tempfile.NamedTemporaryFile(suffix=".json") as report:
        subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "bench.pages", "--inside", json.dumps(options), report.name],
            cwd=ROOT,
            env=environment,
            check=True,
        )
        return json.loads(Path(report.name).read_text())


def percentile(values: list[float], share: float) -> float:
    """Nearest rank: the smallest value at least `share` of the values are at or below."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def small_portal(environment: dict[str, str], size: dict) -> float:
    """A migrated portal filled to `size`; the fill's wall time."""
    manage(environment, "migrate", "--no-input", "-v0")
    return fill_portal(environment, size)


def side_by_side(
    environments: dict[str, dict[str, str]], step: Callable[[dict[str, str]], float]
) -> dict[str, float]:
    """`step` on every database at once, what each returned. Each step is a process of its own
    that waits on its database or its disk part of the time: the full fills one after the other
    took four and a half of make bench's minutes. The pages are timed one database at a time."""
    with ThreadPoolExecutor(len(environments)) as pool:
        started = {
            database: pool.submit(step, environment)
            for database, environment in environments.items()
        }
        return {database: future.result() for database, future in started.items()}


def on_databases(
    databases: tuple[str, ...], full: dict, small: dict, requests: int
) -> Iterator[tuple[str, dict]]:
    """Each database's figures: the small portals made side by side and their queries counted
    one by one, the full fills made side by side, then the pages timed one database after the
    other."""
    with contextlib.ExitStack() as stack:
        environments = {
            database: stack.enter_context(bench_portal(database)) for database in databases
        }
        print(f"{', '.join(databases)}: migrating, filling {small['transfers']:,}", flush=True)
        small_seconds = side_by_side(
            environments, lambda environment: small_portal(environment, small)
        )
        counted = {}
        for database, environment in environments.items():
            print(f"{database}: counting the queries of every page", flush=True)
            counted[database] = in_child(environment, {"requests": SMALL_REQUESTS})
        print(f"{', '.join(databases)}: filling {full['transfers']:,} transfers each", flush=True)
        full_seconds = side_by_side(
            environments, lambda environment: fill_portal(environment, full, clear=True)
        )
        for database, environment in environments.items():
            print(f"{database}: {requests} requests per page", flush=True)
            timed = in_child(environment, {"requests": requests})
            yield (
                database,
                figures(counted[database], timed, small_seconds[database], full_seconds[database]),
            )


def figures(counted: dict, timed: dict, small_seconds: float, full_seconds: float) -> dict:
    pages = []
    for few, many in zip(counted["pages"], timed["pages"], strict=True):
        ms = many["ms"]
        pages.append(
            {
                "page": many["page"],
                "user": many["user"],
                "url": many["url"],
                "median_ms": round(statistics.median(ms), 1),
                # The same page over the small fill: what the page costs apart from the rows.
                "median_ms_small": round(statistics.median(few["ms"]), 1),
                "p95_ms": round(percentile(ms, 0.95), 1),
                "floor_p95_ms": many["floor_ms"],
                "max_ms": max(ms),
                "queries": many["queries"],
                "queries_small": few["queries"],
                "ms": ms,
            }
        )
    return {
        "fill_seconds": {"small": round(small_seconds, 1), "full": round(full_seconds, 1)},
        "pages": pages,
    }


def rows_of(report: dict) -> list[Row]:
    rows = []
    full = report["settings"]["full"]["transfers"]
    for database, result in report["databases"].items():
        rows.append(
            Row(
                BENCHMARK,
                f"{database}: the fill, {full:,} transfers, side by side",
                result["fill_seconds"]["full"],
                "s",
            )
        )
        for page in result["pages"]:
            label = f"{database}: {page['page']} ({page['user']})"
            rows.append(
                Row(
                    BENCHMARK,
                    f"{label}, p95",
                    page["p95_ms"],
                    "ms",
                    f"< {page['floor_p95_ms']:g}",
                    page["p95_ms"] < page["floor_p95_ms"],
                )
            )
            rows.append(
                Row(
                    BENCHMARK,
                    f"{label}, queries",
                    page["queries"],
                    "queries",
                    f"= {page['queries_small']} (small)",
                    page["queries"] == page["queries_small"],
                )
            )
    return rows


def benchmark(
    full: dict, small: dict, requests: int, databases: tuple[str, ...] = DATABASES
) -> dict:
    report = {
        "date": now(),
        "machine": machine(),
        "settings": {
            "small_requests": SMALL_REQUESTS,
            "full": full,
            "small": small,
            "requests": requests,
            "warm_up": WARM_UP,
            "floor_p95_ms": FLOOR_MS,
            "floor_p95_ms_search": SEARCH_FLOOR_MS,
        },
        "databases": {},
    }
    for database, figures_of_database in on_databases(databases, full, small, requests):
        report["databases"][database] = figures_of_database
    report["machine"]["load_average_after"] = os.getloadavg()
    report["rows"] = [row.as_dict() for row in rows_of(report)]
    return report


def run(quick: bool = False) -> dict:
    """The report `python -m bench` collects: the full fills, or with `quick` small ones."""
    if quick:
        return benchmark(QUICK_FULL, QUICK_SMALL, 10)
    return benchmark(FULL, SMALL, 50)


def print_report(report: dict) -> None:
    settings = report["settings"]
    print(
        f"\n{settings['full']['transfers']:,} transfers; {settings['requests']} requests per "
        f"page after {settings['warm_up']} to warm up; server time in ms. 'small': the median "
        f"over {settings['small']['transfers']:,} transfers, where the queries are counted too."
    )
    for database, result in report["databases"].items():
        fills = result["fill_seconds"]
        print(
            f"\n{database}: filled in {fills['full']:.0f} s ({fills['small']:.0f} s the small one)"
        )
        print(f"{'page':38} {'user':10} {'median':>7} {'p95':>7} {'small':>7} {'queries':>8}")
        for page in result["pages"]:
            verdict = "" if page["p95_ms"] < page["floor_p95_ms"] else "  p95 MISSED"
            if page["queries"] != page["queries_small"]:
                verdict += f"  {page['queries_small']} queries when small"
            print(
                f"{page['page']:38} {page['user']:10} {page['median_ms']:7.1f} "
                f"{page['p95_ms']:7.1f} {page['median_ms_small']:7.1f} {page['queries']:8}"
                f"{verdict}"
            )
    print()
    print_rows(report["rows"])
    print(f"load average after {report['machine']['load_average_after'][0]:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transfers", type=int, help="in the full fill (1,000,000)")
    parser.add_argument("--requests", type=int, help="timed per page (50; 10 with --quick)")
    parser.add_argument("--database", choices=DATABASES, action="append", help="(both)")
    parser.add_argument("--quick", action="store_true", help="small fills, for a smoke run")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    parser.add_argument("--inside", nargs=2, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.inside:
        options, out = arguments.inside
        Path(out).write_text(json.dumps(inside(json.loads(options))))
        return 0
    full, small = (QUICK_FULL, QUICK_SMALL) if arguments.quick else (FULL, SMALL)
    if arguments.transfers:
        full = {**full, "transfers": arguments.transfers}
    requests = arguments.requests or (10 if arguments.quick else 50)
    report = benchmark(full, small, requests, tuple(arguments.database or DATABASES))
    print_report(report)
    if not (arguments.no_save or arguments.quick):
        print(f"wrote {save(BENCHMARK, report).relative_to(ROOT)}")
    return 0 if all(row["holds"] is not False for row in report["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
