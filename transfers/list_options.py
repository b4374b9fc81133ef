"""What the transfer list's drop-downs offer: only the values of routes whose transfers the
user may see."""

from dataclasses import dataclass, field

from django.db.models import CharField, Exists, F, OuterRef, Value

from gdpr.models import InfRef
from portal.accounts.access import scope_of, visible
from portal.accounts.models import Organisation
from portal.itsystems.models import ItSystem
from transfers.models import Route, RouteTally, Transfer

# Which table a name in `_names` comes from.
INFREF, SYSTEM, MUNICIPALITY = "infref", "system", "municipality"


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
    """The values of the routes that carry at least one transfer the user may see: one query
    for the routes, one each for the names of their InfRefs, IT systems and municipalities."""
    # The transfer's own rule decides, so the options never offer more than the list would show
    # (KOMBIT sees every route but no transfer). Only routes the user may see can qualify
    # (whoever sees a transfer sees its route), and each is asked whether one of its transfers
    # is seen. Asked in the select list, the question stays a subquery per route that stops at
    # the first transfer; asked in WHERE, PostgreSQL turned it into a join that read every
    # transfer the user may see (bench/pages.py measures both at a million rows).
    scope = scope_of(user)
    seen = Exists(visible(user, Transfer.objects.filter(route_id=OuterRef("pk"))))
    if scope.is_superuser or not scope.is_kombit:
        # A superuser sees every transfer, and anyone else but KOMBIT every transfer on a route
        # they see (both rules ask the same of the route: access._routes_seen and
        # _transfers_seen): a route qualifies when it carries one, which its tallies
        # (RouteTally, kept by triggers) say from a table of a few rows per route instead of a
        # look into the transfers' index, joined to the IT systems, for each route.
        seen = Exists(RouteTally.objects.filter(route_id=OuterRef("pk"), count__gt=0))
    # Read as ids, not models nor names: a superuser's candidates are every route, thousands
    # of them, over a few hundred IT systems, InfRefs and municipalities, named after.
    candidates = (
        visible(user, Route.objects.all())
        .annotate(seen=seen)
        .order_by()
        .values_list("seen", "infref_id", "sender_id", "receiver_id", "municipality_id")
    )
    infref_ids, municipality_ids, sender_ids, receiver_ids = set(), set(), set(), set()
    for seen_one, infref_id, sender_id, receiver_id, municipality_id in candidates:
        if seen_one:
            infref_ids.add(infref_id)
            municipality_ids.add(municipality_id)
            sender_ids.add(sender_id)
            receiver_ids.add(receiver_id)
    infrefs, systems, municipalities = _names(
        infref_ids, sender_ids | receiver_ids, municipality_ids
    )

    def by_label(values: dict[int, str]) -> list[tuple[int, str]]:
        return sorted(values.items(), key=lambda item: (item[1].casefold(), item[0]))

    return Options(
        infref=by_label(infrefs),
        municipality=by_label(municipalities),
        sender=by_label({pk: systems[pk] for pk in sender_ids}),
        receiver=by_label({pk: systems[pk] for pk in receiver_ids}),
    )


def _names(
    infref_ids: set[int], system_ids: set[int], municipality_ids: set[int]
) -> tuple[dict[int, str], dict[int, str], dict[int, str]]:
    """The labels of these InfRefs, IT systems and municipalities, by id: one query for the
    three, each a round trip to the database of its own before."""
    blank = Value("", output_field=CharField())
    infrefs = InfRef.objects.filter(pk__in=infref_ids).annotate(part=Value(INFREF), code=blank)
    systems = ItSystem.objects.filter(pk__in=system_ids).annotate(part=Value(SYSTEM), code=blank)
    municipalities = Organisation.objects.filter(pk__in=municipality_ids).annotate(
        part=Value(MUNICIPALITY), code=F("municipality_code")
    )
    columns = ("part", "pk", "name", "code")
    named = (
        infrefs.order_by()
        .values_list(*columns)
        .union(
            systems.order_by().values_list(*columns),
            municipalities.order_by().values_list(*columns),
            all=True,
        )
    )
    found: dict[str, dict[int, str]] = {INFREF: {}, SYSTEM: {}, MUNICIPALITY: {}}
    for part, pk, name, code in named:
        found[part][pk] = f"{name} ({code})" if part == MUNICIPALITY else name
    return found[INFREF], found[SYSTEM], found[MUNICIPALITY]
