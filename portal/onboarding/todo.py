"""What waits for each party: the dashboard's "Your next steps".

The list is worked out afresh from the records the tasks follow (follow.py) and from the tasks
themselves, so a step disappears the moment it is done, by hand or by its record. Each role sees
its own moves only: the sending vendor drives onboarding; the receiving vendor makes its SFTP
user and looks at the test; a municipality confirms the agreement and accepts the test for
itself; KOMBIT assigns and creates InfRefs and establishes routes.

Everything is read in a fixed number of queries however many integrations the user has: the
dashboard of a vendor with a thousand integrations asks as often as one with a single one.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from django.db.models import Exists, OuterRef, Q, Subquery
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from gdpr.models import HOLDS_IT_SYSTEM, GdprDeclaration, InfRef, InfRefRequest
from portal.accounts.access import Scope, memberships_of, scope_of
from portal.accounts.models import Organisation
from portal.itsystems.models import ItSystem
from portal.onboarding.models import (
    Consent,
    Integration,
    IntegrationMunicipality,
    IntegrationTest,
    OnboardingTask,
    ProcessingAgreement,
)
from portal.onboarding.signposts import with_query
from transfers.models import Route

State = OnboardingTask.State
Subject = Consent.Subject
SETTLED = (State.DONE, State.NOT_RELEVANT)
# Either answer to task 20 settles a party's part of it.
AGREEMENT_ANSWERS = (Subject.AGREEMENT, Subject.NO_AGREEMENT)


class Kind(StrEnum):
    """What the step is; listed in the order the steps come in onboarding."""

    OUTDATED_DECLARATION = "outdated_declaration"
    RENEW_DECLARATION = "renew_declaration"
    REQUEST_INFREF = "request_infref"
    ASSIGN_INFREF = "assign_infref"
    LINK_INFREF = "link_infref"
    SUBMIT_DECLARATION = "submit_declaration"
    CREATE_INFREF = "create_infref"
    SPECIFY = "specify"
    CONFIRM_AGREEMENT = "confirm_agreement"
    SENDER_ACCOUNT = "sender_account"
    RECEIVER_ACCOUNT = "receiver_account"
    ACCEPT_TEST = "accept_test"
    ORDER_ROUTE = "order_route"
    ESTABLISH_ROUTES = "establish_routes"


@dataclass(frozen=True)
class Item:
    """One step that waits for the reader: what to do, in their language, and where."""

    kind: Kind
    text: str
    url: str
    integration: Integration | None = None
    municipality: Organisation | None = None
    it_system: ItSystem | None = None


@dataclass
class _Integrations:
    """The integrations the user takes part in, with what the steps read about them."""

    rows: list[Integration]
    municipalities: dict[int, list[Organisation]]
    tasks: dict[tuple[int, int, int | None], str]
    # (integration, organisation) → the subjects it said yes to: asked once per party and
    # integration, and an integration may have a hundred municipalities.
    subjects: dict[tuple[int, int], set[str]]
    # The integrations whose test before production has cleared, and those with a
    # data-processing agreement registered.
    cleared: set[int]
    agreements: set[int]

    def task_state(self, integration: Integration, number: int, municipality_id=None) -> str:
        return self.tasks.get((integration.pk, number, municipality_id), State.NOT_STARTED)

    def said(self, integration: Integration, organisation_id: int) -> set[str]:
        """The subjects the organisation has said yes to in the integration."""
        return self.subjects.get((integration.pk, organisation_id), set())


def todo_for(user) -> list[Item]:
    """The steps that wait for the user's organisations, most pressing first."""
    scope = scope_of(user)
    items: list[Item] = []
    if scope.vendor_ids or scope.municipality_ids:
        known = _integrations_of(scope, _own_municipality(user, scope))
        if scope.vendor_ids:
            items += _sending_vendor(scope, known)
            items += _receiving_vendor(scope, known)
        if scope.municipality_ids:
            items += _municipality(scope, known)
    if scope.is_kombit:
        items += _kombit()
    order = list(Kind)
    # Stable: within a kind, the integrations stay in the order of their names.
    return sorted(items, key=lambda item: order.index(item.kind))


