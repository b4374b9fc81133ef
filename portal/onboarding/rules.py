"""The rules between onboarding tasks, and the one readiness check the transfer engine asks.

Tasks follow their records (follow.py). Readiness is per environment: the external test
environment needs what Serviceplatformen needs to route a file; production needs everything,
including the test before production accepted by both parties.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from gdpr import workflow as gdpr_workflow
from gdpr.models import GdprDeclaration, InfRef
from portal.accounts.models import Organisation
from portal.audit.log import record
from portal.audit.models import AuditEvent
from portal.itsystems.models import ItSystem
from portal.onboarding import bilateral
from portal.onboarding.catalogue import BY_NUMBER, ONCE, PER_MUNICIPALITY
from portal.onboarding.follow import MIRRORED, follow_records, plays_production
from portal.onboarding.models import (
    Consent,
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
    joining = list({municipality.pk: municipality for municipality in municipalities}.values())
    for municipality in joining:
        _refuse_unless_municipality(municipality)
    # All at once, and followed once: joined one by one, each municipality of a hundred would
    # follow the records and queue the reminders again.
    IntegrationMunicipality.objects.bulk_create(
        IntegrationMunicipality(integration=integration, municipality=m) for m in joining
    )
    OnboardingTask.objects.bulk_create(
        [
            *(OnboardingTask(integration=integration, number=number) for number in ONCE),
            *(
                OnboardingTask(integration=integration, number=number, municipality=m)
                for m in joining
                for number in PER_MUNICIPALITY
            ),
        ]
    )
    follow_records(integration)
    _remind_after_commit(integration)
    return integration


def _refuse_unless_municipality(organisation: Organisation) -> None:
    if organisation.kind != Organisation.Kind.MUNICIPALITY:
        raise ValidationError(_("%(name)s is not a municipality.") % {"name": organisation})


@transaction.atomic
def add_municipality(integration: Integration, municipality: Organisation) -> None:
    _refuse_unless_municipality(municipality)
    _joined, created = IntegrationMunicipality.objects.get_or_create(
        integration=integration, municipality=municipality
    )
    if created:
        OnboardingTask.objects.bulk_create(
            OnboardingTask(integration=integration, number=number, municipality=municipality)
            for number in PER_MUNICIPALITY
        )
        follow_records(integration)
        _remind_after_commit(integration)


def set_state(task: OnboardingTask, state: str, user, *, comment: str | None = None) -> None:
    """Move a task by hand, refusing to start one whose dependencies are not settled.

    Tasks 20, 30 and 40 are not moved by hand: they mirror their records (follow.py).
    """
    if task.number in MIRRORED and state != task.state:
        raise ValidationError(
            _("Task %(number)s follows its records and is not set by hand.")
            % {"number": task.number},
            code="mirrored",
        )
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
    record_task_change(task, user)
    _remind_after_commit(task.integration)


def note(task: OnboardingTask, comment: str, user) -> None:
    """Save a task's due date and comment, leaving its state as it is, and log who did it."""
    task.comment = comment
    task.save(update_fields=["due_date", "comment"])
    record_task_change(task, user)


def record_task_change(task: OnboardingTask, user) -> None:
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


def _remind_after_commit(integration: Integration) -> None:
    # Only a change that was saved may tell anyone to act.
    transaction.on_commit(lambda: remind_actionable(integration))


def data_specification_changed(
    integration: Integration, version: str, *, backward_compatible: bool
) -> None:
    """A new data-specification version. A backward-compatible (minor) one asks for a renewed
    declaration by a deadline, and sends go on until it; any other makes the declaration
    outdated at once: it no longer covers the data."""
    if integration.infref_id is None:
        return
    params = {"integration": integration.name, "version": version}
    if backward_compatible:
        reason = _(
            "The data specification of %(integration)s is now version %(version)s, "
            "a backward-compatible change; the declaration covers an earlier version."
        )
        gdpr_workflow.ask_for_renewal(integration.infref, reason % params)
    else:
        reason = _(
            "The data specification of %(integration)s is now version %(version)s; "
            "the declaration covers an earlier version."
        )
        gdpr_workflow.mark_outdated(integration.infref, reason % params)


