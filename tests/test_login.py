import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.conftest import PASSWORD, make_user

# Pages anyone may open without logging in.
# A forgotten password is asked for, and set with the mailed link, without a login.
PUBLIC = {
    "login",
    "healthz",
    "livez",
    "readyz",
    # The icon, which a browser asks for before anyone logs in.
    "favicon",
    "set_language",
    "logout",
    "account:password_reset",
    "account:password_reset_done",
    "account:password_reset_confirm",
    # An invitation's link is opened before its holder has a login.
    "invitations:accept",
    # Single sign-on starts and ends before there is a session (404 while it is off).
    "sso:metadata",
    "sso:login",
    "sso:acs",
}
# The API's root answers 404; its calls want a token, not a session.
API_PUBLIC = {"api-v1:api-root"}


def _named_patterns(resolver: URLResolver, namespace: str = ""):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                continue
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _named_patterns(pattern, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield namespace + pattern.name, pattern


def _sample_url(name: str, pattern: URLPattern) -> str:
    args = [1] * len(re.findall(r"<", str(pattern.pattern)))
    return reverse(name, args=args)


ALL_PAGES = sorted(_named_patterns(get_resolver()), key=lambda item: item[0])


@pytest.mark.parametrize(("name", "pattern"), ALL_PAGES, ids=[name for name, _ in ALL_PAGES])
def test_every_page_but_the_public_ones_requires_login(client, db, name, pattern):
    if name in PUBLIC | API_PUBLIC:
        return
    url = _sample_url(name, pattern)
    response = client.get(url)
    if name.startswith("api-v1:") and name != "api-v1:openapi-view":
        # 401 without a token; 405 where the call is a POST. The docs page is for people.
        assert response.status_code in (401, 405)
        return
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_login_leads_to_the_dashboard_and_logout_ends_the_session(client, staff_a):
    response = client.post(reverse("login"), {"username": "staff-a", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")
    assert client.get(reverse("dashboard")).status_code == 200

    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert client.get(reverse("dashboard")).status_code == 302


def test_a_wrong_password_is_refused_with_a_danish_message(client, staff_a):
    response = client.post(reverse("login"), {"username": "staff-a", "password": "wrong"})
    assert response.status_code == 200
    assert "Brugernavn og adgangskode passer ikke sammen" in response.content.decode()


def test_logout_needs_a_post_with_a_csrf_token(staff_a):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_a)
    assert client.post(reverse("logout")).status_code == 403
    assert client.get(reverse("dashboard")).status_code == 200


def test_a_user_without_an_organisation_is_told_so(client_for, db):
    from tests.conftest import make_user

    page = client_for(make_user("loner")).get(reverse("dashboard")).content.decode()
    assert "ikke knyttet til en organisation" in page


def test_a_session_ends_after_the_idle_time_and_work_moves_the_end(client, staff_a, settings):
    from datetime import timedelta

    from django.contrib.sessions.models import Session
    from django.utils import timezone

    assert settings.SESSION_COOKIE_AGE == settings.SESSION_IDLE_MINUTES * 60 == 3600
    client.post(reverse("login"), {"username": "staff-a", "password": PASSWORD})
    session = Session.objects.get()
    assert abs(session.expire_date - (timezone.now() + timedelta(hours=1))) < timedelta(minutes=1)

    # Working on: a request more than a minute after the last one moves the end forward.
    stored = client.session
    stored["_last_seen"] -= 120
    stored.save()
    Session.objects.update(expire_date=timezone.now() + timedelta(minutes=5))
    assert client.get(reverse("dashboard")).status_code == 200
    moved = Session.objects.get().expire_date
    assert moved > timezone.now() + timedelta(minutes=55)

    # Idle past the end: logged out.
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    response = client.get(reverse("dashboard"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_an_address_as_user_name_is_matched_in_any_case_and_locked_out_as_one(
    client, settings, vendor_a
):
    """Invitations make the lower-cased address the user name; people type it as their mail
    program shows it. Changing its case neither fails the login nor escapes the lock-out."""
    make_user("anna@alfa.example", vendor_a)
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    ok = client.post(reverse("login"), {"username": " Anna@Alfa.Example", "password": PASSWORD})
    assert ok.status_code == 302
    client.post(reverse("logout"))
    for variant in ("ANNA@alfa.example", "anna@ALFA.example", "Anna@alfa.EXAMPLE"):
        client.post(reverse("login"), {"username": variant, "password": "wrong"})
    locked = client.post(reverse("login"), {"username": "anna@alfa.example", "password": PASSWORD})
    assert locked.status_code == 429
