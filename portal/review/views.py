"""The municipal architect's review: everything that flows into and out of one municipality.

For each route of the municipality, grouped by integration and InfRef, the transfers (recent
first, 25 a page, paged by cursor rather than offset), each with the data-specification version
and the GDPR declaration it ran under, and the files received for the municipality with their
metadata.

"Ran under" is derived from the time a transfer was queued: the latest version of the
integration's data specification created before it, and the declaration of the route's InfRef
submitted most recently before it (a superseded one counts: it was in force then). The versions
and declarations of the integrations and InfRefs on the page are read once and matched in
Python, so the page costs the same number of queries however many rows it shows.

An architect reviews the municipalities they act for, and a superuser any one; to anyone else a
municipality is missing (404), as everywhere in the portal.
"""

from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth.decorators import login_required
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from gdpr.models import GdprDeclaration, InfRef
from portal.accounts.access import scope_of, visible
from portal.accounts.models import Organisation
from portal.onboarding.models import Integration
from portal.specs.models import SpecificationVersion
from transfers.listing import first_rows
from transfers.models import Environment, ReceivedFile, Route, RouteTally, Transfer

# Two lists and the flows share the page: 25 rows each keep it a screenful to review, and
# the page under 150 ms at a million transfers (bench/pages.py).
PAGE_SIZE = 25
SENT = (GdprDeclaration.Status.SUBMITTED, GdprDeclaration.Status.SUPERSEDED)
FLOW_PARAMS = ("integration", "infref")
CURSOR_PARAMS = ("before", "after", "received_before", "received_after")
# Left out of the list: long texts the review does not show.
_TRANSFER_TEXTS = ("trigger_xml", "receipt_xml", "last_error", "error_text", "payload")


def reviewable_municipalities(user) -> QuerySet:
    """The municipalities `user` may review: those they act for; every one for a superuser."""
    municipalities = Organisation.objects.filter(kind=Organisation.Kind.MUNICIPALITY)
    scope = scope_of(user)
    if scope.is_superuser:
        return municipalities
    return municipalities.filter(pk__in=scope.municipality_ids)


@dataclass
class RanUnder:
    """What a transfer queued at `queued_at` ran under: a specification version and a GDPR
    declaration, or none. Both are read with `is_visible` (may the user open it), and the
    declaration with `names_municipality` (as data controller)."""

    queued_at: datetime
    version: SpecificationVersion | None = None
    declaration: GdprDeclaration | None = None

    @property
    def version_visible(self) -> bool:
        return self.version is not None and self.version.is_visible

    @property
    def declaration_visible(self) -> bool:
        return self.declaration is not None and self.declaration.is_visible

    @property
    def names_municipality(self) -> bool:
        return self.declaration is not None and self.declaration.names_municipality

    @property
    def declaration_outdated(self) -> bool:
        """The declaration had been marked outdated (the specification moved on) before."""
        outdated_at = self.declaration.outdated_at if self.declaration else None
        return outdated_at is not None and outdated_at < self.queued_at

    @property
    def declared_version_differs(self) -> bool:
        declared = self.declaration.data_specification_version if self.declaration else ""
        return bool(self.version and declared and declared != self.version.label)


def _latest_before(items: list, keys: list[datetime], moment: datetime):
    """The last of `items` (sorted by `keys`) whose key is strictly before `moment`."""
    index = bisect_left(keys, moment)
    return items[index - 1] if index else None


@dataclass
class _Timeline:
    items: list = field(default_factory=list)
    keys: list[datetime] = field(default_factory=list)

    def add(self, item, key: datetime) -> None:
        self.items.append(item)
        self.keys.append(key)

    def at(self, moment: datetime):
        return _latest_before(self.items, self.keys, moment)


def _visible_to(user, model) -> Exists:
    """Whether `user` may see the row, as a column of the query that reads it."""
    return Exists(visible(user, model.objects.filter(pk=OuterRef("pk"))))


