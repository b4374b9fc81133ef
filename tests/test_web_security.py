"""Web security (issue 8, point 6): CSRF, cookies, headers and CSP, login throttling, password
hashing, and secrets that never reach logs, pages, exports or error reports."""

import base64
import logging
import re
import secrets
from datetime import timedelta
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.signals import got_request_exception
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.views.debug import ExceptionReporter

from portal.accounts.lockout import client_ip
from tests.conftest import PASSWORD
from tests.support.engine import account as sftp_account
from tests.support.system import run_manage
from tests.support.totp import secret_of, totp_code, verified_client
from tests.support.urlwalk import all_patterns
from transfers import keys

ROOT = Path(__file__).resolve().parent.parent
CSRF_REFUSED = "X-Test-CSRF-Refused"
HANDLER = str(Path("django", "core", "handlers", "exception.py"))


def csrf_refused(request: HttpRequest, reason: str = "") -> HttpResponse:
    """Stands in for Django's CSRF failure page, so a 403 is known to be the CSRF check's."""
    response = HttpResponseForbidden("CSRF")
    response[CSRF_REFUSED] = reason or "yes"
    return response


@pytest.fixture
def english(client, settings):
    # Messages are checked in English: the Danish catalogue is translated separately.
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


# CSRF: every state change needs the token ---------------------------------------------------

PATTERNS = all_patterns()
# Endpoints that authenticate by a header token and ignore the session cookie need no CSRF
# token: a forged cross-site request carries the cookie, never the header. Key (or namespace
# prefix) → why. A cookie-only POST to them must still be refused: 401, 405 for a GET-only
# one, or the CSRF check where it applies anyway.
HEADER_AUTHENTICATED: dict[str, str] = {
    "api-v1:": "the REST API: a Bearer token per IT system (handoff/api/auth.py), no session",
}


# Posted from another site by design, with no token: the proof is in the body. Such a POST must
# still be refused when the proof is missing (403), or the endpoint is off (404).
SIGNED_BY_THEMSELVES: dict[str, str] = {
    "sso:acs": "the identity provider's signed answer to a one-time request tied to this browser",
}


def _header_authenticated(key: str) -> bool:
    return any(key == k or (k.endswith(":") and key.startswith(k)) for k in HEADER_AUTHENTICATED)


@pytest.mark.parametrize("pattern", PATTERNS, ids=[p.key for p in PATTERNS])
def test_every_post_without_a_csrf_token_is_refused(settings, pattern, staff_a, superuser):
    settings.CSRF_FAILURE_VIEW = "tests.test_web_security.csrf_refused"
    settings.TWO_FACTOR_REQUIRED = True
    vendor = Client(enforce_csrf_checks=True)
    vendor.force_login(staff_a)
    clients = {
        "anonymous": Client(enforce_csrf_checks=True),
        "vendor staff": vendor,
        "superuser": verified_client(superuser, enforce_csrf_checks=True),
    }
    path = pattern.path()
    for who, client in clients.items():
        response = client.post(path, {"anything": "1"})
        if _header_authenticated(pattern.key):
            refused = response.status_code in (401, 405) or CSRF_REFUSED in response
            assert refused, (
                f"POST {path} ({pattern.key}) with a session cookie and no token answered "
                f"{response.status_code}: it is listed as authenticated by a header alone"
            )
            continue
        if pattern.key in SIGNED_BY_THEMSELVES:
            assert response.status_code in (403, 404), (pattern.key, response.status_code)
            continue
        assert response.status_code == 403 and CSRF_REFUSED in response, (
            f"POST {path} ({pattern.key}) as {who} without a CSRF token answered "
            f"{response.status_code}. Every POST must need the token; an endpoint that "
            "authenticates by a header token alone belongs in HEADER_AUTHENTICATED."
        )


def test_the_same_post_with_the_token_passes_the_check(settings, staff_a):
    settings.CSRF_FAILURE_VIEW = "tests.test_web_security.csrf_refused"
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_a)
    client.get(reverse("dashboard"))  # its logout form sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    response = client.post(reverse("logout"), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302 and CSRF_REFUSED not in response


# Cookies --------------------------------------------------------------------------------------

