"""The one place that answers "may this user see or change this object".

Every view and download filters through `visible` or `changeable`, so a rule changed here changes
everywhere. Records a user may not see are reported as missing (404), never as forbidden (403),
so guessing ids tells nothing about what exists. A model without a rule is visible to no one but
superusers: a forgotten rule fails closed.
"""

import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from typing import Protocol

from django.core.exceptions import PermissionDenied
from django.db.models import Model, Q, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from gdpr.models import GdprDeclaration, InfRef, InfRefRequest
from portal.accounts.models import Invitation, Membership, Organisation
from portal.alerts.models import Alert
from portal.audit.models import AuditEvent
from portal.itsystems.models import ItSystem
from portal.onboarding.models import (
    Consent,
    Integration,
    IntegrationTest,
    OnboardingTask,
    ProcessingAgreement,
)
from portal.outbox.models import OutgoingMail
from portal.specs.models import (
    DataSpecification,
    SpecificationDocument,
    SpecificationField,
    SpecificationVersion,
)
from transfers.models import ReceivedFile, Route, SftpAccount, Transfer

NOTHING = Q(pk__in=[])


_KIND_FIELD = {
    Organisation.Kind.VENDOR: "vendor_ids",
    Organisation.Kind.MUNICIPALITY: "municipality_ids",
    Organisation.Kind.KOMBIT: "kombit_ids",
}


@dataclass(frozen=True)
class Scope:
    """The organisations a user acts for, by kind."""

    vendor_ids: frozenset[int] = frozenset()
    municipality_ids: frozenset[int] = frozenset()
    kombit_ids: frozenset[int] = frozenset()
    is_superuser: bool = False
    # The organisations the user is an administrator of: they run its members and invitations.
    # Of these only: their kind gives no power over anyone else's people.
    administered_ids: frozenset[int] = frozenset()

    @property
    def is_kombit(self) -> bool:
        return bool(self.kombit_ids)

    @property
    def organisation_ids(self) -> frozenset[int]:
        return self.vendor_ids | self.municipality_ids | self.kombit_ids


class Scoped(Protocol):
    """Something that acts under these rules without being a portal user (an API token): it
    carries the scope it acts in as `access_scope`, and `scope_of` takes that as it is. It has
    no memberships."""

    access_scope: Scope


def scope_of(user) -> Scope:
    """The user's scope, read once per request and kept on the user object."""
    carried = getattr(user, "access_scope", None)
    if carried is not None:
        return carried
    cached = getattr(user, "_access_scope", None)
    if cached is not None:
        return cached
    memberships = []
    if not (user.is_authenticated and user.is_active):
        scope = Scope()
    else:
        ids: dict[str, set[int]] = {field: set() for field in _KIND_FIELD.values()}
        administered: set[int] = set()
        # With their organisations: the page's header names them (memberships_of).
        memberships = list(Membership.objects.filter(user=user).select_related("organisation"))
        for membership in memberships:
            ids[_KIND_FIELD[membership.organisation.kind]].add(membership.organisation_id)
            if membership.is_administrator:
                administered.add(membership.organisation_id)
        scope = Scope(
            **{field: frozenset(values) for field, values in ids.items()},
            is_superuser=user.is_superuser,
            administered_ids=frozenset(administered),
        )
    user._access_scope = scope
    user._memberships = memberships
    return scope


def memberships_of(user) -> list[Membership]:
    """The user's memberships with their organisations, read with the scope: once a request."""
    scope_of(user)
    # A scope carried by its principal (`Scoped`, an API token's) comes with no memberships.
    return getattr(user, "_memberships", [])


Rule = Callable[[Scope], Q]


@dataclass(frozen=True)
class Rules:
    view: Rule
    change: Rule
    # Set when a rule follows a many-valued relation and could match a row more than once.
    distinct: bool = False


def _everyone(scope: Scope) -> Q:
    return Q()


def _no_one(scope: Scope) -> Q:
    return NOTHING


def _colleagues(scope: Scope) -> Q:
    return Q(organisation_id__in=scope.organisation_ids)


def _administered(scope: Scope) -> Q:
    """An organisation's members and invitations: changed by its own administrators alone."""
    return Q(organisation_id__in=scope.administered_ids)


def _it_systems_seen(scope: Scope) -> Q:
    # KOMBIT keeps the register the IT systems come from, so its operators see them all.
    if scope.is_kombit:
        return Q()
    return Q(vendor_id__in=scope.vendor_ids)


def _it_systems_changed(scope: Scope) -> Q:
    return Q(vendor_id__in=scope.vendor_ids)


def _mails_seen(scope: Scope) -> Q:
    seen = Q(organisation_id__in=scope.organisation_ids)
    return seen | Q(addressed_to_kombit=True) if scope.is_kombit else seen