def _integrations_of(scope: Scope, own_municipality: Organisation | None) -> _Integrations:
    taking_part = Q(sender__vendor_id__in=scope.vendor_ids) | Q(
        receiver__vendor_id__in=scope.vendor_ids
    )
    if scope.municipality_ids:
        # Through the link table: joining the municipalities would repeat each integration.
        taking_part |= Q(
            pk__in=IntegrationMunicipality.objects.filter(
                municipality_id__in=scope.municipality_ids
            ).values("integration_id")
        )
    # Only what the steps read: a busy municipality takes part in dozens of integrations, each
    # read with both IT systems and their vendors.
    rows = list(
        Integration.objects.filter(taking_part)
        .select_related("sender__vendor", "receiver__vendor")
        .only(
            "name",
            "infref",
            "sender__name",
            "sender__vendor__name",
            "receiver__name",
            "receiver__vendor__name",
        )
        # Read with the integration: one test and at most one agreement each.
        .annotate(
            test_result=Subquery(
                IntegrationTest.objects.filter(integration=OuterRef("pk")).values("result")
            ),
            has_agreement=Exists(ProcessingAgreement.objects.filter(integration=OuterRef("pk"))),
        )
        .order_by("name", "pk")
    )
    if not rows:
        return _Integrations(rows, defaultdict(list), {}, defaultdict(set), set(), set())
    ids = [integration.pk for integration in rows]
    # A vendor's steps read every municipality of its integrations; a municipality's steps
    # only its own, and an integration may have a hundred: the others are not read for it.
    as_vendor = [
        i.pk
        for i in rows
        if i.sender.vendor_id in scope.vendor_ids or i.receiver.vendor_id in scope.vendor_ids
    ]
    own = Q(integration_id__in=as_vendor) | Q(
        integration_id__in=ids, municipality_id__in=scope.municipality_ids
    )
    if own_municipality is not None:
        # Each integration was read for taking part with the one municipality the user acts
        # for, the only one its steps name: its links would say no more.
        municipalities = defaultdict(list, {pk: [own_municipality] for pk in ids})
    else:
        municipalities = _municipalities_of(own)
    # Only a vendor's steps follow the tasks; a municipality's follow the yeses alone, and a
    # busy one's integrations hold hundreds of tasks.
    tasks = (
        _task_states(own | Q(integration_id__in=ids, municipality_id__isnull=True))
        if scope.vendor_ids
        else {}
    )
    # Read as values, not models: a busy municipality's integrations hold hundreds of yeses.
    # Of the vendors, the steps ask only what the sending one said.
    senders = {integration.sender.vendor_id for integration in rows}
    subjects: dict[tuple[int, int], set[str]] = defaultdict(set)
    for integration_id, organisation_id, subject in (
        Consent.objects.filter(
            Q(integration_id__in=as_vendor)
            | Q(integration_id__in=ids, organisation_id__in=senders)
            | Q(integration_id__in=ids, organisation_id__in=scope.municipality_ids)
        )
        .order_by()
        .values_list("integration_id", "organisation_id", "subject")
    ):
        subjects[(integration_id, organisation_id)].add(subject)
    cleared = {i.pk for i in rows if i.test_result in IntegrationTest.CLEARED}
    agreements = {i.pk for i in rows if i.has_agreement}
    return _Integrations(rows, municipalities, tasks, subjects, cleared, agreements)


def _own_municipality(user, scope: Scope) -> Organisation | None:
    """The municipality of a user who acts for that one alone, from the memberships read with
    their scope; None for anyone else."""
    if scope.vendor_ids or len(scope.municipality_ids) != 1:
        return None
    organisations = (membership.organisation for membership in memberships_of(user))
    return next((o for o in organisations if o.pk in scope.municipality_ids), None)


def _municipalities_of(links: Q) -> dict[int, list[Organisation]]:
    """The municipalities of the integrations' links `links` picks, by integration, each in
    the order of their names."""
    municipalities: dict[int, list[Organisation]] = defaultdict(list)
    # Of each municipality only what the steps say of it, read as values and made into one
    # model each (its other fields read if ever asked for): a vendor's integrations may have a
    # hundred each, and a whole row of both tables for each cost the overview more than the
    # rest of its steps.
    read: dict[int, Organisation] = {}
    found = IntegrationMunicipality.objects.filter(links).order_by("municipality__name")
    for integration_id, pk, name in found.values_list(
        "integration_id", "municipality_id", "municipality__name"
    ):
        if pk not in read:
            read[pk] = Organisation.from_db(found.db, ["id", "name"], [pk, name])
        municipalities[integration_id].append(read[pk])
    return municipalities


