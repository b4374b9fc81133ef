"""`python -m bench.scale`: fill the portal that DATABASE_URL and the other settings name, as
`manage.py` finds it (see bench/scale/__init__.py). Django is set up before the fill's modules
are imported: they import the portal's models."""

import argparse
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.scale.fill import Filled


def main(argv: list[str] | None = None) -> int:
    from bench.scale import Refused
    from bench.scale.fill import SEED, fill

    parser = argparse.ArgumentParser(
        prog="python -m bench.scale",
        description="Fill an empty portal with vendors, IT systems, integrations, routes and a "
        "year of transfers, for benchmarks. Refuses a database that has transfers unless --clear.",
    )
    parser.add_argument("--transfers", type=int, default=1_000_000)
    parser.add_argument("--vendors", type=int, default=50)
    parser.add_argument("--routes", type=int, default=5000)
    parser.add_argument("--days", type=int, default=365, help="history queued over this")
    parser.add_argument("--seed", type=int, default=SEED, help="the same seed, the same data")
    parser.add_argument(
        "--clear",
        "--force",
        action="store_true",
        dest="clear",
        help="empty the portal first: every user, vendor, IT system, route and transfer "
        "goes (the municipalities and KOMBIT stay)",
    )
    try:
        filled = fill(**vars(parser.parse_args(argv)))
    except Refused as refusal:
        print(refusal, file=sys.stderr)
        return 1
    print(report(filled))
    return 0


def report(filled: "Filled") -> str:
    from bench.scale.logins import OPERATOR, SUPERUSER, architect_username, vendor_username
    from transfers.models import Transfer

    states = set(Transfer.State.values)
    lines = [
        f"Filled {filled.vendor} in {filled.seconds:.1f} s (everything up to the routes in "
        f"{filled.world_seconds:.1f} s):"
    ]
    for label, value in filled.counts.items():
        if label not in states:
            lines.append(f"  {label:<24} {value:>10,}")
    by_state = ", ".join(f"{state} {filled.counts[state]:,}" for state in sorted(states))
    lines.append(f"  by state: {by_state}")
    lines.append(
        f"  logins (no password: set one to look around): {SUPERUSER}, {OPERATOR}, "
        f"{vendor_username(1)} (staff of the first vendor), {architect_username('751')} (Aarhus)"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    django.setup()
    sys.exit(main())
