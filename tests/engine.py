"""A ready integration on a running simulator: accounts with keys, pinned host key, routes."""

import dataclasses
from contextlib import contextmanager
from datetime import date

from gdpr import workflow
from gdpr.forms import DeclarationForm
from portal.onboarding import bilateral, rules
from portal.onboarding.models import Consent, IntegrationTest, OnboardingTask
from tests.test_infref_process import complete_answers, spec_version
from transfers import keys, sessions
from transfers.models import Environment, Route, SftpAccount
from transfers.simulator.registry import Registry, StaticRegistry
from transfers.simulator.server import Simulator


def ready_integration(*, staff, operator, sender, receiver, municipalities):
    """An integration whose onboarding allows sends for every municipality given."""
    integration = rules.create_integration(
        name="Motor",
        sender=sender,
        receiver=receiver,
        created_by=staff,
        municipalities=municipalities,
        legal_basis="x",
        legal_basis_reviewed_on=date.today(),
    )
    request = workflow.request_infref(it_system=sender, description="x", user=staff)
    infref = workflow.assign_infref(
        request, name="FagsystemdefineredeDataRefGDPR4242_1", user=operator
    )
    integration.infref = infref
    integration.save()
    spec_version(integration, 1, 0)  # the version the declaration names
    draft = workflow.open_draft(infref, staff)
    form = DeclarationForm(complete_answers(municipalities, [receiver]), instance=draft)
    assert form.is_valid(), form.errors
    form.save()
    workflow.submit_declaration(draft, staff)
    workflow.mark_created(infref, operator)
    for task in integration.tasks.exclude(number__in=rules.MIRRORED):
        rules.set_state(task, OnboardingTask.State.DONE, staff)
    IntegrationTest.objects.create(integration=integration, result="passed")
    for party in (sender.vendor, *municipalities):
        for subject in (Consent.Subject.NO_AGREEMENT, Consent.Subject.TEST):
            bilateral.give(integration, subject, party, staff)
    return integration


def account(it_system, username: str, simulator: Simulator | None, **overrides) -> SftpAccount:
    pair = keys.generate("ed25519", comment=username)
    host_key = (
        f"{simulator.host_key.get_name()} {simulator.host_key.get_base64()}" if simulator else ""
    )
    fields = {
        "it_system": it_system,
        "environment": Environment.SIMULATOR,
        "username": username,
        "host": "127.0.0.1",
        "port": simulator.port if simulator else 1,
        "key_kind": pair.kind,
        "public_key": pair.public_openssh,
        "key_fingerprint": pair.fingerprint,
        "private_key_encrypted": pair.private_encrypted,
        "host_key": host_key,
        **overrides,
    }
    return SftpAccount.objects.create(**fields)


def routes_for(integration, municipalities) -> dict[str, Route]:
    return {
        m.municipality_code: Route.objects.create(
            environment=Environment.SIMULATOR,
            infref=integration.infref,
            sender=integration.sender,
            receiver=integration.receiver,
            municipality=m,
            integration=integration,
            state=Route.State.ESTABLISHED,
        )
        for m in municipalities
    }


@contextmanager
def simulator(tmp_path, host_key_file: str = "host_key"):
    """A simulator whose registry the test loads (`load_registry`) once the rows exist."""
    sim = Simulator(
        tmp_path / "serviceplatform",
        registry=StaticRegistry(Registry()),
        host_key=tmp_path / host_key_file,
    ).start()
    try:
        yield sim
    finally:
        sim.stop()
        sessions.drop_all_sessions()


def load_registry(sim: Simulator, **changes) -> Registry:
    """The portal's records as the simulator's registry, with `changes` applied."""
    registry = dataclasses.replace(Registry.from_database(), **changes)
    sim.registry.registry = registry
    return registry
