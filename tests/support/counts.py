"""What the database keeps counted of the transfers, and the same counted from the transfers
themselves: the two agree however the transfers are written.

- per hour and state (TransferHour): `hours_kept()` and `hours_counted()`;
- per route and state (RouteTally): `tallies_kept()` and `tallies_counted()`.
"""

from collections import Counter

from django.db.models import Count

from transfers.models import RouteTally, Transfer, TransferHour


def hours_kept() -> Counter:
    """What the database keeps: (hour, state) -> (count, bytes), empty hours left out."""
    return Counter(
        {
            (row.hour, row.state): (row.count, row.bytes)
            for row in TransferHour.objects.all()
            if row.count or row.bytes
        }
    )


def hours_counted() -> Counter:
    """The same, counted from the transfers themselves."""
    totals: dict = {}
    for queued_at, state, size in Transfer.objects.values_list("queued_at", "state", "size"):
        key = (queued_at.replace(minute=0, second=0, microsecond=0), state)
        count, total = totals.get(key, (0, 0))
        totals[key] = (count + 1, total + size)
    return Counter(totals)


def tallies_kept() -> Counter:
    """What the database keeps: (route, state) -> count, empty tallies left out."""
    return Counter(
        {(row.route_id, row.state): row.count for row in RouteTally.objects.filter(count__gt=0)}
    )


def tallies_counted() -> Counter:
    """The same, counted from the transfers themselves."""
    rows = Transfer.objects.order_by().values_list("route_id", "state").annotate(n=Count("id"))
    return Counter({(route_id, state): n for route_id, state, n in rows})
