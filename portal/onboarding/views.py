from datetime import timedelta
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest, PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from gdpr.models import HOLDS_IT_SYSTEM, InfRefRequest
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
from portal.onboarding import bilateral, rules
from portal.onboarding.catalogue import TASKS
from portal.onboarding.follow import MIRRORED
from portal.onboarding.forms import (
    AddMunicipalityForm,
    IntegrationEditForm,
    IntegrationForm,
    IntegrationTestForm,
    ProcessingAgreementForm,
    TaskForm,
)
from portal.onboarding.models import (
    Consent,
    Integration,
    IntegrationMunicipality,
    IntegrationTest,
    OnboardingTask,
    ProcessingAgreement,
)
from transfers.models import Environment, Route, SftpAccount, Transfer

_INTEGRATIONS = Integration.objects.select_related(
    "sender__vendor", "receiver__vendor", "infref"
).prefetch_related("municipalities", "tasks")
_WITH_SYSTEMS = Integration.objects.select_related("sender__vendor", "receiver__vendor")
LEGAL_REVIEW_INTERVAL = timedelta(days=365)
Subject = Consent.Subject
# The bilateral steps in the order the parties meet them.
SUBJECTS = (Subject.AGREEMENT, Subject.NO_AGREEMENT, Subject.TEST)
# Where the consent buttons send the user back to.
BACK_TO_TEST = "test"


def legal_review_overdue(integration: Integration) -> bool:
    reviewed = integration.legal_basis_reviewed_on
    return reviewed is None or timezone.localdate() - reviewed > LEGAL_REVIEW_INTERVAL


def _progress(integration: Integration) -> tuple[int, int]:
    tasks = list(integration.tasks.all())
    return sum(task.is_settled for task in tasks), len(tasks)


def _with_query(name: str, **query) -> str:
    return f"{reverse(name)}?{urlencode(query)}"


def _own_municipalities(user, integration: Integration) -> QuerySet[Organisation]:
    """The integration's municipalities the user acts for."""
    return integration.municipalities.filter(pk__in=scope_of(user).municipality_ids)


def _is_bilateral_party(user, integration: Integration) -> bool:
    """The agreement and the test are kept by the sending vendor and the municipalities
    together ("aftales bilateralt mellem afsender og modtager"), each for its own part."""
    return can_change(user, integration) or _own_municipalities(user, integration).exists()


def _municipalities_seen(user, integration: Integration) -> QuerySet[Organisation]:
    """The municipalities whose readiness and consents the user reads: an architect reads their
    own, not the other municipalities'."""
    municipalities = integration.municipalities.order_by("name")
    scope = scope_of(user)
    if scope.municipality_ids and not (scope.vendor_ids or scope.is_kombit or scope.is_superuser):
        municipalities = municipalities.filter(pk__in=scope.municipality_ids)
    return municipalities


def _routes_of(integration: Integration) -> QuerySet[Route]:
    """The integration's routes in any environment, also those ordered before it existed (by
    InfRef, sender and receiver), as follow.py counts them."""
    flow = Q(integration=integration)
    if integration.infref_id:
        flow |= Q(
            integration__isnull=True,
            infref_id=integration.infref_id,
            sender_id=integration.sender_id,
            receiver_id=integration.receiver_id,
        )
    return Route.objects.filter(flow)


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
    routed = set(_routes_of(integration).values_list("municipality_id", flat=True))
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
        if _routes_of(integration).filter(municipality=municipality).exists():
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


# What moves each task, told on the task page and in the checklist.
def _moved_by(number: int) -> str:
    return {
        10: _(
            "Task 10 is done when a version of the data specification is registered. It can "
            "also be settled by hand, if the specification is kept outside the portal."
        ),
        20: _(
            "Task 20 follows the agreement: it is done when the sending vendor and each "
            "municipality have confirmed the data-processing agreement, or that none is needed. "
            "It is not set by hand."
        ),
        30: _(
            "Task 30 follows the InfRef request: it is done when the InfRef is linked to the "
            "integration and its GDPR declaration is submitted and current. It is not set by hand."
        ),
        40: _(
            "Task 40 follows KOMBIT: it is done when KOMBIT marks the InfRef as created on "
            "Serviceplatformen, on the InfRef request's page. It is not set by hand."
        ),
        50: _(
            "Task 50 is done when the sending IT system has an SFTP account in production. It "
            "can also be settled by hand."
        ),
        60: _(
            "Task 60 is done when the receiving IT system has an SFTP account in production. It "
            "can also be settled by hand."
        ),
        70: _(
            "Task 70 is in progress when the production route for the municipality is ordered, "
            "and done when it is established. It can also be settled by hand."
        ),
    }[number]


