"""Single sign-on with SAML 2.0 (issue 18, point 3), against a real identity provider.

The IdP (tests/support/saml_idp.py) runs in its own process on a loopback port, built on pysaml2's
server side with keys of its own. It answers the portal's signed AuthnRequests with signed
assertions, and on request with bad ones. The refusals are driven with Django's test client,
which follows the portal's redirect to the IdP and posts the IdP's answer back as a browser
would; the sign-in that works is walked in Chromium too.
"""

import base64
import os
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext

from portal.accounts.models import Membership, Organisation
from portal.audit.models import AuditEvent
from portal.sso import SESSION_KEY, signed_in_by_sso
from portal.sso.models import SsoIdentity, SsoRequest
from portal.sso.views import COOKIE, REASONS
from tests.support import saml_idp
from tests.support.browser import chromium, screenshot
from tests.support.saml_idp import (
    ENCRYPTED,
    EXPIRED,
    OTHER_KEY,
    ROLES_ATTRIBUTE,
    UNSIGNED,
    WRONG_AUDIENCE,
    WRONG_RECIPIENT,
    identity_provider,
    make_key_pair,
)

pytestmark = pytest.mark.system

User = get_user_model()

ADMIN_ROLE = "fdd-administrator"
# The identity the IdP signs in when a test says nothing else (a browser says nothing else).
NAME_ID = "7c0d1f5e-9a43-4c1e-8d52-3f0b6a2e9b11"
IDENTITY = [
    "--name-id",
    NAME_ID,
    "--cvr",
    "39123452",  # vendor_a (tests/conftest.py)
    "--name",
    "Ida Holm",
    "--email",
    "ida.holm@alfa.example",
    "--roles",
    f"fdd-user,{ADMIN_ROLE}",
]
UNKNOWN_CVR = "10150817"


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    with identity_provider(tmp_path_factory.mktemp("idp"), *IDENTITY) as running:
        yield running


@pytest.fixture(scope="module")
def sp_keys(tmp_path_factory):
    return make_key_pair(tmp_path_factory.mktemp("sp"), "sp", "FDD portal (tests)")


def configure(settings, idp, sp_keys, base_url: str, *, metadata: str | None = None) -> None:
    """Single sign-on on, against the test IdP; the IdP is given the portal's metadata."""
    settings.PORTAL_BASE_URL = base_url
    settings.SSO_IDP_METADATA = metadata or str(idp.metadata_path)
    settings.SSO_SP_ENTITY_ID = f"{base_url}/sso/metadata/"
    settings.SSO_SP_KEY_FILE, settings.SSO_SP_CERT_FILE = sp_keys
    settings.SSO_ATTRIBUTE_ROLES = ROLES_ATTRIBUTE
    response = Client().get(reverse("sso:metadata"))
    assert response.status_code == 200
    idp.sp_metadata_path.write_bytes(response.content)


@pytest.fixture
def sso(db, settings, idp, sp_keys, vendor_a):
    configure(settings, idp, sp_keys, "http://testserver")
    vendor_a.sso_administrator_role = ADMIN_ROLE
    vendor_a.save()
    return idp


def answer_from_idp(client: Client, idp, **hooks):
    """Start a sign-in at the portal and read what the IdP answers (as the browser would)."""
    response = client.get(reverse("sso:login"), {"next": "/transfers/"})
    assert response.status_code == 302
    answer = idp.answer(response["Location"], **hooks)
    assert answer.action == f"http://testserver{reverse('sso:acs')}"
    return answer


def post(client: Client, answer):
    return client.post(reverse("sso:acs"), answer.post_data)


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def last_event(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).order_by("-id").first()


# --- Off unless configured; the portal's metadata ----------------------------------------------


def test_off_unless_configured(client, settings):
    settings.SSO_IDP_METADATA = ""
    page = client.get(reverse("login")).content.decode()
    assert reverse("sso:login") not in page
    for name in ("sso:metadata", "sso:login", "sso:acs"):
        assert client.get(reverse(name)).status_code == 404
        assert client.post(reverse(name), {"SAMLResponse": "x"}).status_code == 404


def test_the_login_page_offers_the_identity_provider(client, sso):
    client.cookies["django_language"] = "en"
    page = client.get(reverse("login"), {"next": "/review/"}).content.decode()
    assert "Log in through your organisation's identity provider" in page
    assert f'href="{reverse("sso:login")}?next=/review/"' in page


