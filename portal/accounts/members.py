"""An organisation's administrators run its members: their role, their membership, their login.

Every change is made in one transaction with its audit event, which concerns the organisation.
An organisation always keeps at least one active administrator: a change that would leave it
none is refused with a message that says why, whoever asks (the administrator about themselves,
or a superuser). The organisations a change touches are locked first, so two administrators
demoting each other at the same moment cannot both succeed.

Removing a member deletes the membership only: the user stays, and with them their records,
their audit trail and what they wrote. A user left with no organisation can no longer log in
(`is_active` off): a leaver loses access when the last organisation lets them go.
"""

from django.db import transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from portal.accounts.models import Membership, Organisation
from portal.accounts.two_factor import forget_devices
from portal.audit.log import record
from portal.audit.models import AuditEvent
from portal.core.templatetags.people import person

Action = AuditEvent.Action


class Refused(Exception):
    """A change the rules do not allow; the message says why, to the person who asked."""


def active_administrators(organisation: Organisation) -> QuerySet:
    return Membership.objects.filter(
        organisation=organisation, is_administrator=True, user__is_active=True
    )


def _lock(*organisation_ids: int) -> None:
    """Serialise changes to these organisations' people (in id order: no deadlock)."""
    list(
        Organisation.objects.select_for_update()
        .filter(pk__in=organisation_ids)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _lock_theirs(user) -> list[int]:
    """Lock every organisation the user belongs to (a change to their one login touches them
    all); their ids."""
    theirs = list(Membership.objects.filter(user=user).values_list("organisation_id", flat=True))
    _lock(*theirs)
    return theirs


def _fresh(membership: Membership) -> Membership:
    """The membership as it is now, inside the caller's lock; Refused if it has gone."""
    try:
        return Membership.objects.select_related("user", "organisation").get(pk=membership.pk)
    except Membership.DoesNotExist:
        raise Refused(_("The person is no longer a member of the organisation.")) from None


def _is_last_active_administrator(membership: Membership) -> bool:
    if not (membership.is_administrator and membership.user.is_active):
        return False
    others = active_administrators(membership.organisation).exclude(pk=membership.pk)
    return not others.exists()


def last_administrator_refusal(membership: Membership) -> Refused | None:
    """Why the membership may not lose its administrator's role now, if it may not: for a
    page to ask before it offers the change. The change itself checks again, under the lock."""
    if _is_last_active_administrator(membership):
        return _last_administrator_refusal(membership)
    return None


def _last_administrator_refusal(membership: Membership) -> Refused:
    return Refused(
        _(
            "%(person)s is the only active administrator of %(organisation)s. Make another "
            "member administrator first: an organisation always keeps at least one."
        )
        % {"person": person(membership.user), "organisation": membership.organisation.name}
    )


def _facts(membership: Membership) -> dict:
    return {
        "user": membership.user.get_username(),
        "organisation": membership.organisation.name,
    }


def change_role(actor, membership: Membership, *, administrator: bool) -> bool:
    """Make the member an administrator, or a member again; False if they already are one."""
    with transaction.atomic():
        _lock(membership.organisation_id)
        membership = _fresh(membership)
        if membership.is_administrator == administrator:
            return False
        if not administrator and _is_last_active_administrator(membership):
            raise _last_administrator_refusal(membership)
        membership.is_administrator = administrator
        membership.save(update_fields=["is_administrator"])
        record(
            actor,
            Action.MEMBER_ROLE_CHANGED,
            membership,
            concerns=[membership.organisation],
            administrator=administrator,
            **_facts(membership),
        )
    return True


def may_deactivate(actor, user) -> bool:
    """A portal administrator's login (staff, superuser) is kept by the portal's superusers."""
    return actor.is_superuser or not (user.is_superuser or user.is_staff)


def remove(actor, membership: Membership) -> bool:
    """Take the member out of the organisation; True if their login was closed with it (they
    belong to no organisation any more)."""
    with transaction.atomic():
        _lock(membership.organisation_id)
        membership = _fresh(membership)
        if _is_last_active_administrator(membership):
            raise _last_administrator_refusal(membership)
        user, organisation = membership.user, membership.organisation
        record(
            actor,
            Action.MEMBER_REMOVED,
            membership,
            concerns=[organisation],
            administrator=membership.is_administrator,
            **_facts(membership),
        )
        membership.delete()
        # A portal administrator keeps their login: it is theirs by more than a membership.
        closed = (
            user.is_active
            and not (user.is_superuser or user.is_staff)
            and not Membership.objects.filter(user=user).exists()
        )
        if closed:
            user.is_active = False
            user.save(update_fields=["is_active"])
            record(
                actor,
                Action.MEMBER_DEACTIVATED,
                user,
                concerns=[organisation],
                user=user.get_username(),
                organisation=organisation.name,
                no_organisation_left=True,
            )
    return closed


def deactivate(actor, membership: Membership) -> bool:
    """Close the member's login (it is one login, for every organisation they belong to);
    False if it already is closed."""
    if not may_deactivate(actor, membership.user):
        raise Refused(
            _("%(person)s administers the portal; only the portal's superusers close that login.")
            % {"person": person(membership.user)}
        )
    user = membership.user
    with transaction.atomic():
        theirs = _lock_theirs(user)
        membership = _fresh(membership)
        user = membership.user
        if not user.is_active:
            return False
        for held in Membership.objects.filter(user=user, is_administrator=True).select_related(
            "user", "organisation"
        ):
            if not _is_last_active_administrator(held):
                continue
            if held.pk == membership.pk:
                raise _last_administrator_refusal(held)
            # Which organisation is not said: the other organisation's people are its own.
            raise Refused(
                _(
                    "%(person)s is the only active administrator of another organisation, so "
                    "their login stays open. Remove them from %(organisation)s instead."
                )
                % {"person": person(user), "organisation": membership.organisation.name}
            )
        user.is_active = False
        user.save(update_fields=["is_active"])
        # Every organisation of theirs loses the person, so every one of them is told.
        record(
            actor,
            Action.MEMBER_DEACTIVATED,
            membership,
            concerns=Organisation.objects.filter(pk__in=theirs),
            **_facts(membership),
        )
    return True


def reset_two_factor(actor, membership: Membership) -> bool:
    """Take away the member's authenticator and backup codes, for a lost phone: their next login
    sets up two-step login anew where it is required, and is a password's alone until then
    where it is not. False if they had none. Every organisation of theirs is told, as their
    login is one for all of them; a portal administrator's is reset by the portal's superusers
    alone."""
    user = membership.user
    if user == actor:
        raise Refused(_("Your own two-step login is changed on your account's page."))
    if not may_deactivate(actor, user):
        raise Refused(
            _(
                "%(person)s administers the portal; only the portal's superusers reset their "
                "two-step login."
            )
            % {"person": person(user)}
        )
    with transaction.atomic():
        theirs = _lock_theirs(user)
        membership = _fresh(membership)
        if not forget_devices(membership.user):
            return False
        record(
            actor,
            Action.TWO_FACTOR_REMOVED,
            membership.user,
            concerns=Organisation.objects.filter(pk__in=theirs),
            **_facts(membership),
        )
    return True


def set_two_factor_requirement(actor, organisation: Organisation, *, required: bool) -> bool:
    """Whether each member must confirm their logins with a code; False if nothing changed."""
    with transaction.atomic():
        changed = Organisation.objects.filter(pk=organisation.pk).exclude(
            requires_two_factor=required
        )
        if not changed.update(requires_two_factor=required):
            return False
        organisation.requires_two_factor = required
        record(
            actor,
            Action.TWO_FACTOR_POLICY,
            organisation,
            concerns=[organisation],
            required=required,
        )
    return True
