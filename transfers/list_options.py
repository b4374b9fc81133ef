"""What the transfer list's drop-downs offer: only the values of routes whose transfers the
user may see, read in one query."""

from dataclasses import dataclass, field

from django.db.models import Exists, OuterRef

from portal.accounts.access import scope_of, visible
from transfers.models import Route, RouteTally, Transfer


@dataclass(frozen=True)
class Options:
    """The values the drop-downs offer, as (id, label), sorted by label.

    There is no drop-down of routes: a superuser's would hold thousands. A route is the
    combination of the four below (and its environment); the routes page links to the list
    filtered by one route.
    """

    infref: list[tuple[int, str]] = field(default_factory=list)
    municipality: list[tuple[int, str]] = field(default_factory=list)
    sender: list[tuple[int, str]] = field(default_factory=list)
    receiver: list[tuple[int, str]] = field(default_factory=list)


def filter_options(user) -> Options:
    """One query: the routes that carry at least one transfer the user may see."""
    # The transfer's own rule decides, so the options never offer more than the list would show
    # (KOMBIT sees every route but no transfer). Only routes the user may see can qualify
    # (whoever sees a transfer sees its route), and each is asked whether one of its transfers
    # is seen. Asked in the select list, the question stays a subquery per route that stops at
    # the first transfer; asked in WHERE, PostgreSQL turned it into a join that read every
    # transfer the user may see (bench/pages.py measures both at a million rows).
    seen = Exists(visible(user, Transfer.objects.filter(route_id=OuterRef("pk"))))
    if scope_of(user).is_superuser:
        # A superuser sees every transfer: a route qualifies when it carries one, which its
        # tallies (RouteTally, kept by triggers) say from a table of a few rows per route
        # instead of a look into the transfers' index for each of thousands of routes.
        seen = Exists(RouteTally.objects.filter(route_id=OuterRef("pk"), count__gt=0))
    # Read as tuples, not models: a superuser's candidates are every route, thousands of them.
    candidates = (
        visible(user, Route.objects.all())
        .annotate(seen=seen)
        .order_by()
        .values_list(
            "seen",
            "infref_id",
            "infref__name",
            "sender_id",
            "sender__name",
            "receiver_id",
            "receiver__name",
            "municipality_id",
            "municipality__name",
            "municipality__municipality_code",
        )
    )
    infrefs, municipalities, senders, receivers = {}, {}, {}, {}
    for (
        seen_one,
        infref_id,
        infref,
        sender_id,
        sender,
        receiver_id,
        receiver,
        municipality_id,
        municipality,
        code,
    ) in candidates:
        if seen_one:
            infrefs[infref_id] = infref
            municipalities[municipality_id] = f"{municipality} ({code})"
            senders[sender_id] = sender
            receivers[receiver_id] = receiver

    def by_label(values: dict[int, str]) -> list[tuple[int, str]]:
        return sorted(values.items(), key=lambda item: (item[1].casefold(), item[0]))

    return Options(
        infref=by_label(infrefs),
        municipality=by_label(municipalities),
        sender=by_label(senders),
        receiver=by_label(receivers),
    )
