"""Invitations (issue 18): an administrator invites a colleague by e-mail, the mail goes through
the outbox to a real SMTP server, and the link in the mail as received opens one login, once."""

import hashlib
import re
from datetime import timedelta
from urllib.parse import urlparse

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext

from portal.accounts.models import Invitation, Membership
from portal.audit.models import AuditEvent
from portal.outbox.models import OutgoingMail
from tests.conftest import PASSWORD, make_administrator, make_user
from tests.support.accessibility import axe_violations, format_violations, serious
from tests.support.browser import chromium, log_in, screenshot
from tests.support.clients import english, logged_in, said
from tests.support.smtp import send_queued_mail

Action = AuditEvent.Action
User = get_user_model()
LINK = re.compile(r"https?://[^\s/]+/invitations/([A-Za-z0-9_-]+)/")
NEW_PASSWORD = "Fjordhest-Kaffekop-1987"


@pytest.fixture
def admin_a(vendor_a):
    return make_administrator("admin-a", vendor_a, first_name="Alma", last_name="Admin")


def received_link(smtp_server, to: str) -> tuple[str, object]:
    """The path of the invitation link in the newest mail the SMTP server received for `to`."""
    send_queued_mail()
    for envelope, message in reversed(
        list(zip(smtp_server.envelopes, smtp_server.messages(), strict=True))
    ):
        if envelope.rcpt_tos == [to]:
            body = message.get_body(("plain",)).get_content()
            found = LINK.search(body)
            assert found, body
            return urlparse(found.group()).path, message
    raise AssertionError(f"no mail reached {to}")


def invite(client: Client, organisation, email: str, administrator: bool = False):
    data = {"email": email}
    if administrator:
        data["is_administrator"] = "on"
    return client.post(reverse("organisations:invite", args=[organisation.pk]), data)


def accept(client: Client, path: str, **overrides):
    data = {
        "first_name": "Nina",
        "last_name": "Nielsen",
        "password1": NEW_PASSWORD,
        "password2": NEW_PASSWORD,
    }
    data.update(overrides)
    return client.post(path, data)


def main_of(response) -> str:
    """The page's main content: what the reader is told, without the per-request CSRF tokens."""
    html = response.content.decode()
    return html[html.index("<main") : html.index("</main>")]


def people_events(action: str):
    return AuditEvent.objects.filter(action=action)


# The way through --------------------------------------------------------------------------------


@pytest.mark.system
def test_a_colleague_follows_the_mailed_link_sets_a_password_and_is_logged_in(
    smtp_server, admin_a, vendor_a
):
    admin = logged_in(admin_a)
    response = invite(admin, vendor_a, "Nina.Nielsen@Alfa.example")
    assert response.status_code == 302
    assert said(response) == ["The invitation is on its way to nina.nielsen@alfa.example."]

    invitation = Invitation.objects.get()
    assert invitation.email == "nina.nielsen@alfa.example"
    assert invitation.invited_by == admin_a and not invitation.is_administrator
    assert abs(invitation.expires_at - (timezone.now() + timedelta(days=7))) < timedelta(minutes=1)

    path, message = received_link(smtp_server, "nina.nielsen@alfa.example")
    token = path.split("/")[-2]
    # Only the token's SHA-256 is kept.
    assert invitation.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert not Invitation.objects.filter(token_sha256=token).exists()
    assert "Alfa Software A/S" in message["Subject"]
    body = message.get_body(("plain",)).get_content()
    assert "»Alma Admin«" in body
    # Written in Danish, the portal's language: the date names the month the Danish way.
    danish_month = ["jan.", "feb.", "marts", "april", "maj", "juni", "juli", "aug.", "sept.",
                    "okt.", "nov.", "dec."]  # fmt: skip
    assert any(f" {month} " in body for month in danish_month), body

    # The colleague opens the link as it arrived.
    colleague = english(Client())
    page = colleague.get(path)
    assert page.status_code == 200
    assert page["Cache-Control"].endswith("no-store")
    text = main_of(page)
    assert "Invitation to Alfa Software A/S" in text
    assert "Alma Admin has invited you to the FDD portal as a member of Alfa Software A/S." in text
    assert "nina.nielsen@alfa.example" in text

    response = accept(colleague, path)
    assert response.status_code == 302 and response["Location"] == reverse("dashboard")
    user = User.objects.get(username="nina.nielsen@alfa.example")
    assert (user.email, user.first_name, user.last_name) == (
        "nina.nielsen@alfa.example",
        "Nina",
        "Nielsen",
    )
    assert user.check_password(NEW_PASSWORD) and user.is_active
    membership = Membership.objects.get(user=user)
    assert membership.organisation == vendor_a and not membership.is_administrator
    invitation.refresh_from_db()
    assert invitation.accepted_by == user and invitation.accepted_at is not None

    overview = colleague.get(reverse("dashboard"))
    assert overview.status_code == 200
    assert overview.wsgi_request.user == user
    assert "Welcome. You are now a member of Alfa Software A/S." in overview.content.decode()
    # And she logs in with the address as her user name.
    assert Client().login(username="nina.nielsen@alfa.example", password=NEW_PASSWORD)

    sent = people_events(Action.INVITATION_SENT).get()
    assert sent.actor == admin_a and list(sent.concerns.all()) == [vendor_a]
    assert sent.details["email"] == "nina.nielsen@alfa.example"
    accepted = people_events(Action.INVITATION_ACCEPTED).get()
    assert accepted.actor == user and list(accepted.concerns.all()) == [vendor_a]
    assert accepted.details["new_login"] == "True"


