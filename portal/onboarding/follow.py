"""Tasks follow the records they depend on, in whatever order the records appear.

Each record that moves a task (a data-specification version, the agreement and its consents, the
InfRef and its declaration, SFTP accounts, routes) calls `follow_records` when saved or deleted,
and the task states are worked out afresh from what exists. Tasks 20, 30 and 40 mirror their
records exactly; tasks 10, 50, 60 and 70 are raised by them but may also be settled by hand,
since a specification or an SFTP user may live outside the portal.

The local simulator plays Serviceplatformen's production for the demo and the tests, so its
accounts and routes count for tasks 50–70 as production's do; the external test environment's
never do: a test route does not open production.
"""

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from gdpr.models import HOLDS_IT_SYSTEM, InfRef, InfRefRequest
from portal.onboarding import bilateral
from portal.onboarding.models import Consent, Integration, OnboardingTask
from portal.onboarding.reminders import remind_actionable

State = OnboardingTask.State
# Environments whose accounts and routes count towards production (transfers.models.Environment).
PLAYS_PRODUCTION = ("production", "simulator")
MIRRORED = (20, 30, 40)
_RANK = {State.NOT_STARTED: 0, State.IN_PROGRESS: 1, State.DONE: 2}


def plays_production(environment: str) -> bool:
    return environment in PLAYS_PRODUCTION


def _specification(integration: Integration) -> str:
    from portal.specs.models import SpecificationVersion

    has_version = SpecificationVersion.objects.filter(
        specification__integration=integration
    ).exists()
    return State.DONE if has_version else State.NOT_STARTED


def _agreement(integration: Integration, consents: list[Consent]) -> str:
    municipalities = list(integration.municipalities.all())
    if municipalities and all(
        bilateral.holds(consents, Consent.Subject.NO_AGREEMENT, integration, m.pk)
        for m in municipalities
    ):
        return State.NOT_RELEVANT
    registered = hasattr(integration, "processing_agreement")
    if municipalities and all(
        (registered and bilateral.holds(consents, Consent.Subject.AGREEMENT, integration, m.pk))
        or bilateral.holds(consents, Consent.Subject.NO_AGREEMENT, integration, m.pk)
        for m in municipalities
    ):
        return State.DONE
    said = any(c.subject != Consent.Subject.TEST for c in consents)
    return State.IN_PROGRESS if registered or said else State.NOT_STARTED


def _declaration(integration: Integration) -> tuple[str, str]:
    """Tasks 30 and 40 from the InfRef: declared (and current), and created."""
    if integration.infref_id is None:
        requested = InfRefRequest.objects.filter(
            HOLDS_IT_SYSTEM, it_system_id=integration.sender_id
        ).exists()
        return (State.IN_PROGRESS if requested else State.NOT_STARTED), State.NOT_STARTED
    infref = InfRef.objects.get(pk=integration.infref_id)
    declaration = infref.current_declaration()
    declared = declaration is not None and not declaration.is_outdated
    created = infref.created_on_serviceplatform_at is not None
    return (State.DONE if declared else State.IN_PROGRESS), (
        State.DONE if created else State.NOT_STARTED
    )


def _account(it_system_id: int) -> str:
    from transfers.models import SftpAccount

    environments = set(
        SftpAccount.objects.filter(it_system_id=it_system_id).values_list("environment", flat=True)
    )
    if environments & set(PLAYS_PRODUCTION):
        return State.DONE
    return State.IN_PROGRESS if environments else State.NOT_STARTED


def routes_of(integration: Integration):
    """The integration's routes in any environment, also those ordered without naming it (by
    InfRef, sender and receiver)."""
    from transfers.models import Route

    flow = Q(integration=integration)
    if integration.infref_id:
        flow |= Q(
            integration__isnull=True,
            infref_id=integration.infref_id,
            sender_id=integration.sender_id,
            receiver_id=integration.receiver_id,
        )
    return Route.objects.filter(flow)


def _routes(integration: Integration) -> dict[int, str]:
    """Task 70 per municipality from its production route: ordered, then established."""
    from transfers.models import Route

    states: dict[int, str] = {}
    for municipality_id, state in (
        routes_of(integration)
        .filter(environment__in=PLAYS_PRODUCTION)
        .values_list("municipality_id", "state")
    ):
        shown = State.DONE if state == Route.State.ESTABLISHED else State.IN_PROGRESS
        if _RANK[shown] > _RANK.get(states.get(municipality_id), -1):
            states[municipality_id] = shown
    return states


def follow_records(integration: Integration) -> None:
    """Bring the integration's tasks in line with its records."""
    integration = Integration.objects.select_related("sender", "receiver").get(pk=integration.pk)
    consents = list(integration.consents.all())
    declared, created = _declaration(integration)
    mirrored = {20: _agreement(integration, consents), 30: declared, 40: created}
    raised = {
        10: _specification(integration),
        50: _account(integration.sender_id),
        60: _account(integration.receiver_id),
    }
    routes = _routes(integration)
    now, moved = timezone.now(), False
    for task in integration.tasks.all():
        if task.number in MIRRORED:
            wanted = mirrored[task.number]
        else:
            found = routes.get(task.municipality_id) if task.number == 70 else raised[task.number]
            # Records raise a task; a hand-settled task, or one further on, stays as it is.
            if found is None or task.is_settled or _RANK[found] <= _RANK[task.state]:
                continue
            wanted = found
        if task.state != wanted:
            task.state, task.changed_at, task.changed_by = wanted, now, None
            task.save(update_fields=["state", "changed_at", "changed_by"])
            moved = True
    if moved:
        transaction.on_commit(lambda: remind_actionable(integration))


def follow_infref(infref: InfRef) -> None:
    for integration in Integration.objects.filter(infref=infref):
        follow_records(integration)


def follow_it_system(it_system_id: int) -> None:
    for integration in Integration.objects.filter(
        Q(sender_id=it_system_id) | Q(receiver_id=it_system_id)
    ):
        follow_records(integration)


def integrations_of_route(route) -> list[Integration]:
    if route.integration_id:
        return list(Integration.objects.filter(pk=route.integration_id))
    return list(
        Integration.objects.filter(
            infref_id=route.infref_id, sender_id=route.sender_id, receiver_id=route.receiver_id
        )
    )
