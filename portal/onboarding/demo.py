"""Demo integrations at different stages of onboarding."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from gdpr.models import InfRef
from portal.accounts.models import Organisation
from portal.itsystems.models import ItSystem
from portal.onboarding import bilateral, rules
from portal.onboarding.models import (
    Consent,
    Integration,
    IntegrationTest,
    OnboardingTask,
    ProcessingAgreement,
)

State = OnboardingTask.State


def seed_integrations() -> None:
    users = get_user_model().objects
    nordlys = users.get(username="nordlys")
    aarhus = Organisation.objects.get(municipality_code="751")
    odense = Organisation.objects.get(municipality_code="461")
    if Integration.objects.exists():
        return
    today = timezone.localdate()

    # In production for Aarhus; Odense has joined and waits for its route.
    live = rules.create_integration(
        name="Omsorgsdata til Fjordsoft Journal",
        sender=ItSystem.objects.get(name="Nordlys Omsorg"),
        receiver=ItSystem.objects.get(name="Fjordsoft Journal"),
        infref=InfRef.objects.get(name="FagsystemdefineredeDataRefGDPR1203_1"),
        municipalities=[aarhus, odense],
        legal_basis="Serviceloven § 83 og forvaltningsloven § 28.",
        legal_basis_reviewed_on=today - timedelta(days=40),
        created_by=nordlys,
    )
    # Tasks 10, 50, 60 and 70 follow the specification, accounts and routes seeded after this.
    ProcessingAgreement.objects.create(
        integration=live,
        title="Databehandleraftale om omsorgsdata 2026",
        signed_on=today - timedelta(days=60),
    ).parties.set([live.sender.vendor, aarhus])
    IntegrationTest.objects.create(
        integration=live,
        scope="Tre testborgere pr. kommune i det eksterne testmiljø.",
        result=IntegrationTest.Result.PASSED,
    )
    aarhus_architect = users.get(username="aarhus")
    for subject in (Consent.Subject.AGREEMENT, Consent.Subject.TEST):
        bilateral.give(live, subject, live.sender.vendor, nordlys)
        bilateral.give(live, subject, aarhus, aarhus_architect)
    # Odense has joined and waits for its agreement and its route.
    odense_route = live.tasks.get(number=70, municipality=odense)
    odense_route.due_date = today - timedelta(days=5)
    odense_route.comment = "Bestilt, afventer KOMBIT."
    odense_route.save(update_fields=["due_date", "comment"])

    # Just begun: the InfRef is not yet assigned and the legal basis is due for review.
    fjordsoft = users.get(username="fjordsoft")
    early = rules.create_integration(
        name="Skoledata til Nordlys Sag",
        sender=ItSystem.objects.get(name="Fjordsoft Skoledata"),
        receiver=ItSystem.objects.get(name="Nordlys Sag"),
        municipalities=[aarhus],
        legal_basis="Folkeskoleloven § 46.",
        legal_basis_reviewed_on=today - timedelta(days=420),
        created_by=fjordsoft,
    )
    spec_task = early.tasks.get(number=10)
    spec_task.due_date = today + timedelta(days=14)
    rules.set_state(spec_task, State.IN_PROGRESS, fjordsoft)

    # Declared, waiting for KOMBIT to create the InfRef on Serviceplatformen.
    rules.create_integration(
        name="Borgerdata til Nordlys Sag",
        sender=ItSystem.objects.get(name="Fjordsoft Borgerdata"),
        receiver=ItSystem.objects.get(name="Nordlys Sag"),
        infref=InfRef.objects.get(name="FagsystemdefineredeDataRefGDPR1204_1"),
        municipalities=[odense],
        legal_basis="Serviceloven § 83.",
        legal_basis_reviewed_on=today - timedelta(days=10),
        created_by=fjordsoft,
    )