@pytest.mark.system
def test_an_administrator_invited_as_such_joins_as_administrator(smtp_server, admin_a, vendor_a):
    invite(logged_in(admin_a), vendor_a, "chef@alfa.example", administrator=True)
    path, message = received_link(smtp_server, "chef@alfa.example")
    with translation.override("da"):  # the mail is in the portal's language, whatever it says
        invited = gettext(
            "%(person)s has invited you to the FDD portal as an administrator of %(organisation)s."
        ) % {"person": "»Alma Admin«", "organisation": "Alfa Software A/S"}
    assert invited in message.get_body(("plain",)).get_content()
    accept(Client(), path)
    assert Membership.objects.get(user__username="chef@alfa.example").is_administrator


@pytest.mark.system
def test_the_validity_follows_the_setting(settings, smtp_server, admin_a, vendor_a):
    settings.INVITATION_DAYS = 2
    invite(logged_in(admin_a), vendor_a, "kort@alfa.example")
    expires = Invitation.objects.get().expires_at
    assert abs(expires - (timezone.now() + timedelta(days=2))) < timedelta(minutes=1)


# Links that no longer work ----------------------------------------------------------------------


@pytest.mark.system
def test_an_expired_link_reads_exactly_as_an_unknown_one(smtp_server, admin_a, vendor_a):
    invite(logged_in(admin_a), vendor_a, "sen@alfa.example")
    path, _message = received_link(smtp_server, "sen@alfa.example")
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    expired = english(Client()).get(path)
    unknown = english(Client()).get(reverse("invitations:accept", args=["x" * 43]))
    assert expired.status_code == unknown.status_code == 404
    assert main_of(expired) == main_of(unknown)
    assert "The link is no longer valid" in main_of(expired)
    assert "Alfa" not in main_of(expired)

    response = accept(english(Client()), path)
    assert response.status_code == 404
    assert not User.objects.filter(username="sen@alfa.example").exists()
    assert not Membership.objects.filter(organisation=vendor_a).exclude(user=admin_a).exists()


@pytest.mark.system
def test_a_used_link_opens_nothing_more(smtp_server, admin_a, vendor_a):
    invite(logged_in(admin_a), vendor_a, "nina@alfa.example")
    path, _message = received_link(smtp_server, "nina@alfa.example")
    accept(Client(), path)

    stranger = english(Client())
    page = stranger.get(path)
    assert page.status_code == 410
    assert "The invitation has been used" in main_of(page)
    response = accept(stranger, path, first_name="Mallory")
    assert response.status_code == 410
    assert User.objects.filter(email="nina@alfa.example").get().first_name == "Nina"
    assert not User.objects.filter(first_name="Mallory").exists()


