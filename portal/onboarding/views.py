from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _

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
from portal.core.paging import page_of
from portal.onboarding import rules
from portal.onboarding.catalogue import TASKS
from portal.onboarding.forms import (
    AddMunicipalityForm,
    IntegrationForm,
    IntegrationTestForm,
    ProcessingAgreementForm,
    TaskForm,
)
from portal.onboarding.models import (
    Integration,
    IntegrationTest,
    OnboardingTask,
    ProcessingAgreement,
)
from transfers.models import Environment, SftpAccount, Transfer

_INTEGRATIONS = Integration.objects.select_related(
    "sender__vendor", "receiver__vendor", "infref"
).prefetch_related("municipalities", "tasks")
LEGAL_REVIEW_INTERVAL = timedelta(days=365)
# Tasks that follow the InfRef request and are not set by hand.
FOLLOW_INFREF = (30, 40)


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
    form = IntegrationForm(request.POST or None, vendors=vendors)
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


def _checklist(integration: Integration, user) -> list[dict]:
    tasks = {(t.number, t.municipality_id): t for t in integration.tasks.all()}
    may_change = set(
        changeable(user, OnboardingTask.objects.filter(integration=integration)).values_list(
            "pk", flat=True
        )
    )
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
                    "may_change": task.pk in may_change and definition.number not in FOLLOW_INFREF,
                    "blocked_by": task.waiting_for() if not task.is_settled else [],
                }
            )
    return items


@login_required
def integration_detail(request: HttpRequest, pk: int) -> HttpResponse:
    integration = get_visible_or_404(request.user, _INTEGRATIONS, pk=pk)
    municipalities = integration.municipalities.order_by("name")
    scope = scope_of(request.user)
    if scope.municipality_ids and not (scope.vendor_ids or scope.is_kombit or scope.is_superuser):
        # An architect reads readiness for their own municipality, not the others'.
        municipalities = municipalities.filter(pk__in=scope.municipality_ids)
    may_change = can_change(request.user, integration)
    accounts = visible(
        request.user,
        SftpAccount.objects.filter(it_system__in=[integration.sender_id, integration.receiver_id]),
    )
    onboarding = rules.onboarding_of([integration])[integration.pk]  # read once, not per row
    context = {
        "integration": integration,
        "accounts": accounts,
        "checklist": _checklist(integration, request.user),
        "readiness": [
            (m, rules.readiness(integration, m, onboarding=onboarding)) for m in municipalities
        ],
        "agreement": getattr(integration, "processing_agreement", None),
        "test": getattr(integration, "test", None),
        "legal_review_overdue": legal_review_overdue(integration),
        "may_change": may_change,
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
    task = get_visible_or_404(
        request.user, OnboardingTask.objects.select_related("integration"), pk=pk
    )
    if task.number in FOLLOW_INFREF:
        raise PermissionDenied
    task = get_changeable_or_404(request.user, OnboardingTask.objects.all(), pk=pk)
    form = TaskForm(request.POST or None, instance=task)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                task.due_date = form.cleaned_data["due_date"]
                rules.set_state(
                    task,
                    form.cleaned_data["state"],
                    request.user,
                    comment=form.cleaned_data["comment"],
                )
        except ValidationError as error:
            form.add_error("state", error)
        else:
            messages.success(request, _("Task %(number)s is saved.") % {"number": task.number})
            return redirect("onboarding:detail", pk=task.integration_id)
    return render(
        request,
        "onboarding/task_form.html",
        {"form": form, "task": task, "blocked_by": task.waiting_for()},
    )


@login_required
def agreement_edit(request: HttpRequest, pk: int) -> HttpResponse:
    integration = get_changeable_or_404(request.user, _INTEGRATIONS, pk=pk)
    agreement = getattr(integration, "processing_agreement", None)
    form = ProcessingAgreementForm(
        request.POST or None, request.FILES or None, instance=agreement, integration=integration
    )
    if request.method == "POST" and form.is_valid():
        agreement = form.save(commit=False)
        agreement.integration = integration
        agreement.save()
        form.save_m2m()
        messages.success(request, _("The data-processing agreement is saved."))
        return redirect("onboarding:detail", pk=pk)
    return render(
        request, "onboarding/agreement_form.html", {"form": form, "integration": integration}
    )


@login_required
def agreement_document(request: HttpRequest, pk: int) -> FileResponse:
    agreement = get_visible_or_404(request.user, ProcessingAgreement.objects.all(), pk=pk)
    if not agreement.document:
        raise Http404
    response = FileResponse(
        agreement.document.open("rb"), as_attachment=True, filename=agreement.document.name
    )
    response["X-Content-SHA256"] = agreement.document_sha256
    return response


@login_required
def test_edit(request: HttpRequest, pk: int) -> HttpResponse:
    integration = get_changeable_or_404(request.user, _INTEGRATIONS, pk=pk)
    test = getattr(integration, "test", None) or IntegrationTest(integration=integration)
    form = IntegrationTestForm(request.POST or None, instance=test)
    if request.method == "POST" and form.is_valid():
        test = form.save(commit=False)
        if form.cleaned_data["accept"]:
            test.accepted_by, test.accepted_at = request.user, timezone.now()
        elif form.has_changed():
            # A changed result is a new result: it must be accepted again.
            test.accepted_by = test.accepted_at = None
        test.save()
        messages.success(request, _("The test record is saved."))
        return redirect("onboarding:detail", pk=pk)
    test_transfers = visible(
        request.user,
        Transfer.objects.filter(
            route__integration=integration, route__environment=Environment.EXTERNAL_TEST
        ).select_related("route__municipality"),
    )[:50]
    return render(
        request,
        "onboarding/test_form.html",
        {"form": form, "integration": integration, "test": test, "transfers": test_transfers},
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
    """A municipal architect's integrations, and what each still lacks for their municipality."""
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
                    (
                        integration,
                        rules.readiness(
                            integration, municipality, onboarding=onboarding[integration.pk]
                        ),
                    )
                    for integration in integrations
                ],
            }
        )
    return render(request, "onboarding/municipality.html", {"sections": sections})