def data_specification_documents_changed(integration: Integration, version: str) -> None:
    """A document added to a version changes what was declared: a new declaration is due."""
    if integration.infref_id is None:
        return
    reason = _(
        "A document was added to version %(version)s of the data specification of "
        "%(integration)s after the declaration was submitted."
    ) % {"integration": integration.name, "version": version}
    gdpr_workflow.mark_outdated(integration.infref, reason)


@dataclass
class Readiness:
    blockers: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.blockers


@dataclass(frozen=True)
class Onboarding:
    """What readiness reads about one integration: its tasks, the InfRef's current GDPR
    declaration (with the municipalities and receiving IT systems it names), the test before
    production and the parties' consents."""

    tasks: dict[tuple[int, int | None], OnboardingTask]
    declaration: GdprDeclaration | None
    test: IntegrationTest | None
    consents: list[Consent] = field(default_factory=list)
    infref_created: bool = False
    # The sending vendor and the receiving IT system, read with the rest: a route list would
    # otherwise ask for them once per row.
    vendor: Organisation | None = None
    receiver: ItSystem | None = None


def onboarding_of(
    integrations: Iterable[Integration], *, municipalities: Iterable[int] | None = None
) -> dict[int, Onboarding]:
    """What readiness reads, for any number of integrations in a fixed number of queries: a
    list of routes asks for many at once instead of several queries per route. With
    `municipalities` (ids), only their own tasks and consents and those of the whole
    integration: sends ask about the municipalities they go to, and an integration may have a
    hundred, each with seven tasks."""
    integrations = {integration.pk: integration for integration in integrations}
    tasks: dict[int, dict] = {pk: {} for pk in integrations}
    # Unordered: the model's ordering joins the municipality for its name.
    wanted = OnboardingTask.objects.filter(integration_id__in=integrations).order_by()
    consented = Consent.objects.filter(integration_id__in=integrations).order_by()
    if municipalities is not None:
        theirs = Q(municipality__isnull=True) | Q(municipality_id__in=set(municipalities))
        wanted, consented = wanted.filter(theirs), consented.filter(theirs)
    for task in wanted:
        tasks[task.integration_id][(task.number, task.municipality_id)] = task
    infrefs = {i.infref_id for i in integrations.values() if i.infref_id}
    # At most one submitted declaration per InfRef: the current one (a database constraint).
    declarations = {
        declaration.infref_id: declaration
        for declaration in GdprDeclaration.objects.filter(
            infref_id__in=infrefs, status=GdprDeclaration.Status.SUBMITTED
        )
        .select_related("infref")
        .prefetch_related("controllers", "receiving_it_systems")
    }
    tests = {
        test.integration_id: test
        for test in IntegrationTest.objects.filter(integration_id__in=integrations)
    }
    created = set(
        InfRef.objects.filter(
            pk__in=infrefs, created_on_serviceplatform_at__isnull=False
        ).values_list("pk", flat=True)
    )
    system_ids = {i.sender_id for i in integrations.values()}
    system_ids |= {i.receiver_id for i in integrations.values()}
    systems = ItSystem.objects.select_related("vendor").in_bulk(system_ids)
    consents: dict[int, list[Consent]] = {pk: [] for pk in integrations}
    for consent in consented:
        consents[consent.integration_id].append(consent)
    return {
        pk: Onboarding(
            tasks[pk],
            declarations.get(integration.infref_id),
            tests.get(pk),
            consents[pk],
            integration.infref_id in created,
            systems[integration.sender_id].vendor,
            systems[integration.receiver_id],
        )
        for pk, integration in integrations.items()
    }