_COOKIE_PROBE = """
from unittest import mock
from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpResponse
from django.middleware.csrf import CsrfViewMiddleware, get_token
from django.test import RequestFactory

def view(request):
    request.session["seen"] = True
    get_token(request)
    return HttpResponse()

request = RequestFactory().get("/", secure=True)
chain = SessionMiddleware(CsrfViewMiddleware(view))
with mock.patch("django.contrib.sessions.backends.db.SessionStore.save"):
    response = chain(request)
for name in (settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME):
    cookie = response.cookies[name]
    print(name, bool(cookie["secure"]), bool(cookie["httponly"]), cookie["samesite"])
print("hsts", settings.SECURE_HSTS_SECONDS, settings.SECURE_SSL_REDIRECT)
"""


def _cookies(**environment: str) -> dict[str, tuple[str, ...]]:
    result = run_manage("shell", "-v0", "-c", _COOKIE_PROBE, **environment)
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines() if line.strip()]
    return {line[0]: tuple(line[1:]) for line in lines}


@pytest.mark.system
def test_production_cookies_are_secure_and_http_only():
    found = _cookies(
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        SFTP_KEY_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="x.dk",
    )
    assert found["sessionid"] == ("True", "True", "Lax")
    assert found["csrftoken"] == ("True", "True", "Lax")
    assert found["hsts"] == ("31536000", "True")


@pytest.mark.system
def test_development_cookies_work_over_plain_http():
    found = _cookies(DEBUG="true")
    assert found["sessionid"][0] == "False" and found["csrftoken"][0] == "False"


def test_the_login_sets_secure_cookies_in_the_suites_production_settings(client, staff_a):
    client.get(reverse("login"))
    assert client.cookies["csrftoken"]["secure"] and client.cookies["csrftoken"]["httponly"]
    client.post(reverse("login"), {"username": "staff-a", "password": PASSWORD})
    session = client.cookies["sessionid"]
    assert session["secure"] and session["httponly"] and session["samesite"] == "Lax"


# Headers and the Content-Security-Policy ------------------------------------------------------


def _directives(header: str) -> dict[str, list[str]]:
    parts = (part.strip().split() for part in header.split(";") if part.strip())
    return {part[0]: part[1:] for part in parts}


@pytest.mark.parametrize("path", ["/login/", "/", "/healthz", "/static/portal/portal.css"])
def test_security_headers_on_every_response(client_for, staff_a, path):
    response = client_for(staff_a).get(path, secure=True)
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "camera=()" in response["Permissions-Policy"]
    if path.startswith("/static/"):
        return  # WhiteNoise serves files before the policy middleware; they run no script
    policy = _directives(response["Content-Security-Policy"])
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert "unsafe-eval" not in response["Content-Security-Policy"]
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]


_INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "an inline <script>"),
    (re.compile(r"<style\b", re.I), "a <style> element"),
    (re.compile(r"\sstyle\s*=", re.I), "a style attribute"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "an inline event handler"),
    (re.compile(r"javascript:", re.I), "a javascript: URL"),
]
# Rendered by WeasyPrint into PDFs, never served to a browser.
_PDF_TEMPLATES = {"declaration_pdf.html", "version_pdf.html"}


def test_no_template_holds_inline_script_or_style():
    found = []
    for template in sorted((ROOT / "templates").rglob("*.html")):
        if template.name in _PDF_TEMPLATES:
            continue
        text = template.read_text(encoding="utf-8")
        for pattern, what in _INLINE:
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{template.relative_to(ROOT)}:{line}: {what}")
    assert not found, "the Content-Security-Policy would block:\n" + "\n".join(found)


def test_htmx_is_told_not_to_inject_its_indicator_style(client):
    page = client.get(reverse("login")).content.decode()
    assert '<meta name="htmx-config"' in page
    assert '"includeIndicatorStyles": false' in page


# Login throttling (django-axes) ----------------------------------------------------------------


@pytest.fixture
def throttled(settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    return settings


def _attempt(client: Client, password: str, username: str = "staff-a", address="10.0.0.1"):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address
    )


