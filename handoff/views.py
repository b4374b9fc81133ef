"""The IT system's hand-off pages: its API tokens, and its drop and delivery folders.

Both belong to the IT system: only those who may change it (its vendor's staff, superusers)
reach them, through the same rule as the IT system's own edit page.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from handoff import tokens
from handoff.forms import DeliveryFolderForm, TokenForm, WatchedFolderForm
from handoff.models import ApiToken, DeliveryFolder, FolderDelivery, FolderPickup, WatchedFolder
from portal.accounts.access import changeable, get_changeable_or_404
from portal.itsystems.models import ItSystem
from transfers.models import Route

RECENT = 20


def _it_system(request: HttpRequest, pk: int) -> ItSystem:
    return get_changeable_or_404(request.user, ItSystem.objects.select_related("vendor"), pk=pk)


# API tokens -------------------------------------------------------------------------------------


@login_required
def token_list(request: HttpRequest, pk: int) -> HttpResponse:
    it_system = _it_system(request, pk)
    form = TokenForm(request.POST or None)
    plain = ""
    if request.method == "POST" and form.is_valid():
        _token, plain = tokens.issue(
            it_system,
            name=form.cleaned_data["name"],
            valid_days=form.cleaned_data["valid_days"],
            user=request.user,
        )
        form = TokenForm()
    response = render(
        request,
        "handoff/tokens.html",
        {
            "it_system": it_system,
            "tokens": ApiToken.objects.filter(it_system=it_system).select_related(
                "created_by", "revoked_by"
            ),
            "form": form,
            "new_token": plain,
        },
    )
    # The page that shows a new token once must not be kept by the browser or a proxy.
    add_never_cache_headers(response)
    response["Cache-Control"] += ", no-store"
    return response


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int, token_pk: int) -> HttpResponse:
    it_system = _it_system(request, pk)
    token = get_object_or_404(ApiToken, pk=token_pk, it_system=it_system)
    if tokens.revoke(token, request.user):
        messages.success(request, _("The token %(name)s is revoked.") % {"name": token.name})
    return redirect("handoff:tokens", pk=it_system.pk)


# Folders ----------------------------------------------------------------------------------------


def _routes_sent(request: HttpRequest, it_system: ItSystem):
    """The IT system's routes the user may change: those a drop folder may be set up for."""
    routes = Route.objects.filter(sender=it_system).select_related("infref", "municipality")
    return changeable(request.user, routes)


def _folders_page(
    request: HttpRequest,
    it_system: ItSystem,
    *,
    watch_form: WatchedFolderForm | None = None,
    delivery_form: DeliveryFolderForm | None = None,
) -> HttpResponse:
    routes = _routes_sent(request, it_system)
    watched = WatchedFolder.objects.filter(route__in=routes).select_related(
        "route__infref", "route__municipality"
    )
    delivery = DeliveryFolder.objects.filter(it_system=it_system).first()
    return render(
        request,
        "handoff/folders.html",
        {
            "it_system": it_system,
            "watched": watched,
            "watch_form": watch_form
            or WatchedFolderForm(
                routes=routes.exclude(watched_folder__isnull=False),
                organisation=it_system.vendor,
            ),
            "delivery": delivery,
            "delivery_form": delivery_form
            or DeliveryFolderForm(instance=delivery, organisation=it_system.vendor),
            "pickups": FolderPickup.objects.filter(folder__in=watched).select_related(
                "folder", "transfer"
            )[:RECENT],
            "deliveries": FolderDelivery.objects.filter(folder=delivery).select_related(
                "received_file"
            )[:RECENT]
            if delivery
            else [],
        },
    )


def _make_directories(request: HttpRequest, folder: WatchedFolder | DeliveryFolder) -> None:
    try:
        folder.directory.mkdir(parents=True, exist_ok=True)
    except (OSError, ValidationError) as error:
        messages.warning(
            request,
            _("The folder is saved, but the portal could not create it: %(error)s")
            % {"error": error},
        )


@login_required
def folder_list(request: HttpRequest, pk: int) -> HttpResponse:
    return _folders_page(request, _it_system(request, pk))


@login_required
def watched_folder_edit(request: HttpRequest, pk: int, folder_pk: int | None = None):
    it_system = _it_system(request, pk)
    routes = _routes_sent(request, it_system)
    instance = None
    if folder_pk is not None:
        instance = get_object_or_404(WatchedFolder, pk=folder_pk, route__in=routes)
    form = WatchedFolderForm(
        request.POST or None, instance=instance, routes=routes, organisation=it_system.vendor
    )
    if request.method == "POST" and form.is_valid():
        folder = form.save(commit=False)
        folder.changed_by = request.user
        folder.save()
        _make_directories(request, folder)
        messages.success(request, _("The watched folder is saved."))
        return redirect("handoff:folders", pk=it_system.pk)
    if instance is None and request.method == "POST":
        return _folders_page(request, it_system, watch_form=form)
    return render(
        request,
        "handoff/form.html",
        {"it_system": it_system, "form": form, "title": _("Watched folder")},
    )


@login_required
@require_POST
def watched_folder_remove(request: HttpRequest, pk: int, folder_pk: int) -> HttpResponse:
    it_system = _it_system(request, pk)
    folder = get_object_or_404(
        WatchedFolder, pk=folder_pk, route__in=_routes_sent(request, it_system)
    )
    folder.delete()
    messages.success(request, _("The route no longer has a watched folder; its files stay."))
    return redirect("handoff:folders", pk=it_system.pk)


@login_required
@require_POST
def delivery_folder_save(request: HttpRequest, pk: int) -> HttpResponse:
    it_system = _it_system(request, pk)
    instance = DeliveryFolder.objects.filter(it_system=it_system).first()
    form = DeliveryFolderForm(
        request.POST,
        # Known before the form is checked: the folder must lie in the vendor's own.
        instance=instance or DeliveryFolder(it_system=it_system),
        organisation=it_system.vendor,
    )
    if not form.is_valid():
        return _folders_page(request, it_system, delivery_form=form)
    folder = form.save(commit=False)
    folder.changed_by = request.user
    folder.save()
    _make_directories(request, folder)
    messages.success(request, _("The delivery folder is saved."))
    return redirect("handoff:folders", pk=it_system.pk)


@login_required
@require_POST
def delivery_folder_remove(request: HttpRequest, pk: int) -> HttpResponse:
    it_system = _it_system(request, pk)
    DeliveryFolder.objects.filter(it_system=it_system).delete()
    messages.success(request, _("Received files are no longer written to a folder."))
    return redirect("handoff:folders", pk=it_system.pk)
