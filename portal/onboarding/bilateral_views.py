"""The steps the sending vendor and each municipality agree bilaterally, on their pages: the
data-processing agreement, the test record, and each party's yes (bilateral.py)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest, PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from portal.accounts.access import (
    can_change,
    get_changeable_or_404,
    get_visible_or_404,
    scope_of,
    visible,
)
from portal.accounts.models import Organisation
from portal.onboarding import bilateral
from portal.onboarding.forms import IntegrationTestForm, ProcessingAgreementForm
from portal.onboarding.models import Consent, Integration, IntegrationTest, ProcessingAgreement
from transfers.models import Environment, Transfer

_INTEGRATIONS = Integration.objects.select_related("sender__vendor", "receiver__vendor")
Subject = Consent.Subject
# The bilateral steps in the order the parties meet them.
SUBJECTS = (Subject.AGREEMENT, Subject.NO_AGREEMENT, Subject.TEST)
# Where the consent buttons send the user back to.
BACK_TO_TEST = "test"


def _own_municipalities(user, integration: Integration) -> QuerySet[Organisation]:
    """The integration's municipalities the user acts for."""
    return integration.municipalities.filter(pk__in=scope_of(user).municipality_ids)


def is_bilateral_party(user, integration: Integration) -> bool:
    """The agreement and the test are kept by the sending vendor and the municipalities
    together ("aftales bilateralt mellem afsender og modtager"), each for its own part."""
    return can_change(user, integration) or _own_municipalities(user, integration).exists()


def municipalities_seen(user, integration: Integration) -> QuerySet[Organisation]:
    """The municipalities whose readiness and consents the user reads: an architect reads their
    own, not the other municipalities'."""
    municipalities = integration.municipalities.order_by("name")
    scope = scope_of(user)
    if scope.municipality_ids and not (scope.vendor_ids or scope.is_kombit or scope.is_superuser):
        municipalities = municipalities.filter(pk__in=scope.municipality_ids)
    return municipalities


def consent_rows(
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

    blocks = []
    for municipality in municipalities:
        rows = []
        for subject in subjects:
            cells = []
            for party, municipality_id in ((vendor, None), (municipality, municipality.pk)):
                consent = said(subject, party, municipality_id)
                acts = party.pk in acting
                # The other answer to the same question must be withdrawn first (bilateral).
                contradicts = subject in bilateral.OPPOSITE and any(
                    c.subject == bilateral.OPPOSITE[subject] and c.organisation_id == party.pk
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
def agreement_edit(request: HttpRequest, pk: int) -> HttpResponse:
    integration = get_visible_or_404(request.user, _INTEGRATIONS, pk=pk)
    agreement = getattr(integration, "processing_agreement", None)
    # The agreement is between the sending vendor and the municipality: either registers it.
    if agreement is not None:
        agreement = get_changeable_or_404(
            request.user, ProcessingAgreement.objects.all(), pk=agreement.pk
        )
    elif not is_bilateral_party(request.user, integration):
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
    test = getattr(integration, "test", None)
    # Test data and scope are agreed between sender and receiver: the sending vendor and the
    # municipalities keep the record together (IntegrationTest's access rule).
    if test is not None:
        test = get_changeable_or_404(request.user, IntegrationTest.objects.all(), pk=test.pk)
    elif not is_bilateral_party(request.user, integration):
        raise PermissionDenied
    test = test or IntegrationTest(integration=integration)
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
            "consents": consent_rows(
                integration,
                list(municipalities_seen(request.user, integration)),
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