class _Signposts:
    """Links to where each task is moved, for the links the user can follow: a link to a page
    that would answer 403 or 404 leads nowhere."""

    def __init__(self, integration: Integration, user) -> None:
        self.integration = integration
        self.user = user
        scope = scope_of(user)
        self.sends = scope.is_superuser or integration.sender.vendor_id in scope.vendor_ids
        self.receives = scope.is_superuser or integration.receiver.vendor_id in scope.vendor_ids
        self.may_edit = can_change(user, integration)
        # At most one request holds an IT system (a database constraint), assigned or not.
        holding = InfRefRequest.objects.filter(
            HOLDS_IT_SYSTEM, it_system_id=integration.sender_id
        ).first()
        self.request_exists = holding is not None
        self.request = (
            visible(user, InfRefRequest.objects.filter(pk=holding.pk)).first() if holding else None
        )
        self.unlinked_infref = (
            holding is not None and holding.infref_id is not None and integration.infref_id is None
        )

    def for_task(self, task: OnboardingTask) -> list[tuple[str, str]]:
        integration = self.integration
        number = task.number
        links: list[tuple[str, str]] = []
        if number == 10:
            links.append(
                (
                    _("Data specification and its versions"),
                    reverse("specs:specification", args=[integration.pk]),
                )
            )
        elif number == 20:
            links.append(
                (
                    _("Agreement and test, per municipality"),
                    reverse("onboarding:detail", args=[integration.pk]) + "#bilateral-heading",
                )
            )
        elif number == 30:
            if not self.request_exists:
                if self.sends:
                    links.append(
                        (
                            _("Request an InfRef from KOMBIT"),
                            _with_query("gdpr:request_create", it_system=integration.sender_id),
                        )
                    )
            elif self.request is not None:
                links.append(
                    (_("The InfRef request"), reverse("gdpr:request", args=[self.request.pk]))
                )
            if self.unlinked_infref and self.may_edit:
                links.append(
                    (
                        _("Link the InfRef to the integration"),
                        reverse("onboarding:edit", args=[integration.pk]),
                    )
                )
        elif number == 40:
            if self.request is not None:
                links.append(
                    (_("The InfRef request"), reverse("gdpr:request", args=[self.request.pk]))
                )
        elif number in (50, 60):
            system = integration.sender if number == 50 else integration.receiver
            if self.sends if number == 50 else self.receives:
                links.append(
                    (
                        _("Register an SFTP account"),
                        _with_query("transfers:account_create", it_system=system.pk),
                    )
                )
        elif number == 70 and self.sends and task.municipality_id:
            order = {"integration": integration.pk, "municipality": task.municipality_id}
            links.append((_("Order the route"), _with_query("transfers:route_create", **order)))
            links.append(
                (
                    _("Order the route in the external test environment"),
                    _with_query(
                        "transfers:route_create", **order, environment=Environment.EXTERNAL_TEST
                    ),
                )
            )
        return links


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
    signposts = _Signposts(integration, user)
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
                    "moved_by": _moved_by(definition.number),
                    "links": signposts.for_task(task),
                    "blocked_by": task.waiting_for() if not task.is_settled else [],
                }
            )
    return items


