from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from portal.accounts.access import (
    can_change,
    changeable,
    get_changeable_or_404,
    get_visible_or_404,
    scope_of,
    vendors_acted_for,
    visible,
)
from portal.accounts.models import Organisation
from portal.audit.log import record
from portal.audit.models import AuditEvent
from portal.core.paging import page_of
from portal.onboarding import rules
from portal.onboarding.bilateral_views import (
    consent_rows,
    is_bilateral_party,
    municipalities_seen,
)
from portal.onboarding.catalogue import TASKS
from portal.onboarding.follow import MIRRORED, routes_of
from portal.onboarding.forms import (
    AddMunicipalityForm,
    IntegrationEditForm,
    IntegrationForm,
    TaskForm,
)
from portal.onboarding.models import (
    Integration,
    IntegrationMunicipality,
    OnboardingTask,
)
from portal.onboarding.signposts import Signposts, moved_by
from transfers.models import Environment, SftpAccount

_INTEGRATIONS = Integration.objects.select_related(
    "sender__vendor", "receiver__vendor", "infref"
).prefetch_related("municipalities", "tasks")
_WITH_SYSTEMS = Integration.objects.select_related("sender__vendor", "receiver__vendor")
LEGAL_REVIEW_INTERVAL = timedelta(days=365)


def legal_review_overdue(integration: Integration) -> bool:
    reviewed = integration.legal_basis_reviewed_on
    return reviewed is None or timezone.localdate() - reviewed > LEGAL_REVIEW_INTERVAL


def _progress(integration: Integration) -> tuple[int, int]:
    tasks = list(integration.tasks.all())
    return sum(task.is_settled for task in tasks), len(tasks)


@login_required
def integration_list(request: HttpRequest) -> HttpResponse:
    listing = page_of(
        request,
        visible(request.user, _INTEGRATIONS.all()).order_by("name", "pk"),
        search=["name", "sender__name", "receiver__name"],
    )
    rows = [
        {
            "integration": integration,
            "progress": _progress(integration),
            "legal_review_overdue": legal_review_overdue(integration),
        }
        for integration in listing.page.object_list
    ]
    return render(
        request,
        "onboarding/integration_list.html",
        {"listing": listing, "rows": rows, "may_create": vendors_acted_for(request.user).exists()},
    )


