from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from portal.accounts.access import get_visible_or_404, visible
from portal.accounts.models import Membership, Organisation
from portal.core.paging import page_of
from portal.itsystems.models import ItSystem


@login_required
def organisation_list(request: HttpRequest) -> HttpResponse:
    organisations = visible(request.user, Organisation.objects.all())
    kind = request.GET.get("kind", "")
    if kind in Organisation.Kind.values:
        organisations = organisations.filter(kind=kind)
    else:
        kind = ""
    listing = page_of(
        request,
        organisations.order_by("kind", "name", "pk"),
        search=["name"],
        exact=["cvr", "municipality_code"],
    )
    return render(
        request,
        "accounts/organisation_list.html",
        {
            "listing": listing,
            "page": listing.page,
            "kind": kind,
            "kinds": Organisation.Kind.choices,
        },
    )


@login_required
def organisation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    organisation = get_visible_or_404(request.user, Organisation.objects.all(), pk=pk)
    members = visible(
        request.user, Membership.objects.filter(organisation=organisation).select_related("user")
    )
    it_systems = visible(request.user, ItSystem.objects.filter(vendor=organisation))
    return render(
        request,
        "accounts/organisation_detail.html",
        {"organisation": organisation, "members": members, "it_systems": it_systems},
    )