def _consent_rows(
    integration: Integration,
    municipalities,
    user,
    subjects: tuple[str, ...] = SUBJECTS,
) -> list[dict]:
    """Per municipality, for each bilateral step: who said yes and when, for the vendor and for
    the municipality, whether the step holds, and what the user may say for the parties they
    act for. Read in a fixed number of queries, however many municipalities."""
    consents = list(integration.consents.select_related("given_by"))
    agreement = getattr(integration, "processing_agreement", None)
    test = getattr(integration, "test", None)
    acting = {party.pk for party in bilateral.parties_for(user, integration)}
    vendor = integration.sender.vendor

    def said(subject: str, party: Organisation, municipality_id: int | None) -> Consent | None:
        return next(
            (
                c
                for c in consents
                if c.subject == subject
                and c.organisation_id == party.pk
                and c.municipality_id == municipality_id
            ),
            None,
        )

    def possible(subject: str) -> bool:
        if subject == Subject.AGREEMENT:
            return agreement is not None
        if subject == Subject.TEST:
            return test is not None and test.has_cleared
        return True

    def names(parties: list[Organisation]) -> str:
        return _(" and ").join(party.name for party in parties)

    opposite = {Subject.AGREEMENT: Subject.NO_AGREEMENT, Subject.NO_AGREEMENT: Subject.AGREEMENT}
    blocks = []
    for municipality in municipalities:
        rows = []
        for subject in subjects:
            cells = []
            for party, municipality_id in ((vendor, None), (municipality, municipality.pk)):
                consent = said(subject, party, municipality_id)
                acts = party.pk in acting
                # The other answer to the same question must be withdrawn first (bilateral).
                contradicts = subject in opposite and any(
                    c.subject == opposite[subject] and c.organisation_id == party.pk
                    for c in consents
                )
                cells.append(
                    {
                        "party": party,
                        "consent": consent,
                        "may_give": acts
                        and consent is None
                        and possible(subject)
                        and not contradicts,
                        "may_withdraw": acts and consent is not None,
                    }
                )
            holds = possible(subject) and bilateral.holds(
                consents, subject, integration, municipality.pk
            )
            rows.append(
                {
                    "subject": subject,
                    "label": Subject(subject).label,
                    "cells": cells,
                    "holds": holds,
                }
            )
        held = {row["subject"] for row in rows if row["holds"]}
        missing = []
        if Subject.AGREEMENT in subjects and not held & {Subject.AGREEMENT, Subject.NO_AGREEMENT}:
            waiting = bilateral.waiting_for(consents, Subject.AGREEMENT, integration, municipality)
            if agreement is None:
                missing.append(
                    _(
                        "The data-processing agreement is not registered, nor is it agreed "
                        "that none is needed."
                    )
                )
            else:
                missing.append(
                    _(
                        "The data-processing agreement, or that none is needed, is not yet "
                        "confirmed by %(parties)s."
                    )
                    % {"parties": names(waiting)}
                )
        if Subject.TEST in subjects and Subject.TEST not in held:
            if not possible(Subject.TEST):
                missing.append(
                    _("The test before production has not passed, nor been agreed to be skipped.")
                )
            else:
                waiting = bilateral.waiting_for(consents, Subject.TEST, integration, municipality)
                missing.append(
                    _("The test before production is not yet accepted by %(parties)s.")
                    % {"parties": names(waiting)}
                )
        blocks.append({"municipality": municipality, "rows": rows, "missing": missing})
    return blocks


@login_required
def integration_detail(request: HttpRequest, pk: int) -> HttpResponse:
    integration = get_visible_or_404(request.user, _INTEGRATIONS, pk=pk)
    municipalities = list(_municipalities_seen(request.user, integration))
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
        "consents": _consent_rows(integration, municipalities, request.user),
        "agreement": agreement,
        "test": getattr(integration, "test", None),
        "legal_review_overdue": legal_review_overdue(integration),
        "may_change": may_change,
        "is_bilateral_party": may_change or _own_municipalities(request.user, integration).exists(),
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
                    _note(task, data["comment"], request.user)
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
            "moved_by": _moved_by(task.number),
            "links": _Signposts(task.integration, request.user).for_task(task),
        },
    )


def _note(task: OnboardingTask, comment: str, user) -> None:
    """Save a task's due date and comment, leaving its state as it is, and log who did it."""
    task.comment = comment
    task.save(update_fields=["due_date", "comment"])
    integration = task.integration
    record(
        user,
        AuditEvent.Action.TASK_CHANGED,
        task,
        concerns=[integration.sender.vendor, integration.receiver.vendor, task.municipality],
        integration=integration.name,
        state=task.state,
        task=task.number,
        **({"municipality": task.municipality.name} if task.municipality else {}),
    )


