"""The municipal architect's review: everything that flows into and out of one municipality.

For each route of the municipality, grouped by integration and InfRef, its totals; then what
flowed, one row per file (recent first, 25 a page, paged by cursor rather than offset): a
transfer sent through the portal together with the file it became at the receiver, matched by
the platform's FileTransferUUID, or a file received from a sender outside the portal. Each row
has the data-specification version and the GDPR declaration it ran under.

"Ran under" is derived from the time a transfer was queued (a file from outside the portal:
received): the latest version of the integration's data specification created before it, and
the declaration of the route's InfRef submitted most recently before it (a superseded one
counts: it was in force then). The versions and declarations of the integrations and InfRefs on
the page are read once and matched in Python, so the page costs the same number of queries
however many rows it shows.

An architect reviews the municipalities they act for, and a superuser any one; to anyone else a
municipality is missing (404), as everywhere in the portal.
"""

from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

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
from transfers.models import Environment, ReceivedFile, Route, RouteTally, Transfer

# The files and the flows share the page: 25 rows keep it a screenful to review, and the
# page fast at a million transfers (bench/pages.py).
PAGE_SIZE = 25
SENT = (GdprDeclaration.Status.SUBMITTED, GdprDeclaration.Status.SUPERSEDED)
FLOW_PARAMS = ("integration", "infref")
CURSOR_PARAMS = ("before", "after")
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
    """What a file that flowed at `moment` ran under: a specification version and a GDPR
    declaration, or none. Both are read with `is_visible` (may the user open it), and the
    declaration with `names_municipality` (as data controller)."""

    moment: datetime
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
        return outdated_at is not None and outdated_at < self.moment

    @property
    def declared_version_differs(self) -> bool:
        declared = self.declaration.data_specification_version if self.declaration else ""
        return bool(self.version and declared and declared != self.version.label)


@dataclass
class FilePassage:
    """One file on its way from the sending to the receiving IT system: the transfer the portal
    sent together with the file the receiver fetched, or only one of them (the file is not
    fetched yet, or a system outside the portal sent it)."""

    route: Route
    transfer: Transfer | None = None
    received: ReceivedFile | None = None
    ran_under: RanUnder | None = None

    @property
    def moment(self) -> datetime:
        """When it flowed: queued in the portal, or else fetched by the receiver."""
        return self.transfer.queued_at if self.transfer else self.received.received_at

    @property
    def name(self) -> str:
        """The sender's name for the file; the platform's, if the portal never sent it."""
        return self.transfer.original_name if self.transfer else self.received.remote_name

    @property
    def size(self) -> int | None:
        return self.transfer.size if self.transfer else self.received.size

    @property
    def sha256(self) -> str:
        return self.transfer.sha256 if self.transfer else self.received.sha256

    @property
    def sent_at(self) -> datetime | None:
        """When the sending side last moved: finished (delivered or failed), sent, or queued."""
        transfer = self.transfer
        if transfer is None:
            return None
        return transfer.finished_at or transfer.sent_at or transfer.queued_at


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


