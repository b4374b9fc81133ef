"""A person's own password (issue 18): changed while logged in, and a forgotten one set again
with a link mailed through the outbox, followed here from the mail a real SMTP server received."""

import logging
import re
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core import mail as django_mail
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext

from portal.accounts.models import Membership
from portal.accounts.self_service import RESET_MAILS_PER_HOUR
from portal.audit.models import AuditEvent
from portal.outbox.models import OutgoingMail
from tests.conftest import PASSWORD, make_user
from tests.support.clients import english
from tests.support.passwords import NEW_PASSWORD, link_in, received_text, smtp_mailbox
from tests.support.smtp import Recorder, send_queued_mail
from tests.support.system import run_manage

Action = AuditEvent.Action


def log_in(client, username: str, password: str):
    return client.post(reverse("login"), {"username": username, "password": password})


def ask_for_link(client, email: str):
    return client.post(reverse("account:password_reset"), {"email": email})


def set_new_password(client, path: str, password: str = NEW_PASSWORD):
    """Follow the mailed link and set `password`; the answer to the form."""
    opened = client.get(path)
    assert opened.status_code == 302  # the token moves into the session, out of the address
    form_page = opened["Location"]
    assert form_page.endswith("/set-password/")
    assert client.get(form_page).context["validlink"] is True
    return client.post(form_page, {"new_password1": password, "new_password2": password})


def without_csrf_tokens(text: str) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", text)


@pytest.fixture
def mailbox(settings) -> Iterator[Recorder]:
    with smtp_mailbox(settings, "http://testserver") as recorder:
        yield recorder


# --- Changing one's password ------------------------------------------------------------------


