"""Logins are visible (issue 18): every login and failed login is an audit event concerning the
person's organisations, read by that organisation's administrators and no one else but
superusers; a failed login for a name that matches no one keeps no name."""

import pytest
from django.urls import reverse

from portal.accounts.models import Membership
from portal.audit.models import AuditEvent
from tests.conftest import PASSWORD, make_user

Action = AuditEvent.Action
PERSONAL = [
    Action.LOGIN,
    Action.LOGIN_FAILED,
    Action.PASSWORD_CHANGED,
    Action.PASSWORD_RESET_REQUESTED,
    Action.PASSWORD_RESET,
]


def attempt(client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address
    )


def administrator(username: str, organisation):
    user = make_user(username, organisation)
    Membership.objects.filter(user=user, organisation=organisation).update(is_administrator=True)
    return user


def log_of(client, **query) -> list[AuditEvent]:
    page = client.get(reverse("audit:log"), query)
    assert page.status_code == 200
    return [entry.event for entry in page.context["entries"]]


def about(event: AuditEvent, user) -> bool:
    return event.object_type == "auth.User" and event.object_id == str(user.pk)


def sentences(client, **query) -> list[tuple[str, list]]:
    client.cookies["django_language"] = "en"
    page = client.get(reverse("audit:log"), query)
    return [(entry.sentence, entry.technical) for entry in page.context["entries"]]


@pytest.fixture
def logins(client, staff_a, vendor_a, aarhus):
    """staff-a, a member of vendor A and of Aarhus, logs in once and fails once."""
    Membership.objects.create(user=staff_a, organisation=aarhus)
    assert attempt(client, "staff-a", "not the password").status_code == 200
    assert attempt(client, "staff-a", PASSWORD).status_code == 302
    client.post(reverse("logout"))
    return list(AuditEvent.objects.filter(action__in=PERSONAL).order_by("pk"))


def test_a_login_and_a_failed_one_are_recorded_for_the_persons_organisations(
    logins, staff_a, vendor_a, aarhus
):
    failed, succeeded = logins
    assert (failed.action, failed.actor, failed.object_id) == (
        Action.LOGIN_FAILED,
        None,  # whoever typed it is not known to be staff-a
        str(staff_a.pk),
    )
    assert (succeeded.action, succeeded.actor) == (Action.LOGIN, staff_a)
    for event in (failed, succeeded):
        assert set(event.concerns.all()) == {vendor_a, aarhus}
        assert event.details == {"address": "10.0.0.1"}
        assert PASSWORD not in str(event.details) and "not the password" not in str(event.details)


def test_an_organisations_administrator_reads_its_members_logins(
    client_for, logins, staff_a, vendor_a, aarhus
):
    for organisation in (vendor_a, aarhus):  # staff-a is a member of both
        reader = administrator(f"admin-{organisation.pk}", organisation)
        assert set(log_of(client_for(reader))) >= set(logins)
        theirs = [e for e in log_of(client_for(reader), action="login") if about(e, staff_a)]
        assert [e.action for e in theirs] == [Action.LOGIN]
    read = sentences(client_for(reader))
    assert ("Ada logged in", [("IP address", "10.0.0.1")]) in read
    assert ("Failed login as staff-a", [("IP address", "10.0.0.1")]) in read


def test_colleagues_outsiders_and_the_person_do_not_read_them(
    client_for, logins, staff_a, vendor_a, vendor_b
):
    colleague = make_user("colleague-a", vendor_a)  # a member, not an administrator
    outsider = administrator("admin-b", vendor_b)
    for reader in (colleague, outsider, staff_a):
        assert not [e for e in log_of(client_for(reader)) if about(e, staff_a)], reader
    # Those who administer no organisation are not offered the actions to filter by.
    for reader in (colleague, staff_a):
        offered = client_for(reader).get(reverse("audit:log")).context["actions"]
        assert not set(PERSONAL) & {value for value, _label in offered}


def test_the_rest_of_the_log_is_read_as_before(client_for, logins, staff_a, vendor_a):
    """A colleague still reads the organisation's other events."""
    from portal.audit.log import record

    record(staff_a, Action.INTEGRATION_CHANGED, vendor_a, concerns=[vendor_a])
    colleague = make_user("colleague-a", vendor_a)
    assert [e.action for e in log_of(client_for(colleague))] == [Action.INTEGRATION_CHANGED]


def test_superusers_read_every_login(client_for, logins, superuser):
    assert set(log_of(client_for(superuser))) >= set(logins)


def test_a_failed_login_for_an_unknown_name_keeps_no_name(
    client, client_for, staff_a, vendor_a, superuser
):
    typed = "Correct-Horse-typed-as-a-name"
    assert attempt(client, typed, PASSWORD).status_code == 200
    [event] = AuditEvent.objects.filter(action=Action.LOGIN_FAILED)
    assert (event.actor, event.object_id, event.summary) == (None, "", "")
    assert event.details == {"address": "10.0.0.1"}
    assert typed not in str(event.details)
    assert not event.concerns.exists()
    # Only superusers read it; the administrators of every organisation do not.
    admin = administrator("admin-a", vendor_a)
    assert event not in log_of(client_for(admin))
    read = sentences(client_for(superuser), action="login_failed")
    assert read == [
        ("Failed login with a user name that matches no user", [("IP address", "10.0.0.1")])
    ]


def test_the_login_page_answers_a_wrong_name_as_a_wrong_password(client, staff_a):
    unknown = attempt(client, "no-such-user", PASSWORD)
    known = attempt(client, "staff-a", "not the password")
    assert unknown.status_code == known.status_code == 200
    assert unknown.context["form"].errors == known.context["form"].errors


# --- The lock-out still holds -------------------------------------------------------------------


@pytest.fixture
def throttled(settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    return settings


def test_a_locked_out_login_is_recorded_as_refused(
    throttled, client, client_for, staff_a, vendor_a
):
    for number in range(3):
        attempt(client, "staff-a", f"wrong-{number}")
    assert attempt(client, "staff-a", PASSWORD).status_code == 429
    events = AuditEvent.objects.filter(action=Action.LOGIN_FAILED).order_by("pk")
    assert [e.details.get("locked_out") for e in events] == [None, None, "yes", "yes"]
    assert not AuditEvent.objects.filter(action=Action.LOGIN).exists()
    read = sentences(client_for(administrator("admin-a", vendor_a)), action="login_failed")
    assert read[0][0] == "Login as staff-a refused: too many failed logins from this address"