@login_required
def agreement_edit(request: HttpRequest, pk: int) -> HttpResponse:
    integration = get_visible_or_404(request.user, _INTEGRATIONS, pk=pk)
    agreement = getattr(integration, "processing_agreement", None)
    # The agreement is between the sending vendor and the municipality: either registers it.
    if agreement is not None:
        agreement = get_changeable_or_404(
            request.user, ProcessingAgreement.objects.all(), pk=agreement.pk
        )
    elif not _is_bilateral_party(request.user, integration):
        raise PermissionDenied
    is_new = agreement is None
    form = ProcessingAgreementForm(
        request.POST or None, request.FILES or None, instance=agreement, integration=integration
    )
    if request.method == "POST" and form.is_valid():
        # A changed agreement is a new thing to agree to: every yes to the old one lapses.
        changed = not is_new and bool({"title", "signed_on", "document"} & set(form.changed_data))
        with transaction.atomic():
            agreement = form.save(commit=False)
            agreement.integration = integration
            agreement.save()
            form.save_m2m()
            if changed:
                bilateral.reset(integration, Subject.AGREEMENT, request.user)
        if changed:
            message = _(
                "The data-processing agreement is saved. It changed, so the sending vendor and "
                "each municipality must confirm it again."
            )
        elif is_new:
            message = _(
                "The data-processing agreement is saved. The sending vendor and each "
                "municipality now confirm it on the integration's page."
            )
        else:
            message = _("The data-processing agreement is saved.")
        messages.success(request, message)
        return redirect(reverse("onboarding:detail", args=[pk]) + "#bilateral-heading")
    return render(
        request,
        "onboarding/agreement_form.html",
        {"form": form, "integration": integration, "is_new": is_new},
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
    integration = get_visible_or_404(request.user, _INTEGRATIONS, pk=pk)
    # Test data and scope are agreed between sender and receiver: the sending vendor and the
    # municipalities keep the record together.
    if not _is_bilateral_party(request.user, integration):
        raise PermissionDenied
    test = getattr(integration, "test", None) or IntegrationTest(integration=integration)
    existed = test.pk is not None
    form = IntegrationTestForm(request.POST or None, instance=test)
    if request.method == "POST" and form.is_valid():
        # A changed result is a new result: every acceptance of the old one lapses.
        result_changed = existed and "result" in form.changed_data
        with transaction.atomic():
            test = form.save()
            if result_changed:
                bilateral.reset(integration, Subject.TEST, request.user)
        message = _("The test record is saved.")
        if result_changed:
            message += " " + _(
                "The result changed, so the sending vendor and each municipality must accept "
                "it again."
            )
        messages.success(request, message)
        return redirect("onboarding:test", pk=pk)
    test_transfers = visible(
        request.user,
        Transfer.objects.filter(
            route__integration=integration, route__environment=Environment.EXTERNAL_TEST
        ).select_related("route__municipality"),
    )[:50]
    return render(
        request,
        "onboarding/test_form.html",
        {
            "form": form,
            "integration": integration,
            "test": test if existed else None,
            "transfers": test_transfers,
            "consents": _consent_rows(
                integration,
                list(_municipalities_seen(request.user, integration)),
                request.user,
                subjects=(Subject.TEST,),
            ),
        },
    )


def _consent_action(request: HttpRequest, pk: int, *, give: bool) -> HttpResponse:
    integration = get_visible_or_404(request.user, _INTEGRATIONS, pk=pk)
    parties = {party.pk: party for party in bilateral.parties_for(request.user, integration)}
    party_pk = request.POST.get("party", "")
    # Each party says yes for itself alone: a party the user does not act for is refused.
    party = parties.get(int(party_pk)) if party_pk.isdigit() else None
    if party is None:
        raise PermissionDenied
    subject = request.POST.get("subject")
    if subject not in Subject.values:
        raise BadRequest
    facts = {"party": party.name, "subject": Subject(subject).label}
    try:
        if give:
            # A double submit finds the first yes and keeps it (give is idempotent).
            bilateral.give(integration, subject, party, request.user)
            messages.success(request, _("%(party)s said yes: %(subject)s.") % facts)
        elif bilateral.withdraw(integration, subject, party, request.user):
            messages.success(request, _("%(party)s withdrew its yes: %(subject)s.") % facts)
        else:
            messages.info(request, _("%(party)s had not said yes: %(subject)s.") % facts)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    if request.POST.get("back") == BACK_TO_TEST:
        return redirect("onboarding:test", pk=pk)
    return redirect(reverse("onboarding:detail", args=[pk]) + "#bilateral-heading")


@login_required
@require_POST
def consent_give(request: HttpRequest, pk: int) -> HttpResponse:
    return _consent_action(request, pk, give=True)


@login_required
@require_POST
def consent_withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    return _consent_action(request, pk, give=False)


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