def test_the_portal_publishes_its_metadata(client, sso, sp_keys):
    response = client.get(reverse("sso:metadata"))
    assert response["Content-Type"] == "application/samlmetadata+xml"
    document = response.content.decode()
    assert 'entityID="http://testserver/sso/metadata/"' in document
    assert 'AuthnRequestsSigned="true"' in document
    assert 'WantAssertionsSigned="true"' in document
    assert 'Location="http://testserver/sso/acs/"' in document
    assert "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" in document
    assert "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" in document
    certificate = "".join(sp_keys[1].read_text().splitlines()[1:-1])
    assert document.count(certificate) == 2  # for signing and for encryption
    assert "PRIVATE" not in document


def test_an_unreachable_idp_metadata_url_makes_sso_unavailable_not_broken(client, sso, settings):
    settings.SSO_IDP_METADATA = "http://127.0.0.1:9/metadata"  # the discard port: refused
    client.cookies["django_language"] = "en"
    response = client.get(reverse("sso:login"))
    assert response.status_code == 503
    assert "Single sign-on is not available" in response.content.decode()
    assert not SsoRequest.objects.exists()
    # The portal's own metadata needs nothing of the IdP's.
    assert client.get(reverse("sso:metadata")).status_code == 200


def settings_under(**environment: str) -> subprocess.CompletedProcess:
    """portal.settings read in a fresh process under the given environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SSO_")}
    clean.update(DEBUG="true", **environment)
    code = "import portal.settings as s; print(s.SSO_IDP_METADATA, s.SSO_SP_ENTITY_ID)"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=saml_idp.ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_settings_from_the_environment_stop_start_up_when_incomplete(sp_keys, idp):
    key, cert = (str(path) for path in sp_keys)
    metadata = str(idp.metadata_path)
    refused = {
        "SSO_SP_KEY_FILE": settings_under(SSO_IDP_METADATA=metadata, SSO_SP_CERT_FILE=cert),
        "SSO_IDP_METADATA='http://idp.example": settings_under(
            SSO_IDP_METADATA="http://idp.example/metadata",
            SSO_SP_KEY_FILE=key,
            SSO_SP_CERT_FILE=cert,
        ),
        "no such file": settings_under(
            SSO_IDP_METADATA="/nonexistent/idp.xml", SSO_SP_KEY_FILE=key, SSO_SP_CERT_FILE=cert
        ),
    }
    for named, run in refused.items():
        assert run.returncode != 0 and "ImproperlyConfigured" in run.stderr, run.stderr
        assert named in run.stderr.splitlines()[-1]
    run = settings_under(
        SSO_IDP_METADATA=metadata,
        SSO_SP_KEY_FILE=key,
        SSO_SP_CERT_FILE=cert,
        PORTAL_BASE_URL="https://fdd.example.dk",
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [metadata, "https://fdd.example.dk/sso/metadata/"]


# --- Signed in ----------------------------------------------------------------------------------


def test_a_signed_assertion_makes_a_member_of_the_organisation_of_its_cvr(
    client, settings, sso, vendor_a
):
    settings.AXES_ENABLED = True  # as in production: the login signal goes through django-axes
    users_before = User.objects.count()
    response = post(client, answer_from_idp(client, sso, roles="fdd-user"))

    assert response.status_code == 302
    assert response["Location"] == "/transfers/"
    assert logged_in(client)
    assert client.session[SESSION_KEY] is True
    assert COOKIE in response.cookies and response.cookies[COOKIE]["max-age"] == 0
    assert User.objects.count() == users_before + 1
    identity = SsoIdentity.objects.get()
    user = identity.user
    assert (identity.issuer, identity.name_id) == (sso.entity_id, NAME_ID)
    assert str(user.pk) == client.session["_auth_user_id"]
    assert (user.first_name, user.last_name, user.email) == ("Ida", "Holm", "ida.holm@alfa.example")
    assert not user.has_usable_password()
    assert not user.is_staff and not user.is_superuser
    membership = Membership.objects.get(user=user)
    assert membership.organisation == vendor_a
    assert membership.is_administrator is False
    event = last_event(AuditEvent.Action.SSO_LOGIN)
    assert event.actor == user
    assert list(event.concerns.all()) == [vendor_a]
    assert event.details["cvr"] == vendor_a.cvr
    assert event.details["new_account"] == "True"

    overview = client.get("/")
    assert overview.status_code == 200
    assert "Ida Holm" in overview.content.decode()
    assert signed_in_by_sso(overview.wsgi_request)


def test_the_organisations_administrator_role_makes_an_administrator_and_later_sign_ins_update(
    sso, vendor_a
):
    first = Client()
    assert post(first, answer_from_idp(first, sso)).status_code == 302
    user = SsoIdentity.objects.get().user
    assert Membership.objects.get(user=user, organisation=vendor_a).is_administrator is True

    # The IdP now has a new name and address for her, and no longer the administrator role.
    again = Client()
    answer = answer_from_idp(
        again, sso, roles="fdd-user", name="Ida Holm Nielsen", email="ihn@alfa.example"
    )
    assert post(again, answer).status_code == 302
    assert SsoIdentity.objects.count() == 1
    assert again.session["_auth_user_id"] == str(user.pk)
    user.refresh_from_db()
    assert (user.first_name, user.last_name, user.email) == (
        "Ida Holm",
        "Nielsen",
        "ihn@alfa.example",
    )
    assert Membership.objects.get(user=user, organisation=vendor_a).is_administrator is False
    assert last_event(AuditEvent.Action.SSO_LOGIN).details["new_account"] == "False"


def test_an_encrypted_assertion_is_read_with_the_portals_key(sso, vendor_a):
    """As KOMBIT's Context Handler sends them: signed, then encrypted to the portal's
    certificate from its metadata."""
    client = Client()
    answer = answer_from_idp(client, sso, variant=ENCRYPTED)
    assert b"EncryptedAssertion" in base64.b64decode(answer.saml_response)
    assert post(client, answer).status_code == 302
    assert logged_in(client)
    assert Membership.objects.get(organisation=vendor_a).user.email == "ida.holm@alfa.example"


def test_an_organisation_without_an_administrator_role_gets_members_only(sso, vendor_a):
    vendor_a.sso_administrator_role = ""
    vendor_a.save()
    client = Client()
    assert post(client, answer_from_idp(client, sso, roles="")).status_code == 302
    assert Membership.objects.get(organisation=vendor_a).is_administrator is False


def test_superusers_see_who_signs_in_through_which_identity_provider(sso, superuser):
    client = Client()
    post(client, answer_from_idp(client, sso))
    admin = Client()
    admin.force_login(superuser)
    page = admin.get(reverse("admin:sso_ssoidentity_changelist")).content.decode()
    assert NAME_ID in page and sso.entity_id in page
    assert admin.get(reverse("admin:sso_ssoidentity_add")).status_code == 403


def test_another_login_in_the_same_session_is_not_single_sign_on(sso):
    client = Client()
    post(client, answer_from_idp(client, sso))
    request = RequestFactory().get("/")
    request.session = client.session
    assert signed_in_by_sso(request)
    user_logged_in.send(sender=User, request=request, user=SsoIdentity.objects.get().user)
    assert not signed_in_by_sso(request)


# --- Refused ----------------------------------------------------------------------------------


def assert_refused(response, reason: str, *, language: str = "da", **values) -> None:
    page = response.content.decode()
    assert response.status_code == 403, page[:300]
    assert f'<html lang="{language}">' in page
    with translation.override(language):
        title, text = gettext("Sign-in refused"), gettext(REASONS[reason]) % values
    assert title in page
    assert text.replace("'", "&#x27;") in page
    event = last_event(AuditEvent.Action.SSO_REFUSED)
    assert event is not None and event.details["reason"] == reason


@pytest.mark.parametrize(
    ("variant", "reason"),
    [
        (UNSIGNED, "signature"),
        (OTHER_KEY, "signature"),
        (WRONG_AUDIENCE, "audience"),
        (WRONG_RECIPIENT, "audience"),
        (EXPIRED, "expired"),
    ],
)
def test_a_bad_assertion_is_refused_and_makes_no_account(client, sso, variant, reason):
    users_before = User.objects.count()
    response = post(client, answer_from_idp(client, sso, variant=variant))
    assert_refused(response, reason)
    assert not logged_in(client)
    assert User.objects.count() == users_before
    assert not SsoIdentity.objects.exists() and not Membership.objects.exists()


def test_the_refusal_speaks_the_users_language(client, sso):
    client.cookies["django_language"] = "en"
    response = post(client, answer_from_idp(client, sso, variant=UNSIGNED))
    assert_refused(response, "signature", language="en")
    assert "The answer from the identity provider was not signed" in response.content.decode()


def test_a_replayed_assertion_is_refused(client, sso):
    answer = answer_from_idp(client, sso)
    assert post(client, answer).status_code == 302
    client.logout()
    accounts = User.objects.count()

    # The same Response again: the request it answers is used up, with or without its cookie.
    assert_refused(post(client, answer), "replayed")
    client.cookies[COOKIE] = SsoRequest.objects.get().pk
    assert_refused(post(client, answer), "replayed")
    assert not logged_in(client)
    assert User.objects.count() == accounts
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SSO_LOGIN).count() == 1


def test_an_answer_is_taken_only_in_the_browser_that_asked(sso):
    """Someone's own valid answer, pushed into another person's browser (login CSRF)."""
    asker, victim = Client(), Client()
    answer = answer_from_idp(asker, sso)
    assert_refused(post(victim, answer), "replayed")
    assert not logged_in(victim)
    assert not SsoIdentity.objects.exists()


def test_an_unknown_cvr_is_refused_and_makes_no_account(client, sso):
    assert not Organisation.objects.filter(cvr=UNKNOWN_CVR).exists()
    users_before = User.objects.count()
    response = post(client, answer_from_idp(client, sso, cvr=UNKNOWN_CVR))
    assert_refused(response, "unknown_cvr", cvr=UNKNOWN_CVR)
    assert not logged_in(client)
    assert User.objects.count() == users_before
    event = last_event(AuditEvent.Action.SSO_REFUSED)
    assert event.actor is None and not event.concerns.exists()
    assert event.details["cvr"] == UNKNOWN_CVR


def test_a_deactivated_user_is_refused(sso, vendor_a):
    first = Client()
    post(first, answer_from_idp(first, sso))
    user = SsoIdentity.objects.get().user
    user.is_active = False
    user.save()

    client = Client()
    assert_refused(post(client, answer_from_idp(client, sso)), "deactivated")
    assert not logged_in(client)
    event = last_event(AuditEvent.Action.SSO_REFUSED)
    assert event.actor == user
    assert list(event.concerns.all()) == [vendor_a]
    assert User.objects.filter(username__startswith="sso-").count() == 1


def test_a_post_without_a_response_is_refused(client, sso):
    assert_refused(client.post(reverse("sso:acs"), {}), "invalid")
    client.get(reverse("sso:login"))
    assert_refused(client.post(reverse("sso:acs"), {"SAMLResponse": "bm90IFNBTUw="}), "invalid")


def test_an_answer_nobody_asked_for_is_refused_before_its_signature_is_checked(
    client, sso, monkeypatch
):
    """A POST from a browser that started no sign-in (or whose request is used up or too old)
    is refused at once: checking a signature costs far more than saying no."""
    from portal.sso import protocol

    read = []
    read_response = protocol.read_response
    monkeypatch.setattr(
        protocol, "read_response", lambda *args: read.append(args) or read_response(*args)
    )
    answer = answer_from_idp(Client(), sso)

    assert_refused(post(client, answer), "replayed")
    client.cookies[COOKIE] = "not-a-request"
    assert_refused(post(client, answer), "replayed")
    assert read == []
    # A browser that asked has its answer read.
    asker = Client()
    assert post(asker, answer_from_idp(asker, sso)).status_code == 302
    assert len(read) == 1


# --- In the browser -----------------------------------------------------------------------------


def with_unknown_cvr(route) -> None:
    """The portal's redirect to the IdP with the test hook added: the IdP then says that the
    person belongs to an organisation the portal does not know."""
    response = route.fetch(max_redirects=0)
    headers = {**response.headers, "location": f"{response.headers['location']}&cvr={UNKNOWN_CVR}"}
    route.fulfill(response=response, headers=headers)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_signing_in_through_the_identity_provider_in_chromium(
    live_server, settings, idp, sp_keys, vendor_a
):
    """The portal on `localhost`, the IdP on 127.0.0.1: another site, as in production, so the
    IdP's POST back carries only the request cookie that is meant to cross sites."""
    # The IdP's metadata read from its URL, as from an organisation's IdP.
    configure(settings, idp, sp_keys, live_server.url, metadata=idp.metadata_url)
    vendor_a.sso_administrator_role = ADMIN_ROLE
    vendor_a.save()
    sso_button = f'a[href^="{reverse("sso:login")}"]'

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{live_server.url}/login/")
        screenshot(page, "sso-login-page")
        page.click(sso_button)
        page.wait_for_url(f"{live_server.url}/", timeout=30_000)
        page.get_by_text("Ida Holm").first.wait_for()
        assert vendor_a.name in page.content()
        screenshot(page, "sso-signed-in")

        # Someone of an organisation the portal does not know, in a browser of their own.
        stranger = browser.new_page(viewport={"width": 1280, "height": 900})
        stranger.route(f"{live_server.url}{reverse('sso:login')}**", with_unknown_cvr)
        stranger.goto(f"{live_server.url}/login/")
        stranger.click(sso_button)
        stranger.wait_for_url(f"{live_server.url}{reverse('sso:acs')}", timeout=30_000)
        stranger.locator("#sso-reason").wait_for()
        assert UNKNOWN_CVR in stranger.locator("#sso-reason").inner_text()
        screenshot(stranger, "sso-refused-unknown-cvr")

    user = SsoIdentity.objects.get(issuer=idp.entity_id, name_id=NAME_ID).user
    membership = Membership.objects.get(user=user)
    assert membership.organisation == vendor_a
    assert membership.is_administrator is True
    assert not user.has_usable_password()
    assert SsoIdentity.objects.count() == 1