def attach_ran_under(user, municipality: Organisation, transfers: Iterable[Transfer]) -> None:
    """Set `ran_under` on each transfer, in a fixed number of queries whatever their number.

    The versions and declarations are chosen among all of them, not only those `user` may open:
    which one was in force is a fact about a transfer the user sees. Only the link to a record
    follows `visible`, asked of each row in the same query.
    """
    transfers = list(transfers)
    integration_ids = {t.route.integration_id for t in transfers if t.route.integration_id}
    infref_ids = {t.route.infref_id for t in transfers}

    versions: dict[int, _Timeline] = defaultdict(_Timeline)
    if integration_ids:
        rows = (
            SpecificationVersion.objects.filter(specification__integration_id__in=integration_ids)
            .annotate(
                integration_pk=F("specification__integration_id"),
                is_visible=_visible_to(user, SpecificationVersion),
            )
            .only("pk", "specification_id", "major", "minor", "created_at")
            .order_by("created_at", "major", "minor", "pk")
        )
        for version in rows:
            versions[version.integration_pk].add(version, version.created_at)

    declarations: dict[int, _Timeline] = defaultdict(_Timeline)
    if infref_ids:
        naming = GdprDeclaration.controllers.through.objects.filter(
            gdprdeclaration_id=OuterRef("pk"), organisation_id=municipality.pk
        )
        rows = (
            GdprDeclaration.objects.filter(
                infref_id__in=infref_ids, status__in=SENT, submitted_at__isnull=False
            )
            .annotate(
                names_municipality=Exists(naming), is_visible=_visible_to(user, GdprDeclaration)
            )
            .only(
                "pk",
                "infref_id",
                "version",
                "status",
                "submitted_at",
                "outdated_at",
                "data_specification_version",
            )
            .order_by("submitted_at", "version", "pk")
        )
        for declaration in rows:
            declarations[declaration.infref_id].add(declaration, declaration.submitted_at)

    for transfer in transfers:
        route = transfer.route
        transfer.ran_under = RanUnder(
            queued_at=transfer.queued_at,
            version=versions[route.integration_id].at(transfer.queued_at)
            if route.integration_id
            else None,
            declaration=declarations[route.infref_id].at(transfer.queued_at),
        )


@dataclass
class Flow:
    """The routes of one integration and InfRef for the municipality, with their totals."""

    integration: Integration | None
    infref: InfRef
    routes: list[Route]
    query: str  # the query string that shows only this flow


