"""Two-step login (TOTP), before any page: required of KOMBIT operators and superusers, chosen by
anyone else or required by their organisation, with one-time backup codes; not asked of who
signed in through their organisation's identity provider.

The codes are computed from the secret the setup page shows, as the person's phone would.
"""

import io
import re
import time
from urllib.parse import urlencode

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal.accounts import two_factor
from portal.sso import SESSION_KEY as SSO_SESSION_KEY
from tests.conftest import PASSWORD
from tests.support.totp import confirmed_device, secret_of, totp_code, verified_client
from tests.support.urlwalk import all_patterns

SETUP = reverse("two_factor_setup")
VERIFY = reverse("two_factor_verify")
STEP = 30


@pytest.fixture(autouse=True)
def two_factor_on(settings, client):
    settings.TWO_FACTOR_REQUIRED = True
    # One wrong code would otherwise hold the next one back for a second.
    settings.OTP_TOTP_THROTTLE_FACTOR = settings.OTP_STATIC_THROTTLE_FACTOR = 0
    # The messages are checked in English: the Danish catalogue is translated separately.
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"


def log_in(client: Client, username: str) -> None:
    response = client.post(reverse("login"), {"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.content.decode()[:500]


def shown_codes(page: str) -> list[str]:
    return re.findall(r"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>", page)


def shown_secret(page: str) -> str:
    found = re.search(r'<code class="totp-secret">([A-Z2-7 ]+)</code>', page)
    assert found, "the setup page shows no key"
    return found.group(1).replace(" ", "")


def test_an_operator_sets_up_an_app_at_first_login_then_enters_a_code_each_time(client, operator):
    log_in(client, "operator")
    response = client.get(reverse("dashboard"))
    assert response.status_code == 302
    assert response["Location"] == f"{SETUP}?{urlencode({'next': '/'})}"

    page = client.get(response["Location"])
    assert page.status_code == 200
    assert "no-store" in page["Cache-Control"]
    html = page.content.decode()
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in html and 'class="totp-qr"' in html
    secret = shown_secret(html)
    device = TOTPDevice.objects.get(user=operator)
    assert not device.confirmed and secret == secret_of(device)

    # A reload shows the same key: the one scanned a moment ago still counts.
    assert shown_secret(client.get(SETUP).content.decode()) == secret

    wrong = f"{(int(totp_code(secret)) + 1) % 1_000_000:06d}"
    refused = client.post(SETUP, {"token": wrong, "next": "/"})
    assert refused.status_code == 200
    assert "The code is not right" in refused.content.decode()
    assert client.get(reverse("dashboard")).status_code == 302

    now = time.time()
    done = client.post(SETUP, {"token": totp_code(secret, at=now), "next": "/"})
    # Set up: the backup codes, once, then on to where the operator was going.
    assert done.status_code == 200 and 'href="/"' in done.content.decode()
    assert len(shown_codes(done.content.decode())) == 10
    assert client.get(reverse("dashboard")).status_code == 200
    device.refresh_from_db()
    assert device.confirmed

    # The next login asks for the code, and the setup page no longer offers a new key.
    client.post(reverse("logout"))
    log_in(client, "operator")
    response = client.get(reverse("itsystems:list"))
    assert response["Location"] == f"{VERIFY}?{urlencode({'next': reverse('itsystems:list')})}"
    assert client.get(SETUP)["Location"].startswith(VERIFY)
    verify_page = client.get(VERIFY).content.decode()
    assert secret not in verify_page
    # The code already used is refused (no replay); the app's next code is taken.
    replay = client.post(VERIFY, {"token": totp_code(secret, at=now)})
    assert replay.status_code == 200
    response = client.post(
        VERIFY, {"token": totp_code(secret, at=now + STEP), "next": reverse("itsystems:list")}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("itsystems:list")
    assert secret not in client.get(reverse("itsystems:list")).content.decode()
    assert TOTPDevice.objects.filter(user=operator).count() == 1


def test_the_session_key_changes_when_the_code_is_accepted(client, operator):
    device = confirmed_device(operator)
    log_in(client, "operator")
    before = client.cookies["sessionid"].value
    client.post(VERIFY, {"token": totp_code(secret_of(device))})
    assert client.cookies["sessionid"].value != before
    assert client.get(reverse("dashboard")).status_code == 200


def test_a_superuser_needs_the_code_for_the_admin_too(client, superuser):
    device = confirmed_device(superuser)
    # Through the admin's own login form: the password is right, the admin still waits.
    response = client.post(
        reverse("admin:login"), {"username": "root", "password": PASSWORD, "next": "/admin/"}
    )
    assert response.status_code == 302
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert response["Location"].startswith(VERIFY)
    client.post(VERIFY, {"token": totp_code(secret_of(device))})
    assert client.get(reverse("admin:index")).status_code == 200


@pytest.mark.parametrize("who", ["staff_a", "architect"])
def test_other_users_log_in_with_their_password_alone(client, db, request, who):
    user = request.getfixturevalue(who)
    log_in(client, user.username)
    # They are never sent to set up an app or to enter a code; they may choose to.
    for name in ("dashboard", "transfers:list", "two_factor_manage"):
        assert client.get(reverse(name)).status_code == 200
    assert not TOTPDevice.objects.exists()


def test_a_password_alone_cannot_enrol_a_second_app(client, operator):
    device = confirmed_device(operator)
    log_in(client, "operator")
    assert client.get(SETUP)["Location"].startswith(VERIFY)
    client.post(SETUP, {"token": totp_code(secret_of(device))})
    assert list(TOTPDevice.objects.filter(user=operator)) == [device]


def test_wrong_codes_in_a_row_hold_even_the_right_one_back(client, operator, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 60
    device = confirmed_device(operator)
    log_in(client, "operator")
    client.post(VERIFY, {"token": "000000" if totp_code(secret_of(device)) != "000000" else "1"})
    held = client.post(VERIFY, {"token": totp_code(secret_of(device))})
    assert held.status_code == 200
    assert "Too many wrong codes in a row" in held.content.decode()
    assert client.get(reverse("dashboard")).status_code == 302


@pytest.mark.parametrize("token", ["", "12345", "1234567", "abcdef"])
def test_malformed_codes_are_refused(client, operator, token):
    confirmed_device(operator)
    log_in(client, "operator")
    response = client.post(VERIFY, {"token": token})
    assert response.status_code == 200
    assert client.get(reverse("dashboard")).status_code == 302


def test_next_never_leads_off_the_site(client, operator):
    device = confirmed_device(operator)
    log_in(client, "operator")
    response = client.post(
        VERIFY, {"token": totp_code(secret_of(device)), "next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("dashboard")


def test_an_htmx_poll_without_the_code_is_sent_to_the_code_page(client, operator):
    confirmed_device(operator)
    log_in(client, "operator")
    response = client.get(
        reverse("transfers:rows"),
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/transfers/"},
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"{VERIFY}?{urlencode({'next': '/transfers/'})}"


def test_the_admin_never_shows_a_devices_secret(operator, superuser):
    device = confirmed_device(operator)
    secret_hex, secret = device.key, secret_of(device)
    client = verified_client(superuser)
    for url in (
        reverse("admin:otp_totp_totpdevice_changelist"),
        reverse("admin:otp_totp_totpdevice_change", args=[device.pk]),
    ):
        page = client.get(url)
        assert page.status_code == 200
        assert secret_hex not in page.content.decode() and secret not in page.content.decode()
    for name in ("admin:otp_totp_totpdevice_config", "admin:otp_totp_totpdevice_qrcode"):
        assert client.get(reverse(name, args=[device.pk])).status_code == 403
    assert client.get(reverse("admin:otp_totp_totpdevice_add")).status_code == 403
    # A superuser may delete the device of someone who lost their phone.
    delete = reverse("admin:otp_totp_totpdevice_delete", args=[device.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 302
    assert not TOTPDevice.objects.filter(user=operator).exists()


def test_reset_two_factor_lets_the_user_set_up_a_new_app(operator):
    confirmed_device(operator)
    out = io.StringIO()
    call_command("reset_two_factor", "operator", stdout=out)
    assert "1 device(s) deleted" in out.getvalue()
    assert not TOTPDevice.objects.filter(user=operator).exists()


def test_who_needs_the_code(staff_a, architect, operator, superuser):
    needs = {u.username: two_factor.requires_two_factor(u) for u in (staff_a, architect)}
    assert needs == {"staff-a": False, "architect-aarhus": False}
    assert two_factor.requires_two_factor(operator) and two_factor.requires_two_factor(superuser)


# Before any page: every URL pattern, walked from the resolver.

PATTERNS = all_patterns()
# The two steps themselves, logging in or out, the language and the load balancer's health checks.
REACHABLE_BEFORE_THE_CODE = {
    "two_factor_setup",
    "two_factor_verify",
    "login",
    "logout",
    "set_language",
    "healthz",
    "livez",
    "readyz",
}


@pytest.mark.parametrize("pattern", PATTERNS, ids=[p.key for p in PATTERNS])
def test_no_page_opens_before_the_code(client, operator, pattern):
    if pattern.key in REACHABLE_BEFORE_THE_CODE:
        return
    confirmed_device(operator)
    client.force_login(operator)
    for method in (client.get, client.post):
        response = method(pattern.path())
        assert response.status_code == 302, f"{pattern.key}: {response.status_code}"
        assert response["Location"].startswith(VERIFY), f"{pattern.key}: {response['Location']}"


# -- anyone may choose it; an organisation may require it; backup codes; single sign-on ---------


def set_up_app(client: Client, next_url: str = "/") -> tuple[str, list[str]]:
    """Through the setup page as a person does; the app's secret and the backup codes shown."""
    secret = shown_secret(client.get(SETUP).content.decode())
    done = client.post(SETUP, {"token": totp_code(secret), "next": next_url})
    assert done.status_code == 200, done.content.decode()[:500]
    return secret, shown_codes(done.content.decode())


def test_a_vendor_chooses_two_step_login_and_it_is_asked_at_every_login_after(client, staff_a):
    log_in(client, "staff-a")
    manage = reverse("two_factor_manage")
    assert 'id="two-factor-set-up"' in client.get(manage).content.decode()
    secret, codes = set_up_app(client, manage)
    assert len(set(codes)) == 10
    assert "10 backup codes left" in client.get(manage).content.decode()

    client.post(reverse("logout"))
    log_in(client, "staff-a")
    assert client.get(reverse("dashboard"))["Location"].startswith(VERIFY)
    # The next step's code: the one used at setup is spent.
    code = totp_code(secret, at=time.time() + STEP)
    assert client.post(VERIFY, {"token": code, "next": "/"})["Location"] == "/"
    assert client.get(reverse("dashboard")).status_code == 200


def test_a_backup_code_opens_one_login_only(client, staff_a):
    log_in(client, "staff-a")
    _secret, codes = set_up_app(client)
    for attempt in range(2):
        client.post(reverse("logout"))
        log_in(client, "staff-a")
        typed = codes[0].upper().replace("-", " ")  # as read off paper
        response = client.post(VERIFY, {"token": typed, "next": "/"})
        if attempt == 0:
            assert response["Location"] == "/"
        else:
            assert "That backup code is not right, or it has been used." in (
                response.content.decode()
            )
            assert client.get(reverse("dashboard")).status_code == 302
    assert client.post(VERIFY, {"token": codes[1], "next": "/"})["Location"] == "/"


def test_new_backup_codes_need_a_login_confirmed_with_a_code(client, staff_a):
    log_in(client, "staff-a")
    _secret, old = set_up_app(client)
    made = client.post(reverse("two_factor_backup_codes"))
    new = shown_codes(made.content.decode())
    assert len(new) == 10 and not set(new) & set(old)
    client.post(reverse("logout"))
    log_in(client, "staff-a")
    client.post(VERIFY, {"token": new[0], "next": "/"})
    # The old codes were replaced.
    client.post(reverse("logout"))
    log_in(client, "staff-a")
    assert "has been used" in client.post(VERIFY, {"token": old[1]}).content.decode()


def test_an_organisation_that_requires_it_asks_its_members_from_their_next_login(
    client, staff_a, vendor_a
):
    log_in(client, "staff-a")
    vendor_a.requires_two_factor = True
    vendor_a.save(update_fields=["requires_two_factor"])
    assert client.get(reverse("dashboard")).status_code == 200  # this login was decided
    client.post(reverse("logout"))
    log_in(client, "staff-a")
    assert client.get(reverse("dashboard"))["Location"].startswith(SETUP)
    set_up_app(client)
    # Required, so it cannot be turned off.
    client.post(reverse("two_factor_remove"))
    assert TOTPDevice.objects.filter(user=staff_a, confirmed=True).exists()


def test_who_chose_it_may_turn_it_off(client, staff_a):
    log_in(client, "staff-a")
    set_up_app(client)
    client.post(reverse("two_factor_remove"))
    assert not TOTPDevice.objects.filter(user=staff_a).exists()
    client.post(reverse("logout"))
    log_in(client, "staff-a")
    assert client.get(reverse("dashboard")).status_code == 200


def test_a_login_through_the_identity_provider_is_not_asked_for_a_code(client, staff_a):
    confirmed_device(staff_a)
    log_in(client, "staff-a")
    assert client.get(reverse("dashboard")).status_code == 302
    session = client.session
    session[SSO_SESSION_KEY] = True  # what the single sign-on view marks
    session.save()
    assert client.get(reverse("dashboard")).status_code == 200