def test_failed_logins_lock_the_user_name_at_that_address_out_for_a_while(
    throttled, english, staff_a, staff_b
):
    client = english
    assert _attempt(client, "wrong-1").status_code == 200
    assert _attempt(client, "wrong-2").status_code == 200
    locked = _attempt(client, "wrong-3")
    assert locked.status_code == 429
    assert "Too many failed logins with this user name" in locked.content.decode()
    assert "15 minutes" in locked.content.decode()
    # Now even the right password is refused, and the session stays anonymous.
    refused = _attempt(client, PASSWORD)
    assert refused.status_code == 429
    assert client.get(reverse("dashboard")).status_code == 302

    # Another user at the same address, and the same user elsewhere, are not held back.
    assert _attempt(Client(), PASSWORD, username="staff-b").status_code == 302
    assert _attempt(Client(), PASSWORD, address="10.0.0.2").status_code == 302

    # After the cool-off the right password works again.
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert _attempt(client, PASSWORD).status_code == 302


def test_a_successful_login_resets_the_count(throttled, client, staff_a):
    _attempt(client, "wrong-1")
    _attempt(client, "wrong-2")
    assert _attempt(client, PASSWORD).status_code == 302
    client.post(reverse("logout"))
    assert _attempt(client, "wrong-3").status_code == 200