def _flows(user, municipality: Organisation, params: QueryDict) -> list[Flow]:
    """The municipality's routes grouped into flows, with their transfer counts: two queries.

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
    for route in routes:
        route.environment_label = environments.get(route.environment, route.environment)
        route.state_label = states.get(route.state, route.state)
        tally = tallies[route.pk]
        route.transfer_count = tally.total()
        route.delivered_count = tally[Transfer.State.DELIVERED]
        route.failed_count = tally[Transfer.State.FAILED]
        if flows and (flows[-1].integration, flows[-1].infref) == (route.integration, route.infref):
            flows[-1].routes.append(route)
            continue
        query = params.copy()
        for name in FLOW_PARAMS + CURSOR_PARAMS:
            query.pop(name, None)
        query["integration"] = str(route.integration_id) if route.integration_id else "none"
        query["infref"] = str(route.infref_id)
        flows.append(Flow(route.integration, route.infref, [route], query.urlencode()))
    return flows


def _chosen_flow(params: QueryDict) -> dict:
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


def _in_flow(flow: Flow, chosen: dict) -> bool:
    integration = flow.integration.pk if flow.integration else "none"
    return chosen.get("integration") in (None, integration) and chosen.get("infref") in (
        None,
        flow.infref.pk,
    )


@dataclass
class KeysetPage:
    """One page of a list, newest first, with links to the newer and older pages, if any."""

    object_list: list
    newer: str = ""
    older: str = ""
    newest: str = ""

    @property
    def has_other_pages(self) -> bool:
        return bool(self.newer or self.older)


def keyset_page(
    queryset: QuerySet, field_name: str, params: QueryDict, prefix: str = ""
) -> KeysetPage:
    """`PAGE_SIZE` rows of `queryset` ordered newest first by `field_name` and then by pk.

    A page is found from the row it follows (`?before=<pk>`) or precedes (`?after=<pk>`), not
    by an offset, so page 1,000 costs what page 1 costs and no row is counted. The cursor row
    is looked up in `queryset` itself: a pk the user may not see starts from the newest page.
    """
    before_param, after_param = f"{prefix}before", f"{prefix}after"
    newest_first = (f"-{field_name}", "-pk")
    cursor, direction = None, None
    for param, way in ((before_param, "older"), (after_param, "newer")):
        value = params.get(param, "")
        if value.isdigit():
            cursor = queryset.filter(pk=int(value)).values_list(field_name, "pk").first()
            direction = way
            break
    if cursor is None:
        rows = first_rows(queryset, newest_first, PAGE_SIZE + 1)
        newer_exists, older_exists = False, len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
    elif direction == "older":
        moment, pk = cursor
        rows = first_rows(
            queryset.filter(**{f"{field_name}__lte": moment}).filter(
                Q(**{f"{field_name}__lt": moment}) | Q(pk__lt=pk)
            ),
            newest_first,
            PAGE_SIZE + 1,
        )
        older_exists, newer_exists = len(rows) > PAGE_SIZE, True
        rows = rows[:PAGE_SIZE]
    else:
        moment, pk = cursor
        rows = first_rows(
            queryset.filter(**{f"{field_name}__gte": moment}).filter(
                Q(**{f"{field_name}__gt": moment}) | Q(pk__gt=pk)
            ),
            (field_name, "pk"),
            PAGE_SIZE + 1,
        )
        newer_exists, older_exists = len(rows) > PAGE_SIZE, True
        rows = rows[:PAGE_SIZE][::-1]

    def link(param: str | None = None, value: int | None = None) -> str:
        query = params.copy()
        query.pop(before_param, None)
        query.pop(after_param, None)
        if param:
            query[param] = str(value)
        return "?" + query.urlencode()

    return KeysetPage(
        object_list=rows,
        newer=link(after_param, rows[0].pk) if rows and newer_exists else "",
        older=link(before_param, rows[-1].pk) if rows and older_exists else "",
        newest=link() if newer_exists else "",
    )


def _give_routes(rows: list, routes: dict[int, Route]) -> None:
    for row in rows:
        row.route = routes[row.route_id]


@login_required
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    user = request.user
    scope = scope_of(user)
    if not (scope.municipality_ids or scope.is_superuser):
        raise Http404
    choices = reviewable_municipalities(user).order_by("name")
    code = request.GET.get("municipality", "").strip()
    if code:
        municipality = get_object_or_404(choices, municipality_code=code)
    elif scope.is_superuser:
        # A superuser chooses; there is no municipality of their own to start from.
        return render(request, "review/overview.html", {"municipality": None, "choices": choices})
    else:
        municipality = choices.first()
        if municipality is None:  # pragma: no cover - a membership always names one
            raise Http404

    params = request.GET.copy()
    params["municipality"] = municipality.municipality_code
    chosen = _chosen_flow(params)

    flows = _flows(user, municipality, params)
    shown = [flow for flow in flows if _in_flow(flow, chosen)]
    # Every row below is on one of these routes: each row is given the route already read,
    # with its integration, InfRef and IT systems, instead of joining them in again. The rows
    # are asked by route id, without the access rules: a reviewer acts for the municipality
    # (or is a superuser), and the rules let them see every transfer and file on its routes;
    # the rules' join to the routes made the database look up the route of each of the
    # newest transfers of all municipalities to find this one's (three times as long).
    routes = {route.pk: route for flow in shown for route in flow.routes}

    transfers = (
        Transfer.objects.filter(route_id__in=list(routes))
        .defer(*_TRANSFER_TEXTS)
        .order_by("-queued_at", "-pk")
    )
    transfer_page = keyset_page(transfers, "queued_at", params)
    _give_routes(transfer_page.object_list, routes)
    attach_ran_under(user, municipality, transfer_page.object_list)

    received = (
        ReceivedFile.objects.filter(route_id__in=list(routes))
        .select_related("account__it_system")
        .defer("metadata_xml")
        .order_by("-received_at", "-pk")
    )
    received_page = keyset_page(received, "received_at", params, prefix="received_")
    _give_routes(received_page.object_list, routes)

    chosen_flow = shown[0] if chosen and shown else None
    unfiltered = params.copy()
    for name in FLOW_PARAMS + CURSOR_PARAMS:
        unfiltered.pop(name, None)
    return render(
        request,
        "review/overview.html",
        {
            "municipality": municipality,
            "choices": choices if scope.is_superuser or len(scope.municipality_ids) > 1 else None,
            "flows": flows,
            "filtered": bool(chosen),
            "chosen_flow": chosen_flow,
            "unfiltered_query": unfiltered.urlencode(),
            "transfer_page": transfer_page,
            "received_page": received_page,
        },
    )
