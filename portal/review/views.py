"""The municipal architect's review: everything that flows into and out of one municipality.

For each route of the municipality, grouped by integration and InfRef, its totals (`flows`);
then what flowed, one row per file, recent first, a page at a time by keyset (`passages`), each
with the data-specification version and the GDPR declaration it ran under (`ran_under`).

An architect reviews the municipalities they act for, and a superuser any one
(`access.reviewable_municipalities`); to anyone else a municipality is missing (404), as
everywhere in the portal.
"""

from dataclasses import dataclass, replace

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.views.decorators.http import require_GET

from portal.accounts.access import municipalities_to_review
from portal.core.paging import KeysetPage, keyset_page
from portal.review.flows import FLOW_PARAMS, chosen_flow, flows_of
from portal.review.passages import file_sources, read_passages
from portal.review.ran_under import attach_ran_under

# The files and the flows share the page: 25 rows keep it a screenful to review, and the
# page fast at a million transfers (bench/pages.py).
PAGE_SIZE = 25
CURSOR = "cursor"


@dataclass(frozen=True)
class PageLinks:
    """The query strings of the newest, the newer and the older page of files, where there is
    one."""

    newest: str = ""
    newer: str = ""
    older: str = ""


def _without(params: QueryDict, names: tuple[str, ...]) -> QueryDict:
    kept = params.copy()
    for name in names:
        kept.pop(name, None)
    return kept


def _links(page: KeysetPage, params: QueryDict) -> PageLinks:
    def link(cursor: str = "") -> str:
        query = params.copy()
        if cursor:
            query[CURSOR] = cursor
        return "?" + query.urlencode()

    return PageLinks(
        newest=link() if page.newer else "",
        newer=link(page.newer) if page.newer else "",
        older=link(page.older) if page.older else "",
    )


@login_required
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    user = request.user
    choices = municipalities_to_review(user)
    if not (choices or user.is_superuser):
        raise Http404
    code = request.GET.get("municipality", "").strip()
    if code:
        municipality = next((m for m in choices if m.municipality_code == code), None)
        if municipality is None:
            raise Http404
    elif user.is_superuser:
        # A superuser chooses; there is no municipality of their own to start from.
        return render(request, "review/overview.html", {"municipality": None, "choices": choices})
    else:
        municipality = choices[0]

    params = request.GET.copy()
    params["municipality"] = municipality.municipality_code
    chosen = chosen_flow(params)
    every_flow = _without(params, (*FLOW_PARAMS, CURSOR))
    flows = flows_of(user, municipality, every_flow)
    shown = [flow for flow in flows if flow.chosen_by(chosen)]
    # Every file listed is on one of these routes, and is given its route as read here.
    routes = {totals.pk: totals.route for flow in shown for totals in flow.routes}

    keys = keyset_page(file_sources(list(routes)), request.GET.get(CURSOR, ""), PAGE_SIZE)
    files = replace(keys, rows=read_passages(keys.rows, routes))
    attach_ran_under(user, municipality, files.rows)
    return render(
        request,
        "review/overview.html",
        {
            "municipality": municipality,
            "choices": choices if user.is_superuser or len(choices) > 1 else None,
            "flows": flows,
            "filtered": bool(chosen),
            "chosen_flow": shown[0] if chosen and shown else None,
            "unfiltered_query": every_flow.urlencode(),
            "file_page": files,
            "file_links": _links(files, _without(params, (CURSOR,))),
        },
    )