def test_a_wrong_current_password_changes_nothing(client_for, staff_a):
    client = english(client_for(staff_a))
    response = client.post(
        reverse("account:password_change"),
        {"old_password": "not it", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 200
    assert response.context["form"].errors["old_password"]
    staff_a.refresh_from_db()
    assert staff_a.check_password(PASSWORD)
    assert not AuditEvent.objects.filter(action=Action.PASSWORD_CHANGED).exists()


@pytest.mark.parametrize(
    "weak",
    ["kort-1", "12345678901234567", "password12345", "staff-a-example"],
    ids=["too short", "only digits", "common", "like the user name"],
)
def test_the_password_validators_refuse_a_weak_new_password(client_for, staff_a, weak):
    client = english(client_for(staff_a))
    response = client.post(
        reverse("account:password_change"),
        {"old_password": PASSWORD, "new_password1": weak, "new_password2": weak},
    )
    assert response.status_code == 200
    assert response.context["form"].errors["new_password2"]
    staff_a.refresh_from_db()
    assert staff_a.check_password(PASSWORD)


def test_a_changed_password_keeps_the_session_and_the_old_one_stops_working(
    client, client_for, staff_a, vendor_a
):
    page = english(client_for(staff_a)).get(reverse("account:password_change"))
    # What the validators ask, as plain sentences under the field.
    assert "at least 12 characters" in page.text
    response = client.post(
        reverse("account:password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == reverse("account:overview")
    assert "Your password is changed." in response.text
    assert client.get(reverse("dashboard")).status_code == 200  # still logged in

    client.post(reverse("logout"))
    assert log_in(client, "staff-a", PASSWORD).status_code == 200  # refused
    assert log_in(client, "staff-a", NEW_PASSWORD).status_code == 302

    event = AuditEvent.objects.get(action=Action.PASSWORD_CHANGED)
    assert event.actor == staff_a
    assert list(event.concerns.all()) == [vendor_a]
    assert NEW_PASSWORD not in str(event.details) and PASSWORD not in str(event.details)


def test_a_password_change_logs_out_the_other_sessions(client, client_for, staff_a):
    from django.test import Client

    elsewhere = Client()
    elsewhere.force_login(staff_a)
    assert elsewhere.get(reverse("dashboard")).status_code == 200
    client_for(staff_a).post(
        reverse("account:password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert elsewhere.get(reverse("dashboard")).status_code == 302


def test_someone_without_a_password_here_has_nothing_to_change(client_for, staff_a):
    """A user of single sign-on: no password in the portal, so no page to change it."""
    staff_a.set_unusable_password()
    staff_a.save()
    client = client_for(staff_a)
    assert client.get(reverse("account:password_change")).status_code == 404
    overview = client.get(reverse("account:overview")).text
    assert reverse("account:password_change") not in overview


# --- My account -------------------------------------------------------------------------------


def test_my_account_names_the_person_their_organisations_and_roles(
    client_for, staff_a, vendor_a, aarhus
):
    Membership.objects.filter(user=staff_a, organisation=vendor_a).update(is_administrator=True)
    Membership.objects.create(user=staff_a, organisation=aarhus)
    client = english(client_for(staff_a))
    page = client.get(reverse("account:overview"))
    assert page.status_code == 200
    rows = re.findall(r"<tr>\s*<td>(.*?)</tr>", page.text, re.S)
    cells = [re.sub(r"<[^>]+>", "|", row) for row in rows]
    assert any(
        "Alfa Software A/S" in c and "Vendor staff" in c and "Administrator" in c for c in cells
    )
    assert any(
        "Aarhus Kommune" in c and "Municipal architect" in c and "Member" in c for c in cells
    )
    assert "staff-a@example.invalid" in page.text
    assert f'href="{reverse("account:password_change")}"' in page.text
    # Every page's header leads to it, next to the person's name.
    assert f'href="{reverse("account:overview")}"' in client.get(reverse("dashboard")).text


def test_my_account_is_for_logged_in_people(client):
    response = client.get(reverse("account:overview"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


# --- A forgotten password ---------------------------------------------------------------------


def test_the_login_page_leads_to_the_reset(client, db):
    assert f'href="{reverse("account:password_reset")}"' in client.get(reverse("login")).text


@pytest.mark.system
def test_a_mailed_link_sets_a_new_password_once(
    client,
    mailbox,
    staff_a,
    vendor_a,
):
    english(client)
    response = ask_for_link(client, "Staff-A@example.invalid")  # the address in any case
    assert response.status_code == 302
    assert response["Location"] == reverse("account:password_reset_done")
    # Queued in the outbox, not sent by Django directly: nothing has left yet.
    [queued] = OutgoingMail.objects.all()
    assert queued.to == ["staff-a@example.invalid"] and queued.organisation is None
    assert django_mail.outbox == [] and mailbox.envelopes == []

    send_queued_mail()
    [envelope] = mailbox.envelopes
    assert envelope.rcpt_tos == ["staff-a@example.invalid"]
    [message] = mailbox.messages()
    assert message["Subject"] == "FDD portal: set a new password"
    assert "Your user name is staff-a." in received_text(message)
    path = link_in(message)

    done = set_new_password(client, path)
    assert done.status_code == 302 and done["Location"] == reverse("login")
    login_page = client.get(done["Location"])
    assert "Your new password is set. Log in with it." in login_page.text
    assert log_in(client, "staff-a", PASSWORD).status_code == 200  # the old one is refused
    assert log_in(client, "staff-a", NEW_PASSWORD).status_code == 302
    client.post(reverse("logout"))

    # The link is spent: a second use is refused, in the reader's language.
    again = client.get(path)
    assert again.status_code == 200 and again.context["validlink"] is False
    assert "This one has been used, or it has expired." in again.text
    assert f'href="{reverse("account:password_reset")}"' in again.text
    staff_a.refresh_from_db()
    assert staff_a.check_password(NEW_PASSWORD)

    asked = AuditEvent.objects.get(action=Action.PASSWORD_RESET_REQUESTED)
    assert asked.actor is None and list(asked.concerns.all()) == [vendor_a]
    reset = AuditEvent.objects.get(action=Action.PASSWORD_RESET)
    assert reset.actor == staff_a and list(reset.concerns.all()) == [vendor_a]
    token = path.rstrip("/").rsplit("/", 1)[-1]
    for event in (asked, reset):
        assert token not in str(event.details) and NEW_PASSWORD not in str(event.details)


@pytest.mark.system
def test_an_expired_link_is_refused(
    client,
    mailbox,
    settings,
    staff_a,
):
    ask_for_link(client, staff_a.email)
    send_queued_mail()
    [message] = mailbox.messages()
    settings.PASSWORD_RESET_TIMEOUT = 1
    time.sleep(2.1)  # the token counts whole seconds
    expired = client.get(link_in(message))
    assert expired.status_code == 200 and expired.context["validlink"] is False
    # In the portal's language, Danish, as the page is read.
    with translation.override("da"):
        refusal = gettext("The link is no longer valid")
    assert refusal in expired.text
    staff_a.refresh_from_db()
    assert staff_a.check_password(PASSWORD)


@pytest.mark.system
def test_a_link_is_spent_when_the_password_changes_otherwise(
    client,
    mailbox,
    staff_a,
):
    ask_for_link(english(client), staff_a.email)
    send_queued_mail()
    [message] = mailbox.messages()
    staff_a.set_password("Et helt andet kodeord 77")
    staff_a.save()
    assert client.get(link_in(message)).context["validlink"] is False


@pytest.mark.system
def test_a_new_password_from_a_link_meets_the_validators(
    client,
    mailbox,
    staff_a,
):
    ask_for_link(english(client), staff_a.email)
    send_queued_mail()
    [message] = mailbox.messages()
    refused = set_new_password(client, link_in(message), "123456789012345")
    assert refused.status_code == 200
    assert refused.context["form"].errors["new_password2"]
    staff_a.refresh_from_db()
    assert staff_a.check_password(PASSWORD)


@pytest.mark.system
def test_an_unknown_address_gets_the_same_answer_and_no_mail(
    client,
    mailbox,
    staff_a,
):
    known = ask_for_link(client, staff_a.email)
    unknown = ask_for_link(client, "nobody@example.invalid")
    assert (known.status_code, known["Location"]) == (unknown.status_code, unknown["Location"])
    after_known = without_csrf_tokens(client.get(known["Location"]).text)
    after_unknown = without_csrf_tokens(client.get(unknown["Location"]).text)
    assert after_known == after_unknown
    send_queued_mail()
    assert [e.rcpt_tos for e in mailbox.envelopes] == [["staff-a@example.invalid"]]
    assert AuditEvent.objects.filter(action=Action.PASSWORD_RESET_REQUESTED).count() == 1


@pytest.mark.system
def test_no_mail_for_an_inactive_user_or_one_without_a_password_here(
    client,
    mailbox,
    vendor_a,
):
    make_user("leaver", vendor_a, is_active=False)
    sso = make_user("single-sign-on", vendor_a)
    sso.set_unusable_password()
    sso.save()
    for address in ("leaver@example.invalid", "single-sign-on@example.invalid"):
        assert ask_for_link(client, address).status_code == 302
    send_queued_mail()
    assert mailbox.envelopes == []
    assert not OutgoingMail.objects.exists()
    assert not AuditEvent.objects.filter(action=Action.PASSWORD_RESET_REQUESTED).exists()


@pytest.mark.system
def test_a_user_deactivated_after_the_mail_sets_nothing(
    client,
    mailbox,
    staff_a,
):
    ask_for_link(client, staff_a.email)
    send_queued_mail()
    [message] = mailbox.messages()
    staff_a.is_active = False
    staff_a.save()
    response = client.get(link_in(message))
    assert response.status_code == 200 and response.context["validlink"] is False


@pytest.mark.system
def test_links_are_mailed_at_most_a_few_times_an_hour(
    client,
    mailbox,
    staff_a,
):
    for _ in range(RESET_MAILS_PER_HOUR + 2):
        response = ask_for_link(client, staff_a.email)
        assert response["Location"] == reverse("account:password_reset_done")
    send_queued_mail()
    assert len(mailbox.envelopes) == RESET_MAILS_PER_HOUR
    # An hour on, the next request is mailed again.
    AuditEvent.objects.filter(action=Action.PASSWORD_RESET_REQUESTED).update(
        at="2000-01-01T00:00:00Z"
    )
    ask_for_link(client, staff_a.email)
    send_queued_mail()
    assert len(mailbox.envelopes) == RESET_MAILS_PER_HOUR + 1


@pytest.mark.system
@pytest.mark.parametrize("language", ["da", "en"])
def test_the_mail_is_in_the_language_the_reset_was_asked_in(
    client,
    mailbox,
    staff_a,
    settings,
    language,
):
    client.cookies["django_language"] = language
    ask_for_link(client, staff_a.email)
    send_queued_mail()
    [message] = mailbox.messages()
    with translation.override(language):
        assert message["Subject"] == gettext("FDD portal: set a new password")
        assert gettext("Set a new password here:") in received_text(message)


def test_the_reset_pages_answer_anyone(client, client_for, staff_a):
    for who in (client, client_for(staff_a)):
        assert who.get(reverse("account:password_reset")).status_code == 200
        assert who.get(reverse("account:password_reset_done")).status_code == 200
        garbage = reverse("account:password_reset_confirm", args=["MQ", "not-a-token"])
        assert who.get(garbage).context["validlink"] is False


@pytest.mark.system
def test_the_timeout_comes_from_the_environment():
    probe = "from django.conf import settings as s; print(s.PASSWORD_RESET_TIMEOUT)"
    result = run_manage("shell", "-v0", "-c", probe, DEBUG="true")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3600"
    result = run_manage("shell", "-v0", "-c", probe, DEBUG="true", PASSWORD_RESET_TIMEOUT="900")
    assert result.stdout.strip() == "900"
    result = run_manage("check", DEBUG="true", PASSWORD_RESET_TIMEOUT="10")
    assert "PASSWORD_RESET_TIMEOUT=10 is below the minimum of 60" in result.stderr


@pytest.mark.system
def test_a_new_password_does_not_lift_a_lock_out(
    client,
    mailbox,
    settings,
    staff_a,
):
    """The link sets the password, not a login: a user name locked out at an address after too
    many failed logins stays locked out there until the cool-off has passed."""
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    for number in range(3):
        log_in(client, "staff-a", f"wrong-{number}")
    assert log_in(client, "staff-a", PASSWORD).status_code == 429
    ask_for_link(client, staff_a.email)
    send_queued_mail()
    [message] = mailbox.messages()
    assert set_new_password(client, link_in(message)).status_code == 302
    assert log_in(client, "staff-a", NEW_PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert log_in(client, "staff-a", NEW_PASSWORD).status_code == 302


@pytest.mark.system
def test_the_reset_is_in_the_log_for_the_organisations_administrators_only(
    client, client_for, mailbox, staff_a, vendor_a, vendor_b, caplog
):
    caplog.set_level(logging.DEBUG)
    ask_for_link(client, staff_a.email)
    send_queued_mail()
    [message] = mailbox.messages()
    path = link_in(message)
    set_new_password(client, path)
    token = path.rstrip("/").rsplit("/", 1)[-1]
    # The portal's log, not the test's SMTP server's (aiosmtpd logs what it receives).
    records = [r for r in caplog.records if not r.name.startswith("mail.log")]
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in records)
    assert token not in logged and NEW_PASSWORD not in logged

    admin = make_user("admin-a", vendor_a)
    Membership.objects.filter(user=admin).update(is_administrator=True)
    english(client_for(admin))
    read = [e.sentence for e in client.get(reverse("audit:log")).context["entries"]]
    assert "A link to set a new password was mailed to staff-a" in read
    assert "Ada set a new password with a link from a mail" in read

    colleague = make_user("colleague-a", vendor_a)
    other_admin = make_user("admin-b", vendor_b)
    Membership.objects.filter(user=other_admin).update(is_administrator=True)
    resets = {Action.PASSWORD_RESET_REQUESTED, Action.PASSWORD_RESET}
    staff_a.refresh_from_db()  # with the new password
    for reader in (colleague, other_admin, staff_a):
        entries = client_for(reader).get(reverse("audit:log")).context["entries"]
        assert not [e for e in entries if e.event.action in resets], reader


def test_a_password_change_reads_as_a_sentence_for_the_administrator(client_for, staff_a, vendor_a):
    client_for(staff_a).post(
        reverse("account:password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    admin = make_user("admin-a", vendor_a)
    Membership.objects.filter(user=admin).update(is_administrator=True)
    client = english(client_for(admin))
    entries = client.get(reverse("audit:log"), {"action": "password_changed"}).context["entries"]
    assert [e.sentence for e in entries] == ["Ada changed their password"]