def attach_ran_under(user, municipality: Organisation, passages: Iterable[FilePassage]) -> None:
    """Set `ran_under` on each passage, in a fixed number of queries whatever their number.

    The versions and declarations are chosen among all of them, not only those `user` may open:
    which one was in force is a fact about a file the user sees. Only the link to a record
    follows `visible`, asked of each row in the same query.
    """
    passages = list(passages)
    integration_ids = {p.route.integration_id for p in passages if p.route.integration_id}
    infref_ids = {p.route.infref_id for p in passages}

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

    for passage in passages:
        route, moment = passage.route, passage.moment
        passage.ran_under = RanUnder(
            moment=moment,
            version=versions[route.integration_id].at(moment) if route.integration_id else None,
            declaration=declarations[route.infref_id].at(moment),
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


class RowKey(NamedTuple):
    """Where a row stands in a list of several kinds of row: newest first by its moment, then
    by its kind (its source's place among the list's sources), then by its id."""

    moment: datetime
    kind: int
    pk: int


@dataclass(frozen=True)
class RowSource:
    """One kind of row in a list: the rows, the field that dates them, and the letter that marks
    their ids in a cursor (none for the first kind, whose cursor is a bare id)."""

    rows: QuerySet
    moment_field: str
    prefix: str = ""


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


def _cursor_key(value: str, sources: Sequence[RowSource]) -> RowKey | None:
    """The row a cursor (`812`, `r17`) names, looked up among its source's rows: one query."""
    for kind, source in enumerate(sources):
        digits = value.removeprefix(source.prefix) if value.startswith(source.prefix) else ""
        if digits.isdigit():
            rows = source.rows.filter(pk=int(digits))
            moment = rows.values_list(source.moment_field, flat=True).first()
            return None if moment is None else RowKey(moment, kind, int(digits))
    return None


def _beyond(source: RowSource, kind: int, cursor: RowKey, older: bool) -> QuerySet:
    """The rows of `source` that come after `cursor` going older (or newer) in the list."""
    field_name = source.moment_field
    past, up_to = ("lt", "lte") if older else ("gt", "gte")
    if kind == cursor.kind:
        # The redundant bound lets the index on the moment find the start, not only the order.
        return source.rows.filter(**{f"{field_name}__{up_to}": cursor.moment}).filter(
            Q(**{f"{field_name}__{past}": cursor.moment}) | Q(**{f"pk__{past}": cursor.pk})
        )
    # At the cursor's moment the list runs by kind: going older, the lower kinds are still ahead.
    ahead_at_same_moment = kind < cursor.kind if older else kind > cursor.kind
    bound = up_to if ahead_at_same_moment else past
    return source.rows.filter(**{f"{field_name}__{bound}": cursor.moment})


def _first_keys(rows: QuerySet, moment_field: str, kind: int, older: bool) -> list[RowKey]:
    """The keys of the first `PAGE_SIZE + 1` of `rows` going older (or newer): moments and ids
    only, sorted by the indexes on the moment; the page's rows are read by id afterwards."""
    order = (f"-{moment_field}", "-pk") if older else (moment_field, "pk")
    found = rows.order_by(*order).values_list(moment_field, "pk")[: PAGE_SIZE + 1]
    return [RowKey(moment, kind, pk) for moment, pk in found]


def _merged_keys(sources: Sequence[RowSource], cursor: RowKey | None, older: bool) -> list[RowKey]:
    """The first `PAGE_SIZE + 1` rows of all the sources together, past `cursor` if there is
    one: a query a source.

    Once a source has filled a page, the next is read only as far back (or forward) as that
    page reaches: a row beyond it could not be on the page. The files received from outside
    the portal are told apart only row by row (no transfer has their FileTransferUUID), so this
    bound keeps their search to one page's stretch of time, not the municipality's history.
    """
    found: list[RowKey] = []
    reach: datetime | None = None
    for kind, source in enumerate(sources):
        rows = source.rows if cursor is None else _beyond(source, kind, cursor, older)
        if reach is not None:
            rows = rows.filter(**{f"{source.moment_field}__{'gte' if older else 'lte'}": reach})
        keys = _first_keys(rows, source.moment_field, kind, older)
        if len(keys) > PAGE_SIZE:
            last = keys[-1].moment
            reach = last if reach is None else (max if older else min)(reach, last)
        found.extend(keys)
    found.sort(reverse=older)
    return found[: PAGE_SIZE + 1]


def keyset_page(sources: Sequence[RowSource], params: QueryDict) -> KeysetPage:
    """`PAGE_SIZE` rows of the sources together, newest first, as their `RowKey`s.

    A page is found from the row it follows (`?before=<cursor>`) or precedes (`?after=`), not
    by an offset, so page 1,000 costs what page 1 costs and no row is counted. The cursor row
    is looked up among its source's rows: one the user may not see starts from the newest page.
    """
    cursor, older = None, True
    for param, toward_older in (("before", True), ("after", False)):
        cursor = _cursor_key(params.get(param, ""), sources)
        if cursor is not None:
            older = toward_older
            break
    keys = _merged_keys(sources, cursor, older)
    more = len(keys) > PAGE_SIZE
    keys = keys[:PAGE_SIZE]
    if older:
        newer_exists, older_exists = cursor is not None, more
    else:
        newer_exists, older_exists = more, True
        keys.reverse()

    def link(param: str | None = None, key: RowKey | None = None) -> str:
        query = params.copy()
        for name in CURSOR_PARAMS:
            query.pop(name, None)
        if param and key:
            query[param] = f"{sources[key.kind].prefix}{key.pk}"
        return "?" + query.urlencode()

    return KeysetPage(
        object_list=keys,
        newer=link("after", keys[0]) if keys and newer_exists else "",
        older=link("before", keys[-1]) if keys and older_exists else "",
        newest=link() if newer_exists else "",
    )


# The kinds of row in the review's list of files, by their sources' places.
TRANSFERS, FROM_OUTSIDE = 0, 1


def file_sources(route_ids: list[int]) -> tuple[RowSource, RowSource]:
    """The transfers on the routes, and the files received on them that no transfer in the
    portal sent (none has their FileTransferUUID): the two kinds of row in the list."""
    # By the id alone: asked for its route too, SQLite chose the index on the route and read
    # every transfer of the route for each file.
    sent_by_portal = Transfer.objects.filter(file_transfer_uuid=OuterRef("file_transfer_uuid"))
    return (
        RowSource(Transfer.objects.filter(route_id__in=route_ids), "queued_at"),
        RowSource(
            ReceivedFile.objects.filter(route_id__in=route_ids).filter(~Exists(sent_by_portal)),
            "received_at",
            prefix="r",
        ),
    )


def _received_files(
    ids: list[int], file_transfer_uuids: list[UUID], route_ids: list[int]
) -> dict[int, ReceivedFile]:
    """The received files with these ids, or with these FileTransferUUIDs on these routes, by
    id: one query, through the index on each of the two."""
    if not ids and not file_transfer_uuids:
        return {}
    wanted = Q(pk__in=ids) | Q(file_transfer_uuid__in=file_transfer_uuids, route_id__in=route_ids)
    found = ReceivedFile.objects.filter(wanted).defer("metadata_xml").order_by()
    return {file.pk: file for file in found}


def read_passages(keys: list[RowKey], routes: dict[int, Route]) -> list[FilePassage]:
    """The page's rows, each transfer with the file it became at the receiver: two queries.

    The platform gives the same FileTransferUUID to the sender's receipt and to the metadata
    the receiver fetches, so a transfer and its file are matched by it, for this page's
    transfers only. A file is looked for on the routes shown only (its metadata names the route
    it came by, the transfer's own). Each row is given its route, already read, with its IT
    systems.
    """
    transfers = Transfer.objects.defer(*_TRANSFER_TEXTS).in_bulk(
        [key.pk for key in keys if key.kind == TRANSFERS]
    )
    sent_uuids = [t.file_transfer_uuid for t in transfers.values() if t.file_transfer_uuid]
    outside_ids = [key.pk for key in keys if key.kind == FROM_OUTSIDE]
    received = _received_files(outside_ids, sent_uuids, list(routes))
    fetched = {f.file_transfer_uuid: f for f in received.values() if f.file_transfer_uuid}
    passages = []
    for key in keys:
        # Left out: a row deleted, or moved to a route not shown, since its key was read.
        if key.kind == TRANSFERS and key.pk in transfers:
            transfer = transfers[key.pk]
            if transfer.route_id in routes:
                passages.append(
                    FilePassage(
                        routes[transfer.route_id],
                        transfer=transfer,
                        received=fetched.get(transfer.file_transfer_uuid),
                    )
                )
        elif key.kind == FROM_OUTSIDE and key.pk in received:
            file = received[key.pk]
            if file.route_id in routes:
                passages.append(FilePassage(routes[file.route_id], received=file))
    return passages


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

    file_page = keyset_page(file_sources(list(routes)), params)
    file_page.object_list = read_passages(file_page.object_list, routes)
    attach_ran_under(user, municipality, file_page.object_list)

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
            "file_page": file_page,
        },
    )
