"""The rules between onboarding tasks, and the one readiness check the transfer engine asks.

Tasks 30 and 40 follow the InfRef request (through gdpr's `infref_changed` signal), and a new
data-specification version makes the declaration outdated and reopens task 30.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from gdpr import workflow as gdpr_workflow
from gdpr.models import GdprDeclaration, InfRef
from portal.accounts.models import Organisation
from portal.audit.log import record
from portal.audit.models import AuditEvent
from portal.onboarding.catalogue import BY_NUMBER, ONCE, PER_MUNICIPALITY
from portal.onboarding.models import (
    Integration,
    IntegrationMunicipality,
    IntegrationTest,
    OnboardingTask,
)
from portal.onboarding.reminders import remind_actionable

State = OnboardingTask.State
STARTED = (State.IN_PROGRESS, State.DONE)


@transaction.atomic
def create_integration(*, municipalities=(), **fields) -> Integration:
    """An integration with its tasks 10–60, and task 70 for each municipality."""
    integration = Integration(**fields)
    integration.full_clean()
    integration.save()
    OnboardingTask.objects.bulk_create(
        OnboardingTask(integration=integration, number=number) for number in ONCE
    )
    for municipality in municipalities:
        add_municipality(integration, municipality)
    if integration.infref_id:
        follow_infref(integration.infref)
    _remind_after_commit(integration)
    return integration


@transaction.atomic
def add_municipality(integration: Integration, municipality: Organisation) -> None:
    if municipality.kind != Organisation.Kind.MUNICIPALITY:
        raise ValidationError(_("%(name)s is not a municipality.") % {"name": municipality})
    _joined, created = IntegrationMunicipality.objects.get_or_create(
        integration=integration, municipality=municipality
    )
    if created:
        OnboardingTask.objects.bulk_create(
            OnboardingTask(integration=integration, number=number, municipality=municipality)
            for number in PER_MUNICIPALITY
        )
        _remind_after_commit(integration)


def set_state(task: OnboardingTask, state: str, user, *, comment: str | None = None) -> None:
    """Move a task, refusing to start one whose dependencies are not settled."""
    if state in STARTED:
        blockers = task.waiting_for()
        if blockers:
            raise ValidationError(
                _("Task %(number)s can start only when task %(others)s is done.")
                % {
                    "number": task.number,
                    "others": _(" and ").join(str(other.number) for other in blockers),
                },
                code="dependency",
            )
    task.state = state
    if comment is not None:
        task.comment = comment
    task.changed_by = user
    task.changed_at = timezone.now()
    task.save()
    integration = task.integration
    record(
        user,
        AuditEvent.Action.TASK_CHANGED,
        task,
        concerns=[integration.sender.vendor, integration.receiver.vendor, task.municipality],
        integration=integration.name,
        state=task.state,
        # The log words the task in its reader's language from these, even once it is gone.
        task=task.number,
        **({"municipality": task.municipality.name} if task.municipality else {}),
    )
    _remind_after_commit(task.integration)


def _remind_after_commit(integration: Integration) -> None:
    # Only a change that was saved may tell anyone to act.
    transaction.on_commit(lambda: remind_actionable(integration))


def follow_infref(infref: InfRef) -> None:
    """Tasks 30 and 40 mirror the InfRef request: declared (and current), and created."""
    # Read afresh: the caller's object may predate the step that sent the signal.
    infref = InfRef.objects.get(pk=infref.pk)
    declaration = infref.current_declaration()
    declared = declaration is not None and not declaration.is_outdated
    created = infref.created_on_serviceplatform_at is not None
    now = timezone.now()
    tasks = OnboardingTask.objects.filter(integration__infref=infref)
    tasks.filter(number=30).update(
        state=State.DONE if declared else State.IN_PROGRESS, changed_at=now, changed_by=None
    )
    tasks.filter(number=40).update(
        state=State.DONE if created else State.NOT_STARTED, changed_at=now, changed_by=None
    )
    for integration in infref.integrations.all():
        _remind_after_commit(integration)


def data_specification_changed(integration: Integration, version: str) -> None:
    """A new data-specification version: the GDPR declaration no longer covers the data."""
    if integration.infref_id is None:
        return
    reason = _(
        "The data specification of %(integration)s is now version %(version)s; "
        "the declaration covers an earlier version."
    ) % {"integration": integration.name, "version": version}
    gdpr_workflow.mark_outdated(integration.infref, reason)  # tasks 30/40 follow its signal


@dataclass
class Readiness:
    blockers: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.blockers


@dataclass(frozen=True)
class Onboarding:
    """What readiness reads about one integration: its tasks, the InfRef's current GDPR
    declaration and the test before production."""

    tasks: dict[tuple[int, int | None], OnboardingTask]
    declaration: GdprDeclaration | None
    test: IntegrationTest | None


def onboarding_of(
    integrations: Iterable[Integration], *, municipality: Organisation | None = None
) -> dict[int, Onboarding]:
    """What readiness reads, for any number of integrations in three queries: a list of routes
    asks for many at once instead of three queries per route. With `municipality`, only its
    own tasks and those of the whole integration: a send asks about one municipality, and an
    integration may have a hundred."""
    integrations = {integration.pk: integration for integration in integrations}
    tasks: dict[int, dict] = {pk: {} for pk in integrations}
    # Unordered: the model's ordering joins the municipality for its name.
    wanted = OnboardingTask.objects.filter(integration_id__in=integrations).order_by()
    if municipality is not None:
        wanted = wanted.filter(Q(municipality__isnull=True) | Q(municipality=municipality))
    for task in wanted:
        tasks[task.integration_id][(task.number, task.municipality_id)] = task
    infrefs = {i.infref_id for i in integrations.values() if i.infref_id}
    # At most one submitted declaration per InfRef: the current one (a database constraint).
    declarations = {
        declaration.infref_id: declaration
        for declaration in GdprDeclaration.objects.filter(
            infref_id__in=infrefs, status=GdprDeclaration.Status.SUBMITTED
        )
    }
    tests = {
        test.integration_id: test
        for test in IntegrationTest.objects.filter(integration_id__in=integrations)
    }
    return {
        pk: Onboarding(tasks[pk], declarations.get(integration.infref_id), tests.get(pk))
        for pk, integration in integrations.items()
    }


def readiness(
    integration: Integration,
    municipality: Organisation,
    *,
    production: bool = True,
    onboarding: Onboarding | None = None,
) -> Readiness:
    """Whether sends may run for this municipality, and if not, every condition that blocks.

    The transfer engine asks this and nothing else before a send. `onboarding`, if given, is
    what `onboarding_of` read for the integration.
    """
    if onboarding is None:
        onboarding = onboarding_of([integration], municipality=municipality)[integration.pk]
    result = Readiness()
    tasks = onboarding.tasks
    for number in ONCE:
        task = tasks.get((number, None))
        if task is None or not task.is_settled:
            result.blockers.append(
                _("Task %(number)s (%(title)s) is not done.")
                % {"number": number, "title": BY_NUMBER[number].title}
            )
    route_task = tasks.get((70, municipality.pk))
    if route_task is None:
        result.blockers.append(
            _("%(municipality)s is not part of the integration.") % {"municipality": municipality}
        )
    elif not route_task.is_settled:
        result.blockers.append(
            _("Task 70 (the SFTP route) is not done for %(municipality)s.")
            % {"municipality": municipality}
        )
    declaration = onboarding.declaration
    if declaration is None:
        result.blockers.append(_("No GDPR declaration has been submitted for the InfRef."))
    elif declaration.is_outdated:
        result.blockers.append(_("The GDPR declaration is outdated: a new one must be submitted."))
    if production:
        test = onboarding.test
        if test is None or not test.clears_production:
            result.blockers.append(
                _("The test before production has not been accepted, nor agreed to be skipped.")
            )
    return result