@pytest.mark.system
def test_a_withdrawn_link_says_so(smtp_server, admin_a, vendor_a):
    admin = logged_in(admin_a)
    said(invite(admin, vendor_a, "nej@alfa.example"))
    path, _message = received_link(smtp_server, "nej@alfa.example")
    invitation = Invitation.objects.get()
    response = admin.post(
        reverse("organisations:invitation_withdraw", args=[vendor_a.pk, invitation.pk])
    )
    assert said(response) == [
        "The invitation to nej@alfa.example is withdrawn; its link no longer works."
    ]
    invitation.refresh_from_db()
    assert invitation.cancelled_at is not None

    page = english(Client()).get(path)
    assert page.status_code == 410
    assert "The invitation has been withdrawn" in main_of(page)
    assert accept(Client(), path).status_code == 410
    assert not User.objects.filter(username="nej@alfa.example").exists()

    withdrawn = people_events(Action.INVITATION_WITHDRAWN).get()
    assert withdrawn.actor == admin_a and list(withdrawn.concerns.all()) == [vendor_a]
    # Gone from the list of invitations waiting; withdrawing again is refused with a reason.
    detail = admin.get(reverse("organisations:detail", args=[vendor_a.pk]))
    assert detail.context["invitations"] == []
    again = admin.post(
        reverse("organisations:invitation_withdraw", args=[vendor_a.pk, invitation.pk])
    )
    assert said(again) == ["The invitation to nej@alfa.example has been withdrawn."]


@pytest.mark.system
def test_sending_again_gives_a_new_link_and_a_new_expiry_and_the_old_link_dies(
    smtp_server, admin_a, vendor_a
):
    admin = logged_in(admin_a)
    invite(admin, vendor_a, "igen@alfa.example")
    old_path, _message = received_link(smtp_server, "igen@alfa.example")
    invitation = Invitation.objects.get()
    Invitation.objects.update(expires_at=timezone.now() - timedelta(days=1))
    listed = admin.get(reverse("organisations:detail", args=[vendor_a.pk])).context["invitations"]
    assert listed == [(invitation, True)]  # shown as expired, to be sent again

    response = admin.post(
        reverse("organisations:invitation_resend", args=[vendor_a.pk, invitation.pk])
    )
    assert said(response) == [
        "A new link is on its way to igen@alfa.example; the one sent before no longer works."
    ]
    new_path, _message = received_link(smtp_server, "igen@alfa.example")
    assert new_path != old_path
    invitation.refresh_from_db()
    assert invitation.expires_at > timezone.now() + timedelta(days=6)
    assert Invitation.objects.count() == 1

    assert Client().get(old_path).status_code == 404
    accept(Client(), new_path)
    assert Membership.objects.filter(user__username="igen@alfa.example").exists()
    resent = people_events(Action.INVITATION_SENT).order_by("pk").last()
    assert resent.details["again"] == "True"


# Refused at invite time -------------------------------------------------------------------------


@pytest.mark.system
def test_an_address_already_a_member_is_refused_when_invited(
    smtp_server, admin_a, staff_a, vendor_a
):
    response = invite(logged_in(admin_a), vendor_a, "STAFF-A@example.invalid")
    assert response.status_code == 200
    assert response.context["form"].errors["email"] == [
        "staff-a@example.invalid is already a member of Alfa Software A/S."
    ]
    assert not Invitation.objects.exists()
    assert not OutgoingMail.objects.exists()
    assert not people_events(Action.INVITATION_SENT).exists()


@pytest.mark.system
def test_a_second_invitation_to_a_waiting_address_is_refused(smtp_server, admin_a, vendor_a):
    client = logged_in(admin_a)
    invite(client, vendor_a, "to@alfa.example")
    response = invite(client, vendor_a, "To@Alfa.example")
    assert response.context["form"].errors["email"] == [
        "to@alfa.example is already invited. If the mail was lost or the link has expired, "
        "send the invitation again from the list."
    ]
    assert Invitation.objects.count() == 1