@pytest.mark.system
def test_the_limits_come_from_the_environment():
    result = run_manage(
        "shell",
        "-v0",
        "-c",
        "from django.conf import settings as s; print(s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME)",
        DEBUG="true",
        LOGIN_FAILURE_LIMIT="7",
        LOGIN_COOLOFF_MINUTES="30",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "7 0:30:00"
    result = run_manage("check", DEBUG="true", LOGIN_FAILURE_LIMIT="0")
    assert "LOGIN_FAILURE_LIMIT=0 is below the minimum of 1" in result.stderr


def test_behind_the_proxy_the_address_it_saw_counts(settings):
    request = HttpRequest()
    request.META = {"REMOTE_ADDR": "10.9.9.9", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 192.0.2.7"}
    settings.BEHIND_TLS_PROXY = False
    assert client_ip(request) == "10.9.9.9"
    settings.BEHIND_TLS_PROXY = True
    # The last entry is the one the proxy added; the first is whatever the client claimed.
    assert client_ip(request) == "192.0.2.7"


# Password hashing -----------------------------------------------------------------------------


@pytest.mark.system
def test_argon2_is_the_default_password_hasher():
    result = run_manage(
        "shell",
        "-v0",
        "-c",
        "from django.contrib.auth.hashers import get_hasher, make_password; "
        "print(get_hasher('default').algorithm, make_password('x').split('$')[0])",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        SFTP_KEY_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="x.dk",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["argon2", "argon2"]


# Secrets never in logs, pages, exports or error reports ---------------------------------------


@pytest.fixture
def protected_key() -> dict[str, object]:
    """An Ed25519 key file under a passphrase, and every form of it that must stay secret."""
    passphrase = "correct-horse-" + secrets.token_hex(8)
    key = ed25519.Ed25519PrivateKey.generate()
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.BestAvailableEncryption(passphrase.encode()),
    )
    plain = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )

    def body_lines(pem: bytes) -> list[str]:
        return [line for line in pem.decode().splitlines() if "PRIVATE KEY" not in line]

    return {
        "file": encrypted,
        "secrets": [
            passphrase,
            *body_lines(encrypted),
            *body_lines(plain),
            raw.hex(),
            base64.b64encode(raw).decode(),
        ],
    }


def _leaks(text: str, secret_strings: list[str]) -> list[str]:
    return [s for s in secret_strings if s and s in text]


def _log_text(caplog) -> str:
    """Every record as a handler would write it, tracebacks included, with its raw arguments."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(f"{formatter.format(r)} {r.args!r}" for r in caplog.records)


def _import(client: Client, account, protected_key) -> HttpResponse:
    return client.post(
        reverse("transfers:account_import", args=[account.pk]),
        {
            "key_file": SimpleUploadedFile("id_ed25519", protected_key["file"]),
            "passphrase": protected_key["secrets"][0],
        },
    )


def test_no_secret_in_logs_pages_or_exports(
    client, settings, caplog, staff_a, operator, superuser, system_a, protected_key
):
    settings.TWO_FACTOR_REQUIRED = True
    settings.AXES_ENABLED = True
    settings.AXES_VERBOSE = True
    caplog.set_level(logging.DEBUG)
    account = sftp_account(system_a, "alfa_omsorg", None)
    bodies = []

    # A wrong password, then the right one, through the login form.
    wrong_password = "not-" + PASSWORD
    bodies.append(
        client.post(reverse("login"), {"username": "staff-a", "password": wrong_password})
    )
    bodies.append(client.post(reverse("login"), {"username": "staff-a", "password": PASSWORD}))
    response = _import(client, account, protected_key)
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.key_kind == "ed25519"
    for name, args in [
        ("transfers:account", [account.pk]),
        ("transfers:accounts", []),
        ("audit:log", []),
        ("transfers:export", []),
        ("dashboard", []),
    ]:
        bodies.append(client.get(reverse(name, args=args)))

    # An operator sets up two-step login; afterwards the secret is in no page or log.
    operator_client = Client()
    operator_client.post(reverse("login"), {"username": "operator", "password": PASSWORD})
    operator_client.get(reverse("two_factor_setup"))
    from django_otp.plugins.otp_totp.models import TOTPDevice

    totp_secret = secret_of(TOTPDevice.objects.get(user=operator))
    operator_client.post(reverse("two_factor_setup"), {"token": totp_code(totp_secret)})
    for name in ("dashboard", "transfers:accounts", "itsystems:list"):
        bodies.append(operator_client.get(reverse(name)))

    # The superuser's admin pages: the account, the device, the failed-login records.
    admin = verified_client(superuser)
    device = TOTPDevice.objects.get(user=operator)
    for url in (
        reverse("admin:transfers_sftpaccount_change", args=[account.pk]),
        reverse("admin:otp_totp_totpdevice_change", args=[device.pk]),
        reverse("admin:axes_accessattempt_changelist"),
        reverse("admin:axes_accesslog_changelist"),
    ):
        bodies.append(admin.get(url))
    for attempt in AccessAttempt.objects.all():
        bodies.append(admin.get(reverse("admin:axes_accessattempt_change", args=[attempt.pk])))

    forbidden = [
        *protected_key["secrets"],
        PASSWORD,
        wrong_password,
        totp_secret,
        device.key,
        settings.SECRET_KEY,
        settings.SFTP_KEY_ENCRYPTION_KEY,
    ]
    for response in bodies:
        content = b"".join(response.streaming_content) if response.streaming else response.content
        leaked = _leaks(content.decode(errors="replace"), forbidden)
        assert not leaked, f"{response.wsgi_request.path} shows {leaked}"
    assert not _leaks(_log_text(caplog), forbidden)
    assert not _leaks(repr(list(AccessAttempt.objects.values())), forbidden)


def test_an_error_while_importing_a_key_reports_no_secret(
    client_for, staff_a, system_a, protected_key, monkeypatch, caplog, settings
):
    """Django's error report (mailed to ADMINS, shown to no one else) blanks keys and
    passphrases."""
    caplog.set_level(logging.DEBUG)
    account = sftp_account(system_a, "alfa_omsorg", None)

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(keys, "_pair", fail)
    seen: list[HttpRequest] = []

    def remember(sender, request, **kwargs):
        seen.append(request)

    got_request_exception.connect(remember)
    try:
        with pytest.raises(RuntimeError, match="disk full") as failure:
            _import(client_for(staff_a), account, protected_key)
    finally:
        got_request_exception.disconnect(remember)
    assert seen
    # The report a server sends starts at Django's handler; the test's own frames (and the test
    # client's, which hold the form data as sent) come before it and are left out.
    tb = failure.tb
    while tb is not None and not tb.tb_frame.f_code.co_filename.endswith(HANDLER):
        tb = tb.tb_next
    assert tb is not None
    report = ExceptionReporter(seen[0], failure.type, failure.value, tb, is_email=True)
    text, html = report.get_traceback_text(), report.get_traceback_html()
    # The report does list the frames, with their variables blanked.
    assert "import_private_key" in text and "********" in text
    forbidden = [*protected_key["secrets"], settings.SECRET_KEY, settings.SFTP_KEY_ENCRYPTION_KEY]
    assert not _leaks(text, forbidden)
    assert not _leaks(html, forbidden)
    logged = _log_text(caplog)
    assert "disk full" in logged
    assert not _leaks(logged, forbidden)