def _task_states(which: Q) -> dict[tuple[int, int, int | None], str]:
    """The state of each task `which` picks, by its integration, number and municipality."""
    return {
        (integration_id, number, municipality_id): state
        for integration_id, number, municipality_id, state in OnboardingTask.objects.filter(which)
        .order_by()
        .values_list("integration_id", "number", "municipality_id", "state")
    }


def _date(day) -> str:
    return formats.date_format(day, "SHORT_DATE_FORMAT")


def _sending_vendor(scope: Scope, known: _Integrations) -> list[Item]:
    sending = [i for i in known.rows if i.sender.vendor_id in scope.vendor_ids]
    infrefs = list(
        InfRef.objects.filter(it_system__vendor_id__in=scope.vendor_ids)
        .select_related("request")
        .order_by("number")
    )
    items = _declarations(infrefs, sending)
    if not sending:
        return items
    senders = {integration.sender_id for integration in sending}
    # Asked only of the senders with an integration still without its InfRef, the only ones
    # the answer is read for: none, once every integration has one.
    unlinked = {i.sender_id for i in sending if i.infref_id is None}
    holding = set(
        InfRefRequest.objects.filter(HOLDS_IT_SYSTEM, it_system_id__in=unlinked).values_list(
            "it_system_id", flat=True
        )
        if unlinked
        else ()
    )
    # The senders are the vendor's own IT systems: their InfRefs are among those just read.
    assigned = {infref.it_system_id for infref in infrefs if infref.it_system_id in senders}
    asked_for = set()
    for integration in sending:
        sender = integration.sender
        if integration.infref_id is None and sender.pk in assigned:
            items.append(
                Item(
                    Kind.LINK_INFREF,
                    _("Link %(integration)s to the InfRef KOMBIT assigned to %(system)s.")
                    % {"integration": integration.name, "system": sender.name},
                    reverse("onboarding:edit", args=[integration.pk]),
                    integration,
                    it_system=sender,
                )
            )
        elif (
            integration.infref_id is None
            and sender.pk not in holding
            and sender.pk not in asked_for
        ):
            asked_for.add(sender.pk)  # one request serves every integration of the system
            items.append(
                Item(
                    Kind.REQUEST_INFREF,
                    _("Request an InfRef from KOMBIT for %(system)s.") % {"system": sender.name},
                    with_query("gdpr:request_create", it_system=sender.pk),
                    integration,
                    it_system=sender,
                )
            )
        if known.task_state(integration, 10) not in SETTLED:
            items.append(
                Item(
                    Kind.SPECIFY,
                    _("Write the data specification of %(integration)s.")
                    % {"integration": integration.name},
                    reverse("specs:specification", args=[integration.pk]),
                    integration,
                )
            )
        items += _vendor_consents(integration, known)
        items += _routes_to_order(integration, known)
    items += _accounts(sending, known, 50, Kind.SENDER_ACCOUNT, lambda i: i.sender)
    return items