def readiness(
    integration: Integration,
    municipality: Organisation,
    *,
    environment: str = "production",
    onboarding: Onboarding | None = None,
) -> Readiness:
    """Whether sends may run for this municipality in this environment, and if not, every
    condition that blocks.

    The transfer engine asks this and nothing else before a send. `onboarding`, if given, is
    what `onboarding_of` read for the integration.
    """
    if onboarding is None:
        onboarding = onboarding_of([integration], municipalities=[municipality.pk])[integration.pk]
    result = Readiness()
    blockers = result.blockers
    if integration.infref_id is None:
        blockers.append(_("The integration is not linked to its InfRef yet."))
    elif not onboarding.infref_created:
        blockers.append(_("The InfRef is not yet created on Serviceplatformen (task 40)."))
    if not plays_production(environment):
        # The external test environment routes what Serviceplatformen routes: the InfRef
        # created, and (checked with the route) the accounts and the route established there.
        return result
    tasks = onboarding.tasks
    for number in ONCE:
        task = tasks.get((number, None))
        if number in (20, 40):
            continue  # the agreement is per municipality, below; 40 is said above
        if task is None or not task.is_settled:
            blockers.append(
                _("Task %(number)s (%(title)s) is not done.")
                % {"number": number, "title": BY_NUMBER[number].title}
            )
    route_task = tasks.get((70, municipality.pk))
    if route_task is None:
        blockers.append(
            _("%(municipality)s is not part of the integration.") % {"municipality": municipality}
        )
    elif not route_task.is_settled:
        blockers.append(
            _("Task 70 (the SFTP route) is not done for %(municipality)s.")
            % {"municipality": municipality}
        )
    blockers += _agreement_blockers(municipality, onboarding)
    blockers += _declaration_blockers(onboarding.receiver, municipality, onboarding.declaration)
    blockers += _test_blockers(municipality, onboarding)
    return result


def _agreement_blockers(municipality: Organisation, onboarding: Onboarding) -> list[str]:
    consents, vendor = onboarding.consents, onboarding.vendor
    for subject in (Consent.Subject.NO_AGREEMENT, Consent.Subject.AGREEMENT):
        if bilateral.vendor_and_municipality_hold(consents, subject, vendor.pk, municipality.pk):
            return []
    missing = bilateral.parties_missing(consents, Consent.Subject.AGREEMENT, vendor, municipality)
    return [
        _(
            "The data-processing agreement for %(municipality)s is not confirmed by "
            "%(parties)s (task 20)."
        )
        % {"municipality": municipality, "parties": _(" and ").join(p.name for p in missing)}
    ]


def _declaration_blockers(
    receiver: ItSystem, municipality: Organisation, declaration: GdprDeclaration | None
) -> list[str]:
    if declaration is None:
        return [_("No GDPR declaration has been submitted for the InfRef.")]
    if declaration.is_outdated:
        return [_("The GDPR declaration is outdated: a new one must be submitted.")]
    blockers = []
    if declaration.renewal_overdue(timezone.localdate()):
        blockers.append(
            _("The GDPR declaration was to be renewed by %(date)s: a new one must be submitted.")
            % {"date": formats.date_format(declaration.renew_by, "DATE_FORMAT")}
        )
    # Compared by id on the prefetched rows: no query per route.
    if municipality.pk not in {m.pk for m in declaration.controllers.all()}:
        blockers.append(
            _("The GDPR declaration does not name %(municipality)s as data controller.")
            % {"municipality": municipality}
        )
    if receiver.pk not in {s.pk for s in declaration.receiving_it_systems.all()}:
        blockers.append(
            _("The GDPR declaration does not name %(system)s as receiving IT system.")
            % {"system": receiver}
        )
    return blockers


def _test_blockers(municipality: Organisation, onboarding: Onboarding) -> list[str]:
    test = onboarding.test
    if test is None or not test.has_cleared:
        return [_("The test before production has not passed, nor been agreed to be skipped.")]
    missing = bilateral.parties_missing(
        onboarding.consents, Consent.Subject.TEST, onboarding.vendor, municipality
    )
    if not missing:
        return []
    return [
        _("The test before production is not yet accepted by %(parties)s.")
        % {"parties": _(" and ").join(party.name for party in missing)}
    ]
