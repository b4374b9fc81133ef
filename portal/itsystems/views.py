from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from gdpr.models import HOLDS_IT_SYSTEM, InfRefRequest
from portal.accounts.access import (
    can_change,
    get_changeable_or_404,
    get_visible_or_404,
    vendors_acted_for,
    visible,
)
from portal.core.paging import page_of
from portal.itsystems.forms import ItSystemForm
from portal.itsystems.models import ItSystem
from portal.onboarding.models import Integration


@login_required
def it_system_list(request: HttpRequest) -> HttpResponse:
    it_systems = visible(request.user, ItSystem.objects.select_related("vendor")).order_by(
        "vendor__name", "name", "pk"
    )
    listing = page_of(request, it_systems, search=["name", "uuid", "vendor__name"])
    return render(
        request,
        "itsystems/it_system_list.html",
        {"listing": listing, "may_register": vendors_acted_for(request.user).exists()},
    )


@login_required
def it_system_detail(request: HttpRequest, pk: int) -> HttpResponse:
    it_system = get_visible_or_404(request.user, ItSystem.objects.select_related("vendor"), pk=pk)
    may_change = can_change(request.user, it_system)
    integrations = visible(
        request.user,
        Integration.objects.filter(Q(sender=it_system) | Q(receiver=it_system)).select_related(
            "sender", "receiver", "infref"
        ),
    ).order_by("name", "pk")
    infrefs = visible(request.user, it_system.infrefs.select_related("request")).order_by("number")
    # The request that holds the IT system (open, or assigned): a second one is refused.
    holding = (
        visible(request.user, InfRefRequest.objects.filter(HOLDS_IT_SYSTEM, it_system=it_system))
        .select_related("infref")
        .first()
        if it_system.is_sender
        else None
    )
    return render(
        request,
        "itsystems/it_system_detail.html",
        {
            "it_system": it_system,
            "may_change": may_change,
            # The vendor's staff start the sending IT system's onboarding from here.
            "starts_onboarding": may_change and it_system.is_sender,
            "integrations": integrations,
            "infrefs": infrefs,
            "holding_request": holding,
        },
    )


@login_required
def it_system_create(request: HttpRequest) -> HttpResponse:
    vendors = vendors_acted_for(request.user)
    if not vendors.exists():
        raise PermissionDenied
    form = ItSystemForm(request.POST or None, vendors=vendors)
    if request.method == "POST" and form.is_valid():
        it_system = form.save()
        messages.success(request, _("%(name)s is registered.") % {"name": it_system.name})
        return redirect("itsystems:detail", pk=it_system.pk)
    return render(request, "itsystems/it_system_form.html", {"form": form})


@login_required
def it_system_edit(request: HttpRequest, pk: int) -> HttpResponse:
    it_system = get_changeable_or_404(request.user, ItSystem.objects.all(), pk=pk)
    form = ItSystemForm(
        request.POST or None, instance=it_system, vendors=vendors_acted_for(request.user)
    )
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, _("%(name)s is saved.") % {"name": it_system.name})
        return redirect("itsystems:detail", pk=it_system.pk)
    return render(request, "itsystems/it_system_form.html", {"form": form, "it_system": it_system})