def _declarations(infrefs: list[InfRef], sending: list[Integration]) -> list[Item]:
    """Task 30's second half, for each InfRef of the vendor's (`infrefs`, in their numbers'
    order): the declaration to submit, or to submit anew."""
    by_infref: dict[int, dict[str, GdprDeclaration]] = defaultdict(dict)
    for declaration in GdprDeclaration.objects.filter(
        infref_id__in=[infref.pk for infref in infrefs],
        status__in=(GdprDeclaration.Status.DRAFT, GdprDeclaration.Status.SUBMITTED),
    ).only("pk", "infref_id", "status", "outdated_at", "renew_by"):
        by_infref[declaration.infref_id][declaration.status] = declaration
    first_integration = {}
    for integration in sending:
        first_integration.setdefault(integration.infref_id, integration)
    today = timezone.localdate()
    items = []
    for infref in infrefs:
        declarations = by_infref[infref.pk]
        draft = declarations.get(GdprDeclaration.Status.DRAFT)
        current = declarations.get(GdprDeclaration.Status.SUBMITTED)
        names = {"infref": infref.name}
        if current is None:
            kind, text = (
                Kind.SUBMIT_DECLARATION,
                _("Fill in and submit the GDPR declaration for %(infref)s.") % names,
            )
        elif current.is_outdated:
            kind, text = (
                Kind.OUTDATED_DECLARATION,
                _("The GDPR declaration for %(infref)s is outdated: submit a new one.") % names,
            )
        elif current.renewal_overdue(today):
            kind, text = (
                Kind.OUTDATED_DECLARATION,
                _(
                    "The GDPR declaration for %(infref)s was to be renewed by %(date)s: "
                    "submit a new one."
                )
                % {**names, "date": _date(current.renew_by)},
            )
        elif current.is_due_for_renewal:
            kind, text = (
                Kind.RENEW_DECLARATION,
                _("Renew the GDPR declaration for %(infref)s by %(date)s.")
                % {**names, "date": _date(current.renew_by)},
            )
        else:
            continue
        if draft is not None:
            url = reverse("gdpr:declaration_edit", args=[draft.pk])
        elif hasattr(infref, "request"):
            url = reverse("gdpr:request", args=[infref.request.pk])  # opens a new draft
        else:
            url = reverse("gdpr:requests")
        items.append(Item(kind, text, url, first_integration.get(infref.pk)))
    return items


def _vendor_consents(integration: Integration, known: _Integrations) -> list[Item]:
    """The sending vendor's yes that the other side waits for, or that can now be given."""
    items = []
    vendor_id = integration.sender.vendor_id
    said = known.said(integration, vendor_id)
    detail = reverse("onboarding:detail", args=[integration.pk])
    names = {"integration": integration.name}
    if not said & set(AGREEMENT_ANSWERS) and known.task_state(integration, 20) not in SETTLED:
        no_agreement = [
            m
            for m in known.municipalities[integration.pk]
            if Subject.NO_AGREEMENT in known.said(integration, m.pk)
        ]
        if integration.pk in known.agreements:
            text = _("Confirm the data-processing agreement of %(integration)s.") % names
        elif no_agreement:
            text = _(
                "%(municipality)s says %(integration)s needs no data-processing agreement: "
                "confirm it, or register the agreement."
            ) % {**names, "municipality": no_agreement[0].name}
        else:
            text = None
        if text:
            items.append(Item(Kind.CONFIRM_AGREEMENT, text, detail, integration))
    if integration.pk in known.cleared and Subject.TEST not in said:
        items.append(
            Item(
                Kind.ACCEPT_TEST,
                _("Accept the test before production of %(integration)s.") % names,
                detail,
                integration,
            )
        )
    return items


def _routes_to_order(integration: Integration, known: _Integrations) -> list[Item]:
    """Task 70 per municipality with no production route yet: a route names the InfRef, and
    the seed orders it once both SFTP users exist (tasks 50 and 60)."""
    if integration.infref_id is None or any(
        known.task_state(integration, number) not in SETTLED for number in (50, 60)
    ):
        return []
    return [
        Item(
            Kind.ORDER_ROUTE,
            _("Order the production route of %(integration)s for %(municipality)s.")
            % {"integration": integration.name, "municipality": municipality.name},
            with_query(
                "transfers:route_create", integration=integration.pk, municipality=municipality.pk
            ),
            integration,
            municipality,
        )
        for municipality in known.municipalities[integration.pk]
        # In progress: ordered, and KOMBIT's to establish.
        if known.task_state(integration, 70, municipality.pk) == State.NOT_STARTED
    ]


def _accounts(
    integrations: Iterable[Integration], known: _Integrations, number: int, kind: Kind, system_of
) -> list[Item]:
    """Tasks 50 and 60: one item per IT system, however many integrations wait for it."""
    items, seen = [], set()
    for integration in integrations:
        system = system_of(integration)
        if system.pk in seen or known.task_state(integration, number) in SETTLED:
            continue
        seen.add(system.pk)
        items.append(
            Item(
                kind,
                _("Register the SFTP account of %(system)s for production.")
                % {"system": system.name},
                reverse("transfers:account_create"),
                integration,
                it_system=system,
            )
        )
    return items


