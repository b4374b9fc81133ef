"""Logins and passwords in the audit log: recorded from Django's signals, shown to whom it may.

A person's logins, failed logins and password changes and resets concern their organisations,
but they are the person's own business and their organisation's administrators': ordinary
colleagues do not see them, nor does anyone outside (`restrict`). Superusers see them all.

A failed login for a user name that matches no user is recorded without that name, for
superusers alone (it concerns no organisation): what was typed may be a password typed into the
wrong field, and the event must not tell anyone which names exist. django-axes keeps the name it
needs to lock out, in its own records that only superusers read.
"""

import logging

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _

from portal.accounts.access import memberships_of
from portal.accounts.lockout import client_ip
from portal.accounts.models import Organisation
from portal.audit.log import record
from portal.audit.models import AuditEvent
from portal.audit.sentences import Entry
from portal.sso import signed_in_by_sso

log = logging.getLogger(__name__)
Action = AuditEvent.Action

# A person's own events: shown to the administrators of their organisations, and superusers.
PERSONAL = frozenset(
    {
        Action.LOGIN,
        Action.LOGIN_FAILED,
        Action.SSO_LOGIN,
        Action.SSO_REFUSED,
        Action.PASSWORD_CHANGED,
        Action.PASSWORD_RESET_REQUESTED,
        Action.PASSWORD_RESET,
        Action.TWO_FACTOR_SET_UP,
        Action.TWO_FACTOR_REMOVED,
        Action.BACKUP_CODES_MADE,
    }
)


def organisations_of(user) -> list[Organisation]:
    return list(Organisation.objects.filter(memberships__user=user))


def where_from(request: HttpRequest | None) -> dict[str, str]:
    """The address the request came from (as the login lock-out counts it), where known."""
    address = client_ip(request) if request is not None else None
    return {"address": address} if address else {}


# --- Recording, from the signals ---------------------------------------------------------------


def logged_in(sender, request, user, **kwargs) -> None:
    if signed_in_by_sso(request):
        return  # the single sign-on records its own event (SSO_LOGIN)
    record(user, Action.LOGIN, user, concerns=organisations_of(user), **where_from(request))


def login_failed(sender, credentials, request=None, **kwargs) -> None:
    User = get_user_model()
    username = credentials.get(User.USERNAME_FIELD)
    user = (
        User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()
        if isinstance(username, str) and username
        else None
    )
    details = where_from(request)
    if getattr(request, "axes_locked_out", False):
        details["locked_out"] = "yes"
    if user is None:
        # Not record(): there is no record to name, and the name typed is not kept.
        AuditEvent.objects.create(
            action=Action.LOGIN_FAILED,
            object_type=User._meta.label,
            object_id="",
            summary="",
            details=details,
        )
        return
    # Whoever typed the password is not known to be the user: the event has no actor.
    record(None, Action.LOGIN_FAILED, user, concerns=organisations_of(user), **details)


def connect() -> None:
    from django.contrib.auth.signals import user_logged_in, user_login_failed

    user_logged_in.connect(logged_in, dispatch_uid="audit-login")
    user_login_failed.connect(login_failed, dispatch_uid="audit-login-failed")


# --- Who sees them ----------------------------------------------------------------------------


def restrict(user, events: QuerySet) -> QuerySet:
    """`events` (already those the user may see) without the personal events of people whose
    organisation the user does not administer."""
    if user.is_superuser:
        return events
    administered = {m.organisation_id for m in memberships_of(user) if m.is_administrator}
    if not administered:
        return events.exclude(action__in=PERSONAL)
    links = AuditEvent.concerns.through.objects.filter(organisation_id__in=administered)
    return events.filter(~Q(action__in=PERSONAL) | Q(pk__in=links.values("auditevent_id")))


def sees_personal_events(user) -> bool:
    return user.is_superuser or any(m.is_administrator for m in memberships_of(user))


# --- How they read ----------------------------------------------------------------------------


def _person(event: AuditEvent) -> str:
    """The person the event is about: who acted, else the user name recorded then."""
    if event.actor_id is not None:
        return str(event.who)
    return event.summary or "–"


def _login(event: AuditEvent) -> str:
    return _("%(person)s logged in") % {"person": _person(event)}


def _login_failed(event: AuditEvent) -> str:
    if not event.object_id:
        return _("Failed login with a user name that matches no user")
    if event.details.get("locked_out"):
        return _("Login as %(person)s refused: too many failed logins from this address") % {
            "person": _person(event)
        }
    return _("Failed login as %(person)s") % {"person": _person(event)}


def _password_changed(event: AuditEvent) -> str:
    return _("%(person)s changed their password") % {"person": _person(event)}


def _reset_requested(event: AuditEvent) -> str:
    return _("A link to set a new password was mailed to %(person)s") % {"person": _person(event)}


def _reset(event: AuditEvent) -> str:
    return _("%(person)s set a new password with a link from a mail") % {"person": _person(event)}


_SENTENCES = {
    Action.LOGIN: _login,
    Action.LOGIN_FAILED: _login_failed,
    Action.PASSWORD_CHANGED: _password_changed,
    Action.PASSWORD_RESET_REQUESTED: _reset_requested,
    Action.PASSWORD_RESET: _reset,
}
_SPOKEN = {"locked_out"}


def reworded(entry: Entry) -> Entry:
    """The entry with its sentence, where the event is a login or a password's."""
    says = _SENTENCES.get(entry.event.action)
    if says is None:
        return entry
    labels = {"address": _("IP address")}
    technical = [
        (labels.get(key, key), str(value))
        for key, value in entry.event.details.items()
        if key not in _SPOKEN
    ]
    return Entry(event=entry.event, sentence=says(entry.event), technical=technical)