@login_required
def integration_create(request: HttpRequest) -> HttpResponse:
    vendors = vendors_acted_for(request.user)
    if not vendors.exists():
        raise PermissionDenied
    initial = {}
    sender = request.GET.get("sender", "")
    # The IT system page links here for one of its systems; anything else is ignored.
    if sender.isdigit():
        initial["sender"] = int(sender)
    form = IntegrationForm(request.POST or None, vendors=vendors, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            integration = rules.create_integration(
                name=data["name"],
                sender=data["sender"],
                receiver=data["receiver"],
                infref=data["infref"],
                legal_basis=data["legal_basis"],
                legal_basis_reviewed_on=data["legal_basis_reviewed_on"],
                municipalities=data["municipalities"],
                created_by=request.user,
            )
        except ValidationError as error:
            for field, problems in error.message_dict.items():
                form.add_error(field if field in form.fields else None, problems)
        else:
            messages.success(request, _("%(name)s is created.") % {"name": integration.name})
            return redirect("onboarding:detail", pk=integration.pk)
    return render(request, "onboarding/integration_form.html", {"form": form})


@login_required
def integration_edit(request: HttpRequest, pk: int) -> HttpResponse:
    integration = get_changeable_or_404(request.user, _WITH_SYSTEMS, pk=pk)
    # The page is titled with the saved name, not one the form refused.
    saved_name = integration.name
    form = IntegrationEditForm(request.POST or None, instance=integration)
    if request.method == "POST" and form.is_valid():
        changed = form.changed_data
        try:
            with transaction.atomic():
                integration = form.save(commit=False)
                # The form leaves the sender out, and with it the unique name per sender.
                integration.full_clean()
                integration.save()  # the tasks follow the InfRef by themselves (signals)
                if changed:
                    record(
                        request.user,
                        AuditEvent.Action.INTEGRATION_CHANGED,
                        integration,
                        concerns=[
                            integration.sender.vendor,
                            integration.receiver.vendor,
                            *integration.municipalities.all(),
                        ],
                        integration=integration.name,
                        changed=", ".join(changed),
                    )
        except ValidationError as error:
            for field, problems in error.message_dict.items():
                form.add_error(field if field in form.fields else None, problems)
        else:
            messages.success(request, _("%(name)s is saved.") % {"name": integration.name})
            return redirect("onboarding:detail", pk=integration.pk)
    routed = set(routes_of(integration).values_list("municipality_id", flat=True))
    municipalities = [
        (municipality, municipality.pk in routed)
        for municipality in integration.municipalities.order_by("name")
    ]
    return render(
        request,
        "onboarding/integration_edit.html",
        {
            "form": form,
            "integration": integration,
            "saved_name": saved_name,
            "municipalities": municipalities,
        },
    )


@login_required
@require_POST
def integration_remove_municipality(
    request: HttpRequest, pk: int, municipality_pk: int
) -> HttpResponse:
    integration = get_changeable_or_404(request.user, _WITH_SYSTEMS, pk=pk)
    municipality = get_object_or_404(integration.municipalities.all(), pk=municipality_pk)
    with transaction.atomic():
        # A route carries the municipality's data: it stays part of the integration until the
        # route is gone, or the route would send for an integration that no longer names it.
        if routes_of(integration).filter(municipality=municipality).exists():
            messages.error(
                request,
                _(
                    "%(municipality)s has a route on the integration and cannot be removed "
                    "while the route exists."
                )
                % {"municipality": municipality.name},
            )
            return redirect("onboarding:edit", pk=pk)
        # Its yeses and its task 70 are about it alone; they go with it.
        integration.consents.filter(
            Q(organisation=municipality) | Q(municipality=municipality)
        ).delete()
        integration.tasks.filter(municipality=municipality).delete()
        IntegrationMunicipality.objects.filter(
            integration=integration, municipality=municipality
        ).delete()
        record(
            request.user,
            AuditEvent.Action.INTEGRATION_CHANGED,
            integration,
            concerns=[integration.sender.vendor, integration.receiver.vendor, municipality],
            integration=integration.name,
            removed_municipality=municipality.name,
        )
    messages.success(
        request,
        _("%(municipality)s is removed from the integration, with its task 70.")
        % {"municipality": municipality.name},
    )
    return redirect("onboarding:detail", pk=pk)


def _may_set_state(user, task: OnboardingTask) -> bool:
    """The state is set by hand only on tasks that do not mirror their records, and only by the
    vendor who does the task: the receiving vendor for 60, the sending vendor for the others.
    Municipalities and KOMBIT may date and comment the tasks their rule lets them change."""
    if task.number in MIRRORED:
        return False
    scope = scope_of(user)
    if scope.is_superuser:
        return True
    integration = task.integration
    system = integration.receiver if task.number == 60 else integration.sender
    return system.vendor_id in scope.vendor_ids


def _checklist(integration: Integration, user) -> list[dict]:
    tasks = {(t.number, t.municipality_id): t for t in integration.tasks.all()}
    may_change = set(
        changeable(user, OnboardingTask.objects.filter(integration=integration)).values_list(
            "pk", flat=True
        )
    )
    signposts = Signposts(integration, user)
    items = []
    for definition in TASKS:
        rows = (
            [tasks[(definition.number, m.pk)] for m in integration.municipalities.order_by("name")]
            if definition.per_municipality
            else [tasks[(definition.number, None)]]
        )
        for task in rows:
            items.append(
                {
                    "task": task,
                    "definition": definition,
                    "may_change": task.pk in may_change,
                    "mirrored": definition.number in MIRRORED,
                    "moved_by": moved_by(definition.number),
                    "links": signposts.for_task(task),
                    "blocked_by": task.waiting_for() if not task.is_settled else [],
                }
            )
    return items


@login_required
def integration_detail(request: HttpRequest, pk: int) -> HttpResponse:
    integration = get_visible_or_404(request.user, _INTEGRATIONS, pk=pk)
    municipalities = list(municipalities_seen(request.user, integration))
    may_change = can_change(request.user, integration)
    accounts = visible(
        request.user,
        SftpAccount.objects.filter(it_system__in=[integration.sender_id, integration.receiver_id]),
    )
    onboarding = rules.onboarding_of([integration])[integration.pk]  # read once, not per row
    readiness = [
        {
            "municipality": municipality,
            "exttest": rules.readiness(
                integration,
                municipality,
                environment=Environment.EXTERNAL_TEST,
                onboarding=onboarding,
            ),
            "production": rules.readiness(
                integration, municipality, environment=Environment.PRODUCTION, onboarding=onboarding
            ),
        }
        for municipality in municipalities
    ]
    agreement = getattr(integration, "processing_agreement", None)
    context = {
        "integration": integration,
        "accounts": accounts,
        "checklist": _checklist(integration, request.user),
        "readiness": readiness,
        "consents": consent_rows(integration, municipalities, request.user),
        "agreement": agreement,
        "test": getattr(integration, "test", None),
        "legal_review_overdue": legal_review_overdue(integration),
        "may_change": may_change,
        "is_bilateral_party": is_bilateral_party(request.user, integration),
        "add_form": AddMunicipalityForm() if may_change else None,
        "progress": _progress(integration),
    }
    return render(request, "onboarding/integration_detail.html", context)


@login_required
def integration_add_municipality(request: HttpRequest, pk: int) -> HttpResponse:
    integration = get_changeable_or_404(request.user, Integration.objects.all(), pk=pk)
    form = AddMunicipalityForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        municipality = form.cleaned_data["municipality"]
        rules.add_municipality(integration, municipality)
        messages.success(
            request,
            _("%(municipality)s has joined; task 70 is added for it.")
            % {"municipality": municipality.name},
        )
    return redirect("onboarding:detail", pk=pk)


@login_required
def task_edit(request: HttpRequest, pk: int) -> HttpResponse:
    # Whoever the task's rule lets change it opens it: the sending vendor, the receiving vendor
    # (60), the municipalities (20, 60, their own 70) and KOMBIT (40).
    task = get_changeable_or_404(
        request.user,
        OnboardingTask.objects.select_related(
            "integration__sender__vendor", "integration__receiver__vendor", "municipality"
        ),
        pk=pk,
    )
    may_set_state = _may_set_state(request.user, task)
    form = TaskForm(request.POST or None, instance=task, may_set_state=may_set_state)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():
                task.due_date = data["due_date"]
                # Without the state field the task keeps its state: it is only dated and noted.
                state = data["state"] if may_set_state else task.state
                if may_set_state:
                    rules.set_state(task, state, request.user, comment=data["comment"])
                else:
                    rules.note(task, data["comment"], request.user)
        except ValidationError as error:
            form.add_error("state" if may_set_state else None, error)
        else:
            messages.success(request, _("Task %(number)s is saved.") % {"number": task.number})
            return redirect("onboarding:detail", pk=task.integration_id)
    return render(
        request,
        "onboarding/task_form.html",
        {
            "form": form,
            "task": task,
            "blocked_by": task.waiting_for(),
            "may_set_state": may_set_state,
            "mirrored": task.number in MIRRORED,
            "moved_by": moved_by(task.number),
            "links": Signposts(task.integration, request.user).for_task(task),
        },
    )


@login_required
def vendor_matrix(request: HttpRequest) -> HttpResponse:
    """Municipalities × tasks across the integrations the vendor's staff can see."""
    integrations = visible(request.user, _INTEGRATIONS.all())
    rows = []
    for integration in integrations:
        tasks = {(t.number, t.municipality_id): t for t in integration.tasks.all()}
        for municipality in integration.municipalities.all():
            cells = [
                tasks.get((d.number, municipality.pk if d.per_municipality else None))
                for d in TASKS
            ]
            rows.append({"municipality": municipality, "integration": integration, "cells": cells})
    rows.sort(key=lambda row: (row["municipality"].name, row["integration"].name))
    return render(request, "onboarding/matrix.html", {"rows": rows, "tasks": TASKS})


@login_required
def municipality_overview(request: HttpRequest) -> HttpResponse:
    """A municipal architect's integrations, and what each still lacks for their municipality,
    in the external test environment and in production."""
    municipalities = Organisation.objects.filter(pk__in=scope_of(request.user).municipality_ids)
    sections = []
    for municipality in municipalities:
        integrations = list(
            visible(request.user, _INTEGRATIONS.filter(municipalities=municipality))
        )
        onboarding = rules.onboarding_of(integrations)
        sections.append(
            {
                "municipality": municipality,
                "rows": [
                    {
                        "integration": integration,
                        "exttest": rules.readiness(
                            integration,
                            municipality,
                            environment=Environment.EXTERNAL_TEST,
                            onboarding=onboarding[integration.pk],
                        ),
                        "production": rules.readiness(
                            integration,
                            municipality,
                            environment=Environment.PRODUCTION,
                            onboarding=onboarding[integration.pk],
                        ),
                    }
                    for integration in integrations
                ],
            }
        )
    return render(request, "onboarding/municipality.html", {"sections": sections})