def _receiving_vendor(scope: Scope, known: _Integrations) -> list[Item]:
    receiving = [i for i in known.rows if i.receiver.vendor_id in scope.vendor_ids]
    # Only its SFTP user: the test is accepted by the sending vendor and the municipality, and
    # a list of steps holds only what its reader can do.
    return _accounts(receiving, known, 60, Kind.RECEIVER_ACCOUNT, lambda i: i.receiver)


def _municipality(scope: Scope, known: _Integrations) -> list[Item]:
    """Each municipality's own yes, per integration it takes part in."""
    items = []
    for integration in known.rows:
        vendor = integration.sender.vendor
        vendor_said = known.said(integration, vendor.pk)
        detail = reverse("onboarding:detail", args=[integration.pk])
        cleared = integration.pk in known.cleared
        for municipality in known.municipalities[integration.pk]:
            if municipality.pk not in scope.municipality_ids:
                continue
            said = known.said(integration, municipality.pk)
            names = {
                "integration": integration.name,
                "municipality": municipality.name,
                "vendor": vendor.name,
            }
            if not said & set(AGREEMENT_ANSWERS):
                if Subject.AGREEMENT in vendor_said:
                    text = _(
                        "%(vendor)s has confirmed the data-processing agreement of "
                        "%(integration)s; confirm it for %(municipality)s."
                    )
                elif Subject.NO_AGREEMENT in vendor_said:
                    text = _(
                        "%(vendor)s says %(integration)s needs no data-processing agreement; "
                        "confirm it for %(municipality)s, or register the agreement."
                    )
                elif integration.pk in known.agreements:
                    text = _(
                        "Confirm the data-processing agreement of %(integration)s for "
                        "%(municipality)s."
                    )
                else:
                    text = _(
                        "Register the data-processing agreement of %(integration)s, or say "
                        "that %(municipality)s needs none."
                    )
                items.append(
                    Item(Kind.CONFIRM_AGREEMENT, text % names, detail, integration, municipality)
                )
            if cleared and Subject.TEST not in said:
                if Subject.TEST in vendor_said:
                    text = _(
                        "%(vendor)s has accepted the test before production of "
                        "%(integration)s; accept it for %(municipality)s."
                    )
                else:
                    text = _(
                        "Accept the test before production of %(integration)s for %(municipality)s."
                    )
                items.append(
                    Item(Kind.ACCEPT_TEST, text % names, detail, integration, municipality)
                )
    return items


def _kombit() -> list[Item]:
    items = [
        Item(
            Kind.ASSIGN_INFREF,
            _("Assign an InfRef to %(system)s of %(vendor)s.")
            % {"system": request.it_system.name, "vendor": request.it_system.vendor.name},
            reverse("gdpr:request", args=[request.pk]),
            it_system=request.it_system,
        )
        for request in InfRefRequest.objects.filter(infref__isnull=True, withdrawn_at__isnull=True)
        .select_related("it_system__vendor")
        .order_by("requested_at", "pk")
    ]
    # At most one submitted declaration per InfRef, so the join repeats none.
    for infref in (
        InfRef.objects.filter(
            created_on_serviceplatform_at__isnull=True,
            declarations__status=GdprDeclaration.Status.SUBMITTED,
        )
        .select_related("request", "it_system")
        .order_by("number")
    ):
        url = (
            reverse("gdpr:request", args=[infref.request.pk])
            if hasattr(infref, "request")
            else reverse("gdpr:requests")
        )
        items.append(
            Item(
                Kind.CREATE_INFREF,
                _("Create %(infref)s on Serviceplatformen: its GDPR declaration is submitted.")
                % {"infref": infref.name},
                url,
                it_system=infref.it_system,
            )
        )
    ordered = Route.objects.filter(state=Route.State.ORDERED).count()
    if ordered:
        items.append(
            Item(
                Kind.ESTABLISH_ROUTES,
                ngettext(
                    "%(count)s ordered route waits to be established on Serviceplatformen.",
                    "%(count)s ordered routes wait to be established on Serviceplatformen.",
                    ordered,
                )
                % {"count": ordered},
                with_query("transfers:routes", state=Route.State.ORDERED),
            )
        )
    return items
