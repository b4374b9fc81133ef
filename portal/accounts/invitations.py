"""Invitations: an administrator asks a colleague in by e-mail; the link opens one account, once.

The link carries a random token (`secrets.token_urlsafe(32)`); only its SHA-256 is kept, so the
table alone opens nothing. A link is valid for INVITATION_DAYS and only while the invitation is
neither accepted nor withdrawn; "send again" gives it a new token and a new expiry, and the old
link stops working.

Who accepts:

- someone new: the e-mail address becomes their user name (the mail proved they receive it, it
  is unique, and no one is told which other user names exist); they give their name and a
  password, and the user, the membership and the acceptance are made in one transaction;
- someone who already has a login with that address (a vendor's employee working for two
  organisations): they log in and accept, and the membership is added to their account;
- a leaver whose login was closed when their last organisation removed them: they set a new
  password and their account, with its history, opens again.

The acceptance is claimed by one conditional UPDATE, so a form sent twice makes one user and
one membership.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.timezone import localtime
from django.utils.translation import gettext as _

from portal.accounts.models import Invitation, Membership, Organisation
from portal.audit.log import record
from portal.audit.models import AuditEvent
from portal.core.templatetags.people import person
from portal.core.text import quoted, visible
from portal.outbox.mail import queue_mail

Action = AuditEvent.Action


class Refused(Exception):
    """An invitation the rules do not allow; the message says why."""


class State:
    OPEN = "open"
    EXPIRED = "expired"  # also what an unknown token is shown as
    ACCEPTED = "accepted"
    WITHDRAWN = "withdrawn"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    return token, digest(token)


def _expiry():
    return timezone.now() + timedelta(days=settings.INVITATION_DAYS)


def normalised(email: str) -> str:
    return email.strip().lower()


def state_of(invitation: Invitation | None) -> str:
    if invitation is None:
        return State.EXPIRED
    if invitation.accepted_at is not None:
        return State.ACCEPTED
    if invitation.cancelled_at is not None:
        return State.WITHDRAWN
    if invitation.expires_at <= timezone.now():
        return State.EXPIRED
    return State.OPEN


def find(token: str) -> Invitation | None:
    return (
        Invitation.objects.select_related("organisation", "invited_by", "accepted_by")
        .filter(token_sha256=digest(token))
        .first()
    )


def link(token: str) -> str:
    return settings.PORTAL_BASE_URL.rstrip("/") + reverse("invitations:accept", args=[token])


def open_invitations(organisation: Organisation) -> QuerySet:
    """Neither accepted nor withdrawn: waiting, or expired and waiting to be sent again."""
    return Invitation.objects.filter(
        organisation=organisation, accepted_at__isnull=True, cancelled_at__isnull=True
    )


def accounts_for(email: str) -> QuerySet:
    """The logins an address belongs to: by e-mail, or as the user name invitations give."""
    return get_user_model().objects.filter(Q(email__iexact=email) | Q(username__iexact=email))


def _refuse_members_and_duplicates(organisation: Organisation, email: str, exclude=None) -> None:
    members = Membership.objects.filter(organisation=organisation, user__in=accounts_for(email))
    if members.exists():
        raise Refused(
            _("%(email)s is already a member of %(organisation)s.")
            % {"email": email, "organisation": organisation.name}
        )
    waiting = open_invitations(organisation).filter(email__iexact=email)
    if exclude is not None:
        waiting = waiting.exclude(pk=exclude.pk)
    if waiting.exists():
        raise Refused(
            _(
                "%(email)s is already invited. If the mail was lost or the link has expired, "
                "send the invitation again from the list."
            )
            % {"email": email}
        )


def _mail(invitation: Invitation, token: str, sender) -> None:
    organisation = invitation.organisation
    with translation.override(settings.LANGUAGE_CODE):
        facts = {
            "person": quoted(person(sender)),
            "organisation": visible(organisation.name),
        }
        subject = _("Invitation to the FDD portal from %(organisation)s") % facts
        if invitation.is_administrator:
            invited = _(
                "%(person)s has invited you to the FDD portal as an administrator of "
                "%(organisation)s."
            )
        else:
            invited = _(
                "%(person)s has invited you to the FDD portal as a member of %(organisation)s."
            )
        until = formats.date_format(localtime(invitation.expires_at), "SHORT_DATETIME_FORMAT")
        lines = [
            invited % facts,
            "",
            _("Open the link to accept the invitation and set up your login:"),
            link(token),
            "",
            _("The link can be used once and is valid until %(date)s.") % {"date": until},
            _("If you did not expect this invitation, you can ignore this mail."),
            "",
            _("The FDD portal"),
        ]
    queue_mail(
        to=[invitation.email],
        subject=subject,
        body="\n".join(lines) + "\n",
        organisation=organisation,
        created_by=sender,
    )


def invite(actor, organisation: Organisation, email: str, *, administrator: bool) -> Invitation:
    """Record the invitation and queue its mail; Refused if the address is a member already or
    has an invitation waiting."""
    email = normalised(email)
    with transaction.atomic():
        _refuse_members_and_duplicates(organisation, email)
        token, token_sha256 = _new_token()
        invitation = Invitation.objects.create(
            organisation=organisation,
            email=email,
            is_administrator=administrator,
            token_sha256=token_sha256,
            invited_by=actor,
            expires_at=_expiry(),
        )
        record(
            actor,
            Action.INVITATION_SENT,
            invitation,
            concerns=[organisation],
            email=email,
            administrator=administrator,
            expires=invitation.expires_at.isoformat(),
        )
        _mail(invitation, token, actor)
    return invitation


def _still_open(invitation: Invitation) -> Invitation:
    """The invitation as it is now, locked; Refused if it was accepted or withdrawn."""
    invitation = (
        Invitation.objects.select_for_update().select_related("organisation").get(pk=invitation.pk)
    )
    if invitation.accepted_at is not None:
        raise Refused(
            _("The invitation to %(email)s has already been accepted.")
            % {"email": invitation.email}
        )
    if invitation.cancelled_at is not None:
        raise Refused(
            _("The invitation to %(email)s has been withdrawn.") % {"email": invitation.email}
        )
    return invitation


def resend(actor, invitation: Invitation) -> Invitation:
    """A new link, valid for INVITATION_DAYS from now; the old one stops working."""
    with transaction.atomic():
        invitation = _still_open(invitation)
        _refuse_members_and_duplicates(invitation.organisation, invitation.email, invitation)
        token, invitation.token_sha256 = _new_token()
        invitation.expires_at = _expiry()
        invitation.invited_by = actor
        invitation.save(update_fields=["token_sha256", "expires_at", "invited_by"])
        record(
            actor,
            Action.INVITATION_SENT,
            invitation,
            concerns=[invitation.organisation],
            email=invitation.email,
            administrator=invitation.is_administrator,
            expires=invitation.expires_at.isoformat(),
            again=True,
        )
        _mail(invitation, token, actor)
    return invitation


def withdraw(actor, invitation: Invitation) -> None:
    with transaction.atomic():
        invitation = _still_open(invitation)
        invitation.cancelled_at = timezone.now()
        invitation.save(update_fields=["cancelled_at"])
        record(
            actor,
            Action.INVITATION_WITHDRAWN,
            invitation,
            concerns=[invitation.organisation],
            email=invitation.email,
        )


# Accepting ------------------------------------------------------------------------------------


class NotOpen(Exception):
    """The invitation was accepted, withdrawn or expired before this acceptance claimed it."""


@dataclass(frozen=True)
class Account:
    """What the acceptance page offers whoever holds the link."""

    NEW = "new"  # no login has the address: make one
    REOPEN = "reopen"  # a leaver's closed login: set a new password
    LOG_IN = "log_in"  # an open login has the address: log in, then accept
    ACCEPT = "accept"  # logged in with the address: accept
    OTHER_USER = "other_user"  # logged in as someone else
    CLOSED = "closed"  # a closed login that still belongs to an organisation

    kind: str
    user: object = None


def account_for(invitation: Invitation, user) -> Account:
    accounts = list(accounts_for(invitation.email))
    if user.is_authenticated:
        if any(account.pk == user.pk for account in accounts):
            return Account(Account.ACCEPT, user)
        return Account(Account.OTHER_USER, user)
    if not accounts:
        return Account(Account.NEW)
    open_accounts = [account for account in accounts if account.is_active]
    if open_accounts:
        return Account(Account.LOG_IN, open_accounts[0])
    [first, *_others] = accounts
    if len(accounts) == 1 and _reopenable(first):
        return Account(Account.REOPEN, first)
    return Account(Account.CLOSED, first)


def _reopenable(user) -> bool:
    """A leaver: closed when their last organisation let them go, and nothing more."""
    return not (
        user.is_active
        or user.is_staff
        or user.is_superuser
        or Membership.objects.filter(user=user).exists()
    )


def _claim(invitation: Invitation) -> None:
    """Mark the invitation accepted, or raise NotOpen if it no longer may be."""
    now = timezone.now()
    claimed = Invitation.objects.filter(
        pk=invitation.pk,
        accepted_at__isnull=True,
        cancelled_at__isnull=True,
        expires_at__gt=now,
    ).update(accepted_at=now)
    if not claimed:
        raise NotOpen


def _join(invitation: Invitation, user, **details) -> Membership | None:
    Invitation.objects.filter(pk=invitation.pk).update(accepted_by=user)
    membership, made = Membership.objects.get_or_create(
        user=user,
        organisation=invitation.organisation,
        defaults={"is_administrator": invitation.is_administrator},
    )
    record(
        user,
        Action.INVITATION_ACCEPTED,
        invitation,
        concerns=[invitation.organisation],
        email=invitation.email,
        user=user.get_username(),
        administrator=invitation.is_administrator,
        **details,
    )
    return membership if made else None


def accept_new(invitation: Invitation, *, first_name: str, last_name: str, password: str):
    """Make the invited person's login and membership; NotOpen if the invitation was taken
    meanwhile, Refused if a login with the address appeared meanwhile."""
    users = get_user_model().objects
    try:
        with transaction.atomic():
            _claim(invitation)
            if accounts_for(invitation.email).exists():
                raise Refused(_("A login with this e-mail address already exists."))
            user = users.create_user(
                username=invitation.email,
                email=invitation.email,
                password=password,
                first_name=first_name,
                last_name=last_name,
            )
            _join(invitation, user, new_login=True)
    except IntegrityError:
        raise Refused(_("A login with this e-mail address already exists.")) from None
    return user


def accept_reopening(invitation: Invitation, user, *, first_name: str, last_name: str, password):
    """Open a leaver's closed login again, with a new password, in the inviting organisation."""
    with transaction.atomic():
        _claim(invitation)
        user = get_user_model().objects.select_for_update().get(pk=user.pk)
        if not _reopenable(user):
            raise Refused(_("This login cannot be opened again through an invitation."))
        user.first_name, user.last_name = first_name, last_name
        user.set_password(password)
        user.is_active = True
        user.save(update_fields=["first_name", "last_name", "password", "is_active"])
        _join(invitation, user, reopened=True)
    return user


def accept_existing(invitation: Invitation, user) -> Membership | None:
    """Add the membership to the logged-in user's login; None if they were a member already."""
    with transaction.atomic():
        _claim(invitation)
        return _join(invitation, user, existing_login=True)
