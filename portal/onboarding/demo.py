"""Demo integrations at different stages of onboarding."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from gdpr.models import InfRef
from portal.accounts.models import Organisation
from portal.itsystems.models import ItSystem
from portal.onboarding import rules
from portal.onboarding.models import Integration, IntegrationTest, OnboardingTask

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
    for task in live.tasks.exclude(number__in=(30, 40)):
        if task.municipality_id != odense.pk:
            rules.set_state(task, State.DONE, nordlys)
    odense_route = live.tasks.get(number=70, municipality=odense)
    odense_route.due_date = today - timedelta(days=5)
    rules.set_state(odense_route, State.IN_PROGRESS, nordlys, comment="Bestilt, afventer KOMBIT.")
    IntegrationTest.objects.create(
        integration=live,
        scope="Tre testborgere pr. kommune i det eksterne testmiljø.",
        result=IntegrationTest.Result.PASSED,
        accepted_by=nordlys,
        accepted_at=timezone.now(),
    )

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