def _infref_requests_seen(scope: Scope) -> Q:
    # Requests are addressed to KOMBIT, so its operators see them all.
    return Q() if scope.is_kombit else Q(it_system__vendor_id__in=scope.vendor_ids)


def _infref_requests_changed(scope: Scope) -> Q:
    # The requesting vendor may withdraw its request; KOMBIT answers it but does not change it.
    return Q(it_system__vendor_id__in=scope.vendor_ids)


def _infrefs_seen(scope: Scope) -> Q:
    if scope.is_kombit:
        return Q()
    # A municipality is data controller under the declarations that name it.
    return Q(it_system__vendor_id__in=scope.vendor_ids) | Q(
        declarations__controllers__in=scope.municipality_ids,
        declarations__status__in=["submitted", "superseded"],
    )


def _declarations_seen(scope: Scope) -> Q:
    sent = Q(status__in=["submitted", "superseded"])
    if scope.is_kombit:
        return sent | _any_of(("infref__it_system__vendor_id", scope.vendor_ids))
    # Only the conditions the user has ids for: each joins its tables (`_any_of`).
    seen = _any_of(("infref__it_system__vendor_id", scope.vendor_ids))
    if scope.municipality_ids:
        seen |= sent & Q(controllers__in=scope.municipality_ids)
    return seen


def _declarations_changed(scope: Scope) -> Q:
    return Q(infref__it_system__vendor_id__in=scope.vendor_ids, status="draft")


def integration_rules(path: str = "") -> Rules:
    """Rules for records that belong to an integration, reached from the model by `path`.

    The sending vendor changes them; the receiving vendor and the municipalities the data
    flows for read them; KOMBIT reads them all.
    """

    def seen(scope: Scope) -> Q:
        if scope.is_kombit:
            return Q()
        # Only the parties the user acts for: an architect's versions were joined to both IT
        # systems for vendors they have none of, which cost PostgreSQL's planner more than
        # the query took to run.
        return _any_of(
            (f"{path}sender__vendor_id", scope.vendor_ids),
            (f"{path}receiver__vendor_id", scope.vendor_ids),
            (f"{path}municipalities", scope.municipality_ids),
        )

    def changed(scope: Scope) -> Q:
        return Q(**{f"{path}sender__vendor_id__in": scope.vendor_ids})

    return Rules(view=seen, change=changed, distinct=True)


def _tasks_changed(scope: Scope) -> Q:
    """A task is changed by the parties its "Ansvarlig" and "Udfører" name (seed, chapter 5):
    the sending vendor drives onboarding; the municipality is responsible for the agreement (20)
    and the receiving SFTP user (60), which the receiving vendor makes; KOMBIT creates the
    InfRef (40). Task 70's municipality notes its own route."""
    changed = Q(integration__sender__vendor_id__in=scope.vendor_ids) | Q(
        number=60, integration__receiver__vendor_id__in=scope.vendor_ids
    )
    if scope.municipality_ids:
        changed |= Q(number__in=(20, 60), integration__municipalities__in=scope.municipality_ids)
        changed |= Q(number=70, municipality_id__in=scope.municipality_ids)
    if scope.is_kombit:
        changed |= Q(number=40)
    return changed


def _bilateral_record(scope: Scope) -> Q:
    return Q(integration__sender__vendor_id__in=scope.vendor_ids) | Q(
        integration__municipalities__in=scope.municipality_ids
    )


def _consents_changed(scope: Scope) -> Q:
    # Each party says yes, or takes it back, for itself alone.
    return Q(organisation_id__in=scope.organisation_ids)


def _accounts_seen(scope: Scope) -> Q:
    # KOMBIT registers SFTP users in the Administrationsmodul.
    return Q() if scope.is_kombit else Q(it_system__vendor_id__in=scope.vendor_ids)


def _any_of(*conditions: tuple[str, frozenset[int]]) -> Q:
    """`<lookup>__in=<ids>` for each condition that has ids, OR-ed; NOTHING if none has.

    A condition on no ids matches nothing, but its lookup still joins its tables: an
    architect's transfers were joined to both IT systems, and PostgreSQL then misjudged how
    many rows a municipality has and read them the slow way.
    """
    found = [Q(**{f"{lookup}__in": ids}) for lookup, ids in conditions if ids]
    return reduce(operator.or_, found) if found else NOTHING


def _route_parties(scope: Scope, path: str = "") -> Q:
    """Routes, at `path`, whose sending or receiving vendor or municipality the user acts for."""
    return _any_of(
        (f"{path}sender__vendor_id", scope.vendor_ids),
        (f"{path}receiver__vendor_id", scope.vendor_ids),
        (f"{path}municipality_id", scope.municipality_ids),
    )


