"""A ready integration on a running simulator: accounts with keys, pinned host key, routes.

    with on_simulator(tmp_path, staff=..., operator=..., sender=..., receiver=...,
                      municipalities=[aarhus]) as ready:
        queue_send(ready.route, ...)

conftest.py's `ready_route` fixture does this for a test, on the suite's parties; a test that
must stop the simulator at a moment of its own (before a disk under it goes) uses `on_simulator`.
"""

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date

from gdpr import workflow
from gdpr.forms import DeclarationForm
from portal.accounts.models import Organisation
from portal.itsystems.models import ItSystem
from portal.onboarding import bilateral, rules
from portal.onboarding.models import Consent, Integration, IntegrationTest, OnboardingTask
from tests.support.declarations import complete_answers
from tests.support.specs import spec_version
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


def routes_for(
    integration, municipalities, environment: str = Environment.SIMULATOR
) -> dict[str, Route]:
    return {
        m.municipality_code: Route.objects.create(
            environment=environment,
            infref=integration.infref,
            sender=integration.sender,
            receiver=integration.receiver,
            municipality=m,
            integration=integration,
            state=Route.State.ESTABLISHED,
        )
        for m in municipalities
    }


SENDER, RECEIVER = "alfa_omsorg", "beta_journal"

# A host key to pin on accounts no session is opened on: route_blockers only asks that one is.
PINNED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeHostKeyForTestsOnly"


@dataclasses.dataclass
class ReadyRoute:
    """An integration that may send: established routes, SFTP accounts with keys and the
    platform's host key, and on the simulator, the simulator knowing all of it."""

    integration: Integration
    routes: dict[str, Route]  # by municipality code, in the order given
    sender: SftpAccount
    receiver: SftpAccount | None
    staff: object  # the sending vendor's member who set it up
    sim: Simulator | None = None

    @property
    def route(self) -> Route:
        """The first municipality's route."""
        return next(iter(self.routes.values()))


def ready_route(
    *,
    staff,
    operator,
    sender: ItSystem,
    receiver: ItSystem,
    municipalities: Sequence[Organisation],
    sim: Simulator | None = None,
    environment: str = Environment.SIMULATOR,
    receiver_account: bool = True,
    usernames: tuple[str, str] = (SENDER, RECEIVER),
    sender_public_key: str | None = None,
    **endpoint,
) -> ReadyRoute:
    """A ready integration from `sender` to `receiver`, a route for each municipality and an
    SFTP account for each IT system, named `usernames` (none for the receiver when
    `receiver_account` is false): on `sim`, whose registry then holds them, or else at
    `endpoint` (port, host_key, ...). `sender_public_key` is the sending account's key where a
    client outside the portal (a stock SFTP client) holds the private one."""
    integration = ready_integration(
        staff=staff,
        operator=operator,
        sender=sender,
        receiver=receiver,
        municipalities=list(municipalities),
    )
    fields = {"environment": environment, **endpoint}
    sender_fields = (
        fields if sender_public_key is None else {**fields, "public_key": sender_public_key}
    )
    ready = ReadyRoute(
        integration=integration,
        routes=routes_for(integration, municipalities, environment),
        sender=account(sender, usernames[0], sim, **sender_fields),
        receiver=account(receiver, usernames[1], sim, **fields) if receiver_account else None,
        staff=staff,
        sim=sim,
    )
    if sim is not None:
        load_registry(sim)
    return ready


@contextmanager
def simulator(tmp_path, host_key_file: str = "host_key", delay: float = 0.0) -> Iterator[Simulator]:
    """A simulator whose registry the test loads (`load_registry`) once the rows exist. It routes
    a trigger at once, or `delay` seconds after it came (PLATFORM_DELAY: as the platform does, for
    a stock client that stats what it has just closed)."""
    sim = Simulator(
        tmp_path / "serviceplatform",
        registry=StaticRegistry(Registry()),
        host_key=tmp_path / host_key_file,
        delay=delay,
    ).start()
    try:
        yield sim
    finally:
        sim.stop()
        sessions.drop_all_sessions()


@contextmanager
def on_simulator(tmp_path, **parties) -> Iterator[ReadyRoute]:
    """`ready_route(**parties)` on a simulator that runs for the block."""
    with simulator(tmp_path) as sim:
        yield ready_route(sim=sim, **parties)


def load_registry(sim: Simulator, **changes) -> Registry:
    """The portal's records as the simulator's registry, with `changes` applied."""
    registry = dataclasses.replace(Registry.from_database(), **changes)
    sim.registry.registry = registry
    return registry