@pytest.mark.parametrize(
    "address", ["not-an-address", "two@@alfa.example", "a@b", "", "ny@alfa.example\nBcc: x@y.z"]
)
def test_a_malformed_address_is_refused_and_nothing_is_made(admin_a, vendor_a, address):
    response = invite(logged_in(admin_a), vendor_a, address)
    assert response.status_code == 200
    assert response.context["form"].errors["email"]
    assert not Invitation.objects.exists()
    assert not OutgoingMail.objects.exists()


# Refused at acceptance --------------------------------------------------------------------------


@pytest.fixture
def link(smtp_server, admin_a, vendor_a) -> str:
    invite(logged_in(admin_a), vendor_a, "nina@alfa.example")
    path, _message = received_link(smtp_server, "nina@alfa.example")
    return path


def nothing_made(vendor_a) -> None:
    assert not User.objects.filter(username="nina@alfa.example").exists()
    assert Membership.objects.filter(organisation=vendor_a).count() == 1  # the administrator
    assert Invitation.objects.get().accepted_at is None
    assert not people_events(Action.INVITATION_ACCEPTED).exists()


@pytest.mark.system
@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("kort1", "This password is too short. It must contain at least 12 characters."),
        ("123456789012345", "This password is entirely numeric."),
        ("password1234", "This password is too common."),
        ("nina@alfa.example", "The password is too similar to the username."),
    ],
)
def test_a_password_the_validators_refuse_is_refused_with_their_reason(
    link, vendor_a, password, message
):
    response = accept(english(Client()), link, password1=password, password2=password)
    assert response.status_code == 200
    assert message in response.context["form"].errors["password2"]
    nothing_made(vendor_a)
    assert "Invitation to Alfa Software A/S" in main_of(response)


@pytest.mark.system
def test_passwords_that_differ_and_a_missing_name_are_refused(link, vendor_a):
    response = accept(english(Client()), link, password2=NEW_PASSWORD + "x", first_name="")
    errors = response.context["form"].errors
    assert errors["password2"] == ["The two password fields didn’t match."]
    assert errors["first_name"] == ["This field is required."]
    nothing_made(vendor_a)


@pytest.mark.system
def test_a_password_refused_in_danish_for_a_danish_reader(link, vendor_a):
    response = accept(Client(), link, password1="kort1", password2="kort1")
    assert "Denne adgangskode er for kort" in response.content.decode()
    nothing_made(vendor_a)


@pytest.mark.system
def test_the_form_sent_twice_makes_one_user_and_one_membership(link, vendor_a):
    browser = Client()
    first = accept(browser, link)
    second = accept(browser, link)  # a double click, or Back and send again
    assert first.status_code == second.status_code == 302
    assert second["Location"] == reverse("dashboard")
    assert User.objects.filter(email="nina@alfa.example").count() == 1
    assert Membership.objects.filter(user__email="nina@alfa.example").count() == 1
    assert people_events(Action.INVITATION_ACCEPTED).count() == 1


@pytest.mark.system
def test_the_form_sent_from_two_windows_makes_one_user(link, vendor_a):
    """Two tabs, neither logged in when it sent: the second finds the link used."""
    one, two = english(Client()), english(Client())
    assert one.get(link).status_code == two.get(link).status_code == 200
    assert accept(one, link).status_code == 302
    late = accept(two, link, first_name="Anden")
    assert late.status_code == 410
    assert "The invitation has been used" in main_of(late)
    assert User.objects.filter(email="nina@alfa.example").get().first_name == "Nina"
    assert Membership.objects.filter(user__email="nina@alfa.example").count() == 1


@pytest.mark.system
def test_a_claim_that_loses_the_race_undoes_nothing_and_makes_nothing(link, vendor_a):
    """The acceptance claims the invitation with one conditional UPDATE; a claim that finds it
    taken (another request won the race between reading and writing) makes no user."""
    from portal.accounts import invitations

    invitation = invitations.find(link.split("/")[-2])
    Invitation.objects.update(accepted_at=timezone.now())
    with pytest.raises(invitations.NotOpen):
        invitations.accept_new(invitation, first_name="N", last_name="", password=NEW_PASSWORD)
    assert not User.objects.filter(username="nina@alfa.example").exists()


