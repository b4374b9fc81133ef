"""One fill, in order: what was asked checked, the world planned, the traffic written, and the
database settled after."""

import time
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from bench.scale import Refused, database
from bench.scale.logins import SUPERUSER
from bench.scale.traffic import WRITTEN, fill_traffic
from bench.scale.world import Planner
from transfers.models import Route, Transfer

SEED = 20260301


@dataclass
class Filled:
    """What a fill made, and how long it took."""

    vendor: str  # the database's
    counts: dict[str, int]  # by what was made, and the transfers by state
    seconds: float
    world_seconds: float  # of which everything up to the routes


def fill(
    *,
    transfers: int = 1_000_000,
    vendors: int = 50,
    routes: int = 5000,
    days: int = 365,
    seed: int = SEED,
    clear: bool = False,
) -> Filled:
    """Fill the portal; a portal with transfers or an earlier fill is refused unless `clear`,
    which empties it first (every user, vendor, IT system, route and transfer goes; the
    municipalities and KOMBIT stay)."""
    if transfers < 0 or min(vendors, routes, days) < 1:
        raise Refused("The counts must be positive.")
    if routes < 2 * vendors:
        raise Refused("Ask for at least two routes per vendor: one per integration.")
    users = get_user_model().objects
    if (Transfer.objects.exists() or users.filter(username=SUPERUSER).exists()) and not clear:
        raise Refused(
            "The database already has transfers or an earlier fill; --clear empties it first."
        )
    started, now = time.monotonic(), timezone.now()
    # Emptied with the counting triggers set aside too: a million deletes would each run them.
    with database.relaxed_writes():
        with transaction.atomic(), database.counted_after():
            if clear:
                database.empty()
            planner = Planner(vendors=vendors, routes=routes, days=days, seed=seed, now=now)
            world = planner.build()
            if transfers and not world.lanes:
                raise Refused("No route carries files; ask for more routes.")
            world_seconds = time.monotonic() - started
            tables = [model._meta.db_table for model in WRITTEN]
            with database.indexes_set_aside(tables):
                made = fill_traffic(world, transfers=transfers, days=days, seed=seed, now=now)
        database.settle((*WRITTEN, Route, *database.COUNTS))
    return Filled(
        vendor=connection.vendor,
        counts={**world.counts, **made},
        seconds=time.monotonic() - started,
        world_seconds=world_seconds,
    )
