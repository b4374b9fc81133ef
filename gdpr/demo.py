"""Demo InfRef requests, one in each of the four steps, made through the real workflow."""

from datetime import date

from django.contrib.auth import get_user_model

from gdpr import workflow
from gdpr.models import GdprDeclaration, InfRefRequest
from portal.accounts.models import Organisation
from portal.itsystems.models import ItSystem

_ANSWERS = {
    "purpose": "Overførsel af borgerdata ved skift af fagsystem, så borgerens forløb kan "
    "fortsætte uden genindtastning.",
    "data_subject_categories": "Borgere med aktive forløb i kommunen.",
    "personal_data_categories": "Navn, adresse, CPR-nummer, forløbsoplysninger.",
    "includes_cpr": True,
    "legal_basis_art6": ["c", "e"],
    "legal_basis_detail": "Forvaltningsloven § 28; databeskyttelsesloven § 11.",
    "dpa_title": "Databehandleraftale om Fagsystemdefinerede Data",
    "dpa_signed_on": date(2026, 3, 1),
    "data_specification_version": "1.0",
    "retention": "Modtageren opbevarer data efter kommunens regler for sagsbehandling.",
    "deletion": "Filer slettes fra Serviceplatformen, når modtageren har hentet dem.",
    "security_measures": "SFTP med nøgleautentifikation, rutebaseret levering, logning.",
    "transfer_frequency": GdprDeclaration.Frequency.DAILY,
    "transfer_volume": "Ca. 5 MB pr. kommune pr. døgn.",
    "contact_name": "Karen Holm",
    "contact_email": "nordlys@example.invalid",
    "signatory_name": "Søren Nordlys",
    "signatory_title": "Direktør",
    "signed_on": date(2026, 11, 2),
}

# IT system → (InfRef, step to reach)
PLAN = {
    "Nordlys Omsorg": ("FagsystemdefineredeDataRefGDPR1203_1", InfRefRequest.Step.CREATED),
    "Fjordsoft Borgerdata": ("FagsystemdefineredeDataRefGDPR1204_1", InfRefRequest.Step.DECLARED),
    "Fjordsoft Skoledata": ("FagsystemdefineredeDataRefGDPR1205_1", InfRefRequest.Step.ASSIGNED),
    "Nordlys Sag": (None, InfRefRequest.Step.REQUESTED),
}


def _declare(request: InfRefRequest, vendor_user, purpose: str | None = None) -> None:
    draft = workflow.open_draft(request.infref, vendor_user)
    for field, value in _ANSWERS.items():
        setattr(draft, field, value)
    if purpose:
        draft.purpose = purpose
    draft.save()
    draft.controllers.set(Organisation.objects.filter(municipality_code__in=["751", "461"]))
    draft.receiving_it_systems.set(ItSystem.objects.filter(is_receiver=True))
    workflow.submit_declaration(draft, vendor_user)


def seed_infref_requests() -> None:
    """Steps 1 and 2: requested, and assigned where the plan goes further. The declarations
    wait for the integrations and their data specifications (`seed_declarations`), since a
    declaration names a real specification version."""
    users = get_user_model().objects
    operator = users.get(username="kombit")
    for system_name, (infref_name, target) in PLAN.items():
        it_system = ItSystem.objects.get(name=system_name)
        if InfRefRequest.objects.filter(it_system=it_system).exists():
            continue
        vendor_user = users.get(memberships__organisation=it_system.vendor)
        request = workflow.request_infref(
            it_system=it_system,
            description=f"Data fra {system_name} til kommunernes modtagende fagsystemer.",
            user=vendor_user,
        )
        if target >= InfRefRequest.Step.ASSIGNED:
            infref = workflow.assign_infref(request, name=infref_name, user=operator)
        if target == InfRefRequest.Step.ASSIGNED:
            workflow.open_draft(infref, vendor_user)  # a draft in progress


def seed_declarations() -> None:
    """Steps 3 and 4 for the InfRefs the plan takes that far; a later run adds nothing."""
    users = get_user_model().objects
    operator = users.get(username="kombit")
    for system_name, (infref_name, target) in PLAN.items():
        if target < InfRefRequest.Step.DECLARED:
            continue
        request = InfRefRequest.objects.select_related("infref").get(
            it_system__name=system_name, infref__name=infref_name
        )
        if request.infref.declarations.exclude(status=GdprDeclaration.Status.DRAFT).exists():
            continue
        vendor_user = users.get(memberships__organisation=request.it_system.vendor)
        _declare(request, vendor_user)
        if target == InfRefRequest.Step.CREATED:
            workflow.mark_created(request.infref, operator)
            # A second version, so the history of a declaration line shows in the demo.
            _declare(
                request, vendor_user, purpose=_ANSWERS["purpose"] + " Udvidet til skoleområdet."
            )