def _routes_seen(scope: Scope) -> Q:
    return Q() if scope.is_kombit else _route_parties(scope)


def _transfers_seen(scope: Scope) -> Q:
    # Transfers carry municipal data: the two vendors and the municipality, not KOMBIT.
    return _route_parties(scope, "route__")


def _received_seen(scope: Scope) -> Q:
    return _any_of(
        ("account__it_system__vendor_id", scope.vendor_ids),
        ("route__municipality_id", scope.municipality_ids),
    )


def _concerned(model: type[Model]) -> Rule:
    """Events and alerts: for the organisations they name as concerned. Asked of the link table
    alone, so no row is matched twice (no DISTINCT) and the caller's order and limit still
    apply (bench/pages.py measures the overview's alert count)."""
    links = model.concerns.through.objects
    column = f"{model.concerns.field.m2m_field_name()}_id"

    def rule(scope: Scope) -> Q:
        concerned = links.filter(organisation_id__in=scope.organisation_ids)
        return Q(pk__in=concerned.values(column))

    return rule


RULES: dict[type[Model], Rules] = {
    # Names, CVR numbers and municipality codes are public facts.
    Organisation: Rules(view=_everyone, change=_no_one),
    # Colleagues see each other; the organisation's administrators change its members (role,
    # removal, login) and its invitations. Outsiders, KOMBIT included, find neither (404).
    Membership: Rules(view=_colleagues, change=_administered),
    Invitation: Rules(view=_colleagues, change=_administered),
    ItSystem: Rules(view=_it_systems_seen, change=_it_systems_changed),
    # Mail is a record of what was sent: readable by the sender's organisation, never edited.
    OutgoingMail: Rules(view=_mails_seen, change=_no_one),
    InfRefRequest: Rules(view=_infref_requests_seen, change=_infref_requests_changed),
    InfRef: Rules(view=_infrefs_seen, change=_no_one, distinct=True),
    Integration: integration_rules(),
    OnboardingTask: Rules(
        view=integration_rules("integration__").view,
        change=_tasks_changed,
        distinct=True,
    ),
    # The agreement is between the sending vendor and the municipality, and the test is agreed
    # between them too ("aftales bilateralt"): either keeps the record.
    ProcessingAgreement: Rules(
        view=integration_rules("integration__").view, change=_bilateral_record, distinct=True
    ),
    IntegrationTest: Rules(
        view=integration_rules("integration__").view, change=_bilateral_record, distinct=True
    ),
    Consent: Rules(
        view=integration_rules("integration__").view, change=_consents_changed, distinct=True
    ),
    DataSpecification: integration_rules("integration__"),
    SpecificationVersion: integration_rules("specification__integration__"),
    SpecificationField: integration_rules("version__specification__integration__"),
    SpecificationDocument: integration_rules("version__specification__integration__"),
    SftpAccount: Rules(
        view=_accounts_seen, change=lambda scope: Q(it_system__vendor_id__in=scope.vendor_ids)
    ),
    Route: Rules(
        view=_routes_seen,
        change=lambda scope: Q() if scope.is_kombit else Q(sender__vendor_id__in=scope.vendor_ids),
    ),
    Transfer: Rules(
        view=_transfers_seen,
        change=lambda scope: Q(route__sender__vendor_id__in=scope.vendor_ids),
    ),
    ReceivedFile: Rules(
        view=_received_seen,
        change=lambda scope: Q(account__it_system__vendor_id__in=scope.vendor_ids),
    ),
    AuditEvent: Rules(view=_concerned(AuditEvent), change=_no_one),
    Alert: Rules(view=_concerned(Alert), change=_concerned(Alert)),
    GdprDeclaration: Rules(view=_declarations_seen, change=_declarations_changed, distinct=True),
}


def acts_for_kombit(user) -> bool:
    """KOMBIT's own steps: assigning InfRefs and creating them on Serviceplatformen."""
    scope = scope_of(user)
    return scope.is_kombit or scope.is_superuser


def acts_for_vendor(user, vendor: Organisation) -> bool:
    scope = scope_of(user)
    return vendor.pk in scope.vendor_ids or scope.is_superuser


def _sends_on(user, route: Route) -> bool:
    scope = scope_of(user)
    return scope.is_superuser or route.sender.vendor_id in scope.vendor_ids


def may_send_on(user, route: Route) -> bool:
    """Files are queued on a route by the staff of its sending vendor (and superusers): the
    municipality and the receiving vendor read its transfers, KOMBIT runs it, none sends."""
    return _sends_on(user, route)


def may_download_copy(user, transfer: Transfer) -> bool:
    """The local copy of a sent file is the sending vendor's data: its staff (and superusers)
    may fetch it; the others the transfer concerns see its record, not its content."""
    return _sends_on(user, transfer.route)


