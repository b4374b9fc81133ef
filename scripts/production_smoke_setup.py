"""The records the production smoke test sends its file through, made with the portal's own
functions: a vendor with a sending and a receiving IT system, their SFTP accounts on the local
simulator (keys made by the portal, the simulator's host key pinned), an integration whose
onboarding is done, an established route, and an API token for each IT system.

Not the demo data: `seed_demo` refuses to run with DEBUG off, and rightly, since its users have
a published password. The users made here have no password at all.

Run with the portal's environment as `python -m scripts.production_smoke_setup FILE`; writes
{"route": id, "sender_token": ..., "receiver_token": ...} as JSON to FILE, readable by its owner
alone (the tokens work for as long as the database lives).
"""

import json
import os
import sys
from datetime import date
from pathlib import Path

# Aarhus; any municipality would do, the migrations load all 98.
MUNICIPALITY_CODE = "751"
# Fictitious, with a valid check digit (weights 2, 7, 6, 5, 4, 3, 2, 1).
VENDOR_CVR = "12345674"
ANSWERS = {
    "purpose": "Røgtest af en produktionsinstallation.",
    "data_subject_categories": "Ingen; filen er opdigtet.",
    "personal_data_categories": "Ingen.",
    "legal_basis_art6": ["e"],
    "legal_basis_detail": "Røgtest.",
    "dpa_title": "Ingen databehandling",
    "dpa_signed_on": date(2026, 1, 1),
    "data_specification_version": "1.0",
    "retention": "Slettes efter testen.",
    "deletion": "Databasen slettes efter testen.",
    "security_measures": "SFTP med nøgler.",
    "transfer_frequency": "daily",
    "transfer_volume": "Én fil.",
    "contact_name": "Røgtest",
    "contact_email": "smoke@example.invalid",
    "signatory_name": "Røgtest",
    "signatory_title": "Test",
    "signed_on": date(2026, 1, 1),
}


def make_records() -> dict:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from gdpr import workflow
    from handoff import tokens
    from portal.accounts.models import Membership, Organisation
    from portal.itsystems.models import ItSystem
    from portal.onboarding import bilateral, rules
    from portal.onboarding.models import Consent, IntegrationTest, OnboardingTask
    from portal.specs.diff import FieldSpec
    from portal.specs.versions import create_version
    from transfers import keys
    from transfers.demo import simulator_host_key
    from transfers.models import Environment, Route, SftpAccount
    from transfers.queueing import route_blockers
    from transfers.sftp import host_key_fingerprint

    now = timezone.now()
    with transaction.atomic():
        users = get_user_model().objects
        vendor = Organisation(kind=Organisation.Kind.VENDOR, name="Røgtest A/S", cvr=VENDOR_CVR)
        vendor.full_clean()
        vendor.save()
        staff = users.create_user("smoke-vendor", email="smoke-vendor@example.invalid")
        Membership.objects.create(user=staff, organisation=vendor)
        operator = users.create_user("smoke-kombit", email="smoke-kombit@example.invalid")
        Membership.objects.create(
            user=operator, organisation=Organisation.objects.get(kind=Organisation.Kind.KOMBIT)
        )
        municipality = Organisation.objects.get(municipality_code=MUNICIPALITY_CODE)
        sender = ItSystem.objects.create(
            uuid="0f7c6a52-1d1e-4a8e-9c55-6d1f2a3b4c01",
            name="Røgtest Afsender",
            vendor=vendor,
            is_sender=True,
        )
        receiver = ItSystem.objects.create(
            uuid="0f7c6a52-1d1e-4a8e-9c55-6d1f2a3b4c02",
            name="Røgtest Modtager",
            vendor=vendor,
            is_receiver=True,
        )

        # The four InfRef steps and onboarding, as tests/support/engine.py's ready_integration
        # takes them.
        integration = rules.create_integration(
            name="Røgtest",
            sender=sender,
            receiver=receiver,
            created_by=staff,
            municipalities=[municipality],
            legal_basis="Røgtest.",
            legal_basis_reviewed_on=date.today(),
        )
        request = workflow.request_infref(it_system=sender, description="Røgtest.", user=staff)
        infref = workflow.assign_infref(
            request, name=workflow.proposed_infref_name(), user=operator
        )
        integration.infref = infref
        integration.save()
        # The version the declaration names (ANSWERS): a declaration names one that exists.
        create_version(
            integration,
            major=1,
            minor=0,
            structure={"format": "csv", "encoding": "utf-8", "delimiter": ";", "frequency": "-"},
            fields=[FieldSpec("cpr", "cpr", True, "CPR-nummer")],
            user=staff,
        )
        draft = workflow.open_draft(infref, staff)
        for field, value in ANSWERS.items():
            setattr(draft, field, value)
        draft.save()
        draft.controllers.set([municipality])
        draft.receiving_it_systems.set([receiver])
        workflow.submit_declaration(draft, staff)
        workflow.mark_created(infref, operator)
        for task in integration.tasks.exclude(number__in=rules.MIRRORED):
            rules.set_state(task, OnboardingTask.State.DONE, staff)
        IntegrationTest.objects.create(
            integration=integration, result=IntegrationTest.Result.PASSED
        )
        for party in (sender.vendor, municipality):
            for subject in (Consent.Subject.NO_AGREEMENT, Consent.Subject.TEST):
                bilateral.give(integration, subject, party, staff)

        # Pinned as an operator pins it after comparing the fingerprint the simulator prints.
        host_key = simulator_host_key()
        for it_system, username in ((sender, "smoke_sender"), (receiver, "smoke_receiver")):
            pair = keys.generate("ed25519", comment=username)
            SftpAccount.objects.create(
                it_system=it_system,
                environment=Environment.SIMULATOR,
                username=username,
                host=settings.SIMULATOR_HOST,
                port=settings.SIMULATOR_PORT,
                key_kind=pair.kind,
                public_key=pair.public_openssh,
                key_fingerprint=pair.fingerprint,
                private_key_encrypted=pair.private_encrypted,
                key_created_at=now,
                host_key=host_key,
                host_key_fingerprint=host_key_fingerprint(host_key),
                host_key_confirmed_by=operator,
                host_key_confirmed_at=now,
            )
        route = Route.objects.create(
            environment=Environment.SIMULATOR,
            infref=infref,
            sender=sender,
            receiver=receiver,
            municipality=municipality,
            integration=integration,
            state=Route.State.ESTABLISHED,
        )
        blockers = route_blockers(route)
        if blockers:
            raise SystemExit("The smoke test's route is not ready: " + " ".join(blockers))
        _, sender_token = tokens.issue(sender, name="smoke", valid_days=30, user=staff)
        _, receiver_token = tokens.issue(receiver, name="smoke", valid_days=30, user=staff)
    return {"route": route.pk, "sender_token": sender_token, "receiver_token": receiver_token}


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m scripts.production_smoke_setup FILE")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    records = make_records()
    output = Path(sys.argv[1])
    output.touch(mode=0o600)
    output.write_text(json.dumps(records) + "\n")


if __name__ == "__main__":
    main()