# Someone who already has a login ----------------------------------------------------------------


@pytest.mark.system
def test_someone_with_a_login_logs_in_and_the_organisation_is_added_to_it(
    smtp_server, admin_a, staff_b, vendor_a, vendor_b
):
    """A vendor's employee working for two organisations keeps one login."""
    invite(logged_in(admin_a), vendor_a, staff_b.email)
    path, _message = received_link(smtp_server, staff_b.email)

    visitor = english(Client())
    page = visitor.get(path)
    text = main_of(page)
    assert "You already have a login with the address staff-b@example.invalid." in text
    assert page.context["form"] is None
    login_url = page.context["login_url"]
    assert login_url == f"{reverse('login')}?next={path.replace('/', '%2F')}"
    # Nothing is made from this page without the login.
    assert accept(visitor, path).status_code == 200
    assert Membership.objects.filter(user=staff_b).count() == 1

    response = visitor.post(login_url, {"username": "staff-b", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == path
    page = visitor.get(path)
    assert "is added to your login" in main_of(page)
    response = visitor.post(path)
    assert response.status_code == 302
    assert set(Membership.objects.filter(user=staff_b).values_list("organisation", flat=True)) == {
        vendor_a.pk,
        vendor_b.pk,
    }
    assert User.objects.filter(email=staff_b.email).count() == 1
    assert Invitation.objects.get().accepted_by == staff_b
    assert people_events(Action.INVITATION_ACCEPTED).get().details["existing_login"] == "True"


@pytest.mark.system
def test_someone_logged_in_as_another_user_cannot_take_the_invitation(link, staff_b, vendor_a):
    other = logged_in(staff_b)
    page = other.get(link)
    assert "This invitation is for nina@alfa.example, but you are logged in as Bo." in main_of(page)
    other.post(link)
    assert not Membership.objects.filter(user=staff_b, organisation=vendor_a).exists()
    nothing_made(vendor_a)


@pytest.mark.system
def test_a_leaver_invited_back_opens_their_own_login_again(smtp_server, admin_a, vendor_a):
    leaver = make_user("leaver", None, email="leaver@alfa.example", is_active=False)
    invite(logged_in(admin_a), vendor_a, "leaver@alfa.example")
    path, _message = received_link(smtp_server, "leaver@alfa.example")
    page = english(Client()).get(path)
    assert "your user name is <strong" in main_of(page) and "leaver</strong>" in main_of(page)
    accept(Client(), path, first_name="Lene")
    leaver.refresh_from_db()
    assert leaver.is_active and leaver.first_name == "Lene"
    assert leaver.check_password(NEW_PASSWORD)
    assert Membership.objects.get(user=leaver).organisation == vendor_a
    assert User.objects.filter(email="leaver@alfa.example").count() == 1


@pytest.mark.system
def test_a_closed_login_that_still_belongs_somewhere_is_not_opened_by_an_invitation(
    smtp_server, admin_a, vendor_a, vendor_b
):
    """Closed by another organisation's administrator: an invitation does not undo that."""
    closed = make_user("closed", vendor_b, email="closed@beta.example", is_active=False)
    invite(logged_in(admin_a), vendor_a, "closed@beta.example")
    path, _message = received_link(smtp_server, "closed@beta.example")
    visitor = english(Client())
    assert "exists but is closed" in main_of(visitor.get(path))
    accept(visitor, path)
    closed.refresh_from_db()
    assert not closed.is_active
    assert not Membership.objects.filter(user=closed, organisation=vendor_a).exists()


# Who may invite ---------------------------------------------------------------------------------


def test_a_member_who_is_no_administrator_may_not_invite(staff_a, vendor_a):
    client = logged_in(staff_a)
    url = reverse("organisations:invite", args=[vendor_a.pk])
    assert client.get(url).status_code == 403
    assert invite(client, vendor_a, "ny@alfa.example").status_code == 403
    assert not Invitation.objects.exists()


@pytest.mark.system
def test_another_organisations_administrator_finds_no_invitations_here(
    smtp_server, admin_a, vendor_a, vendor_b
):
    admin_b = make_administrator("admin-b", vendor_b)
    invite(logged_in(admin_a), vendor_a, "ny@alfa.example")
    invitation = Invitation.objects.get()
    client = logged_in(admin_b)
    for name in ("invitation_resend", "invitation_withdraw"):
        for pk in (vendor_a.pk, vendor_b.pk):  # through their own organisation too
            url = reverse(f"organisations:{name}", args=[pk, invitation.pk])
            assert client.post(url).status_code == 404
    assert invite(client, vendor_a, "snuck@beta.example").status_code == 404
    invitation.refresh_from_db()
    assert invitation.cancelled_at is None and Invitation.objects.count() == 1


# In the browser ---------------------------------------------------------------------------------


def looked_at(page, name: str) -> None:
    """A screenshot for people to look at, and axe's WCAG 2.1 AA rules on the page."""
    screenshot(page, name)
    found = serious(axe_violations(page))
    assert not found, f"{name}: {format_violations(found)}"


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_in_the_browser_a_colleague_is_invited_joins_is_promoted_and_removed(
    settings, live_server, smtp_server, vendor_a
):
    settings.PORTAL_BASE_URL = live_server.url
    make_administrator("admin-a", vendor_a, first_name="Alma", last_name="Admin")
    organisation_page = f"{live_server.url}{reverse('organisations:detail', args=[vendor_a.pk])}"

    with chromium() as browser:
        admin = log_in(browser, live_server.url, "admin-a")
        admin.goto(organisation_page)
        admin.click(f"a[href='{reverse('organisations:invite', args=[vendor_a.pk])}']")
        admin.fill("#id_email", "nina@alfa.example")
        looked_at(admin, "invitation-form")
        admin.click("main button[type=submit]")
        admin.wait_for_url(organisation_page)
        assert admin.locator("#invitations-heading + div").get_by_text("nina@alfa.example").count()
        looked_at(admin, "invitation-sent")

        path, _message = received_link(smtp_server, "nina@alfa.example")
        colleague = browser.new_page(viewport={"width": 1280, "height": 900})
        colleague.goto(f"{live_server.url}{path}")
        assert "Alfa Software A/S" in colleague.locator("h1").inner_text()
        colleague.fill("#id_first_name", "Nina")
        colleague.fill("#id_last_name", "Nielsen")
        colleague.fill("#id_password1", NEW_PASSWORD)
        colleague.fill("#id_password2", NEW_PASSWORD)
        looked_at(colleague, "invitation-accept")
        colleague.click("main button[type=submit]")
        colleague.wait_for_url(f"{live_server.url}/")
        assert "Nina Nielsen" in colleague.locator(".portal-user").inner_text()
        assert "Alfa Software A/S" in colleague.locator(".portal-user").inner_text()
        looked_at(colleague, "invitation-welcome")
        nina = Membership.objects.get(user__username="nina@alfa.example")
        assert not nina.is_administrator

        admin.goto(organisation_page)
        admin.click(f"#member-{nina.pk} form[action$='/role/'] button")
        admin.wait_for_url(organisation_page)
        nina.refresh_from_db()
        assert nina.is_administrator
        looked_at(admin, "member-made-administrator")

        admin.click(f"#member-{nina.pk} a[href$='/remove/']")
        admin.wait_for_url("**/remove/")
        looked_at(admin, "member-remove-confirm")
        admin.click("main form button[type=submit]")
        admin.wait_for_url(organisation_page)
        assert admin.locator(f"#member-{nina.pk}").count() == 0
        looked_at(admin, "member-removed")

        # She belonged to no other organisation: her login is closed.
        colleague.goto(f"{live_server.url}/")
        assert "/login/" in colleague.url
    assert not User.objects.get(username="nina@alfa.example").is_active
    assert not Membership.objects.filter(user__username="nina@alfa.example").exists()
