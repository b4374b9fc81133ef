"""A municipality's data flows: its routes grouped by integration and InfRef, with totals.

A flow is chosen on the page by `?integration=<id or none>&infref=<id>`; its files are then the
only ones listed.
"""

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import F, OuterRef, Subquery
from django.http import QueryDict

from gdpr.models import InfRef
from portal.accounts.access import visible
from portal.accounts.models import Organisation
from portal.onboarding.models import Integration
from transfers.models import Environment, Route, RouteTally, Transfer

# The GET parameters that choose a flow.
FLOW_PARAMS = ("integration", "infref")


@dataclass(frozen=True)
class RouteTotals:
    """One route of a flow, with what the page shows of it: its labels in the active language,
    its transfers by outcome, and when the last of them was queued."""

    route: Route
    environment_label: str
    state_label: str
    transfer_count: int
    delivered_count: int
    failed_count: int
    last_queued_at: datetime | None

    @property
    def pk(self) -> int:
        return self.route.pk


@dataclass
class Flow:
    """The routes of one integration and InfRef for the municipality, with their totals."""

    integration: Integration | None
    infref: InfRef
    query: str  # the page's query string, showing only this flow
    routes: list[RouteTotals] = field(default_factory=list)

    def chosen_by(self, chosen: dict) -> bool:
        """Whether the flow is among those `chosen` (`chosen_flow`): all when nothing is."""
        integration = self.integration.pk if self.integration else "none"
        infref = self.infref.pk
        return (
            chosen.get("integration", integration) == integration
            and chosen.get("infref", infref) == infref
        )


def chosen_flow(params: QueryDict) -> dict:
    """The flow chosen by `?integration=` and `?infref=`; junk is ignored."""
    chosen: dict = {}
    integration = params.get("integration", "")
    if integration == "none":
        chosen["integration"] = "none"
    elif integration.isdigit():
        chosen["integration"] = int(integration)
    infref = params.get("infref", "")
    if infref.isdigit():
        chosen["infref"] = int(infref)
    return chosen


def flows_of(user, municipality: Organisation, params: QueryDict) -> list[Flow]:
    """The municipality's routes that `user` may see, grouped into flows, with their transfer
    counts: two queries. Each flow's link keeps `params` but the flow chosen.

    The counts are the database's tallies per route and state (RouteTally), not a count of the
    transfers, which grows with every year of them; each route's last transfer is one step
    down the index of its transfers by time.
    """
    last_queued = (
        Transfer.objects.filter(route=OuterRef("pk")).order_by("-queued_at").values("queued_at")[:1]
    )
    routes = list(
        visible(user, Route.objects.filter(municipality=municipality))
        .select_related("integration", "infref", "sender__vendor", "receiver__vendor")
        # What the page shows of a route, and nothing more: a municipality may have a hundred.
        .only(
            "environment",
            "state",
            "integration__name",
            "infref__name",
            "infref__number",
            "sender__name",
            "sender__vendor__name",
            "receiver__name",
            "receiver__vendor__name",
        )
        .annotate(last_queued_at=Subquery(last_queued))
        .order_by(
            F("integration__name").asc(nulls_last=True),
            "integration_id",
            "infref__number",
            "environment",
            "sender__name",
            "receiver__name",
            "pk",
        )
    )
    tallies: dict[int, Counter] = defaultdict(Counter)
    if routes:
        rows = RouteTally.objects.filter(route_id__in=[route.pk for route in routes])
        for route_id, state, count in rows.values_list("route_id", "state", "count"):
            tallies[route_id][state] = count
    # Each label translated once, not looked up in the choices for every row.
    environments = {value: str(label) for value, label in Environment.choices}
    states = {value: str(label) for value, label in Route.State.choices}
    flows: list[Flow] = []
    only = _flow_links(params)
    for route in routes:
        tally = tallies[route.pk]
        totals = RouteTotals(
            route=route,
            environment_label=environments.get(route.environment, route.environment),
            state_label=states.get(route.state, route.state),
            transfer_count=tally.total(),
            delivered_count=tally[Transfer.State.DELIVERED],
            failed_count=tally[Transfer.State.FAILED],
            last_queued_at=route.last_queued_at,
        )
        last = flows[-1] if flows else None
        if last is None or (last.integration, last.infref) != (route.integration, route.infref):
            flows.append(Flow(route.integration, route.infref, only(route)))
        flows[-1].routes.append(totals)
    return flows


def _flow_links(params: QueryDict) -> Callable[[Route], str]:
    """The query string of each route's flow: `params` without any flow chosen, then the
    route's. The rest of `params` is encoded once, not once a flow: a busy municipality has
    dozens."""
    kept = params.copy()
    for name in FLOW_PARAMS:
        kept.pop(name, None)
    rest = kept.urlencode()
    lead = f"{rest}&" if rest else ""

    def only(route: Route) -> str:
        # Numbers and "none": nothing in them to escape.
        integration = route.integration_id or "none"
        return f"{lead}integration={integration}&infref={route.infref_id}"

    return only