def route_states_settable(user, route: Route) -> list[str]:
    """The states `user` may set `route` to. KOMBIT establishes routes on the platform, so it
    sets any state; the sending vendor may suspend its own route; no one else sets any."""
    if acts_for_kombit(user):
        return list(Route.State.values)
    if _sends_on(user, route):
        return [Route.State.SUSPENDED]
    return []


def _filter(user, queryset: QuerySet, kind: str) -> QuerySet:
    if not (user.is_authenticated and user.is_active):
        return queryset.none()
    scope = scope_of(user)
    if scope.is_superuser:
        return queryset
    rules = RULES.get(queryset.model)
    if rules is None:
        return queryset.none()
    filtered = queryset.filter(getattr(rules, kind)(scope))
    return filtered.distinct() if rules.distinct else filtered


def visible(user, queryset: QuerySet) -> QuerySet:
    """The rows of `queryset` that `user` may see."""
    return _filter(user, queryset, "view")


def changeable(user, queryset: QuerySet) -> QuerySet:
    """The rows of `queryset` that `user` may change."""
    return _filter(user, queryset, "change")


def can_view(user, obj: Model) -> bool:
    return visible(user, type(obj)._default_manager.filter(pk=obj.pk)).exists()


def can_change(user, obj: Model) -> bool:
    return changeable(user, type(obj)._default_manager.filter(pk=obj.pk)).exists()


def get_visible_or_404(user, queryset: QuerySet, **lookup) -> Model:
    return get_object_or_404(visible(user, queryset), **lookup)


def get_changeable_or_404(user, queryset: QuerySet, **lookup) -> Model:
    """The object to change: 404 if the user may not see it, 403 if they may only see it."""
    obj = get_visible_or_404(user, queryset, **lookup)
    if not can_change(user, obj):
        raise PermissionDenied
    return obj


def administers(user, organisation: Organisation) -> bool:
    """Whether `user` runs `organisation`'s people: its administrators, and superusers."""
    if not (user.is_authenticated and user.is_active):
        return False
    scope = scope_of(user)
    return scope.is_superuser or organisation.pk in scope.administered_ids


def get_administered_or_404(user, pk: int) -> Organisation:
    """The organisation whose people `user` is about to change, as for its members' records:
    404 to whoever is not one of them (the people of an organisation are its own), 403 to a
    member who is not its administrator."""
    organisation = get_object_or_404(Organisation, pk=pk)
    scope = scope_of(user)
    if scope.is_superuser:
        return organisation
    if organisation.pk not in scope.organisation_ids:
        raise Http404
    if organisation.pk not in scope.administered_ids:
        raise PermissionDenied
    return organisation


def vendors_acted_for(user) -> QuerySet:
    """Vendors on whose behalf the user may register IT systems and other vendor records."""
    vendors = Organisation.objects.filter(kind=Organisation.Kind.VENDOR)
    scope = scope_of(user)
    if scope.is_superuser:
        return vendors
    return vendors.filter(pk__in=scope.vendor_ids)


def acts_for_a_vendor(user) -> bool:
    """Whether `vendors_acted_for(user)` has any, asked of the database only for a superuser:
    anyone else's vendors are those of their memberships, read with their scope."""
    scope = scope_of(user)
    if scope.is_superuser:
        return vendors_acted_for(user).exists()
    return bool(scope.vendor_ids)


def routes_of_transfers_seen(user) -> QuerySet:
    """The routes on which `user` sees every transfer, and no transfer on any other: those of
    the parties they act for (`_transfers_seen` asks the same of each transfer's route).

    Transfers asked for by these routes are the transfers `user` sees, without their own rule
    joining each transfer's route to both its IT systems again.
    """
    if not (user.is_authenticated and user.is_active):
        return Route.objects.none()
    scope = scope_of(user)
    if scope.is_superuser:
        return Route.objects.all()
    return Route.objects.filter(_route_parties(scope))


def reviewable_municipalities(user) -> QuerySet:
    """The municipalities whose flows `user` may review (the municipal review): those they act
    for, every one for a superuser, none for anyone else."""
    municipalities = Organisation.objects.filter(kind=Organisation.Kind.MUNICIPALITY)
    scope = scope_of(user)
    if scope.is_superuser:
        return municipalities
    return municipalities.filter(pk__in=scope.municipality_ids)


def municipalities_to_review(user) -> list[Organisation]:
    """`reviewable_municipalities` in the order of their names: anyone's but a superuser's
    taken from the memberships read with their scope, not asked for again."""
    scope = scope_of(user)
    if scope.is_superuser:
        return list(reviewable_municipalities(user).order_by("name"))
    # Membership's order is its organisation's name.
    return [
        membership.organisation
        for membership in memberships_of(user)
        if membership.organisation_id in scope.municipality_ids
    ]
