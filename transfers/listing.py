"""The transfer list's rows: the transfers a user sees, newest first, a page at a time.

Built to stay fast over a million rows: pages are read by keyset on (queued_at, id)
(`portal.core.paging.keyset_page`), never by OFFSET, and nothing counts the table. Every
queryset starts from `access.visible`. The list's filters are in `list_filters`, what its
drop-downs offer in `list_options`, its CSV export in `list_export`.
"""

from collections.abc import Iterable, Sequence

from django.db.models import QuerySet

from portal.accounts.access import visible
from portal.core import paging
from transfers.models import Route, Transfer

PAGE_SIZE = 50
ORDER = ("-queued_at", "-id")
# What a row shows of its route, joined in: no query per row.
_ROUTE = ("route__infref", "route__municipality", "route__sender", "route__receiver")


def transfers_seen(user) -> QuerySet:
    """The transfers `user` may see, with what a row shows joined in: no query per row."""
    return visible(user, Transfer.objects.select_related(*_ROUTE))


def route_label(route: Route) -> str:
    """A route in words: InfRef, sender → receiver, municipality, environment."""
    return (
        f"{route.infref.name}: {route.sender.name} → {route.receiver.name} · "
        f"{route.municipality.name} ({route.get_environment_display()})"
    )


class Cursor(paging.Cursor):
    """A position in the transfer list, at a transfer."""

    @classmethod
    def of(cls, transfer: Transfer, *, newer: bool) -> "Cursor":
        return cls(moment=transfer.queued_at, pk=transfer.pk, newer=newer)


def read_page(
    transfers: QuerySet,
    cursor: str = "",
    *,
    defer: Sequence[str] = (),
    only: Sequence[str] = (),
) -> paging.KeysetPage[Transfer]:
    """One page of `transfers`, newest first, each row read without the fields in `defer`, or
    with only those in `only` (which must name the route's fields shown too); a cursor that is
    not valid reads the first page.

    A vendor's newest transfers are found among tens of thousands: they are sorted by their
    moments and ids alone, from the indexes, not as whole rows, each with its trigger and
    receipt; then the page's rows are read by id.
    """
    keys = paging.keyset_page([paging.Source(transfers, "queued_at")], cursor, PAGE_SIZE)
    rows = Transfer.objects.select_related(*_ROUTE).defer(*defer)
    if only:
        rows = rows.only(*only)
    return paging.with_rows(keys, rows)


# States shown, for telling what changed since -------------------------------------------------


def encode_states(rows: Iterable[Transfer]) -> str:
    return ",".join(f"{transfer.pk}:{transfer.state}" for transfer in rows)


def decode_states(text: str) -> dict[int, str]:
    """`id:state,…` as sent back by a polling page; anything malformed is dropped."""
    shown = {}
    for item in text.split(",")[: PAGE_SIZE * 2]:
        pk, _sep, state = item.partition(":")
        if pk.isdigit() and len(pk) < 19 and state in Transfer.State.values:
            shown[int(pk)] = state
    return shown
