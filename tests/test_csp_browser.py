"""The main pages in Chromium under the portal's Content-Security-Policy (issue 8, point 6).

Each role logs in through the forms (operators and superusers with a TOTP code, computed from the
key the setup page shows) and opens its pages. Chromium reports every blocked script, style or
image as a `securitypolicyviolation` event and a console error; the test collects both, and
fails on any, naming the page and what was blocked.
"""

import re
from urllib.parse import urljoin

import pytest
from django.urls import reverse
from playwright.sync_api import BrowserContext, Page

from gdpr.models import GdprDeclaration, InfRefRequest
from portal.accounts.demo import DEMO_PASSWORD
from portal.onboarding.models import Integration
from portal.specs.models import SpecificationVersion
from tests.support.browser import chromium, screenshot
from tests.support.totp import totp_code
from tests.test_accessibility import LIVE, _seed, one_declaration_pdf  # noqa: F401
from transfers.models import SftpAccount, Transfer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Listens from the first line of every document, before any of the page's own scripts.
_LISTEN = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (event) => {
  window.__cspViolations.push(
    `${event.violatedDirective} blocked ${event.blockedURI || 'inline'} ` +
    `(${event.sourceFile || ''}:${event.lineNumber || ''}) ${event.sample || ''}`);
});
"""


@pytest.fixture(autouse=True)
def two_factor_on(settings):
    settings.TWO_FACTOR_REQUIRED = True


@pytest.fixture(scope="module")
def browser():
    with chromium() as running:
        yield running


class Visit:
    """One role's browser context, recording what the policy blocked on each page."""

    def __init__(self, context: BrowserContext, base: str) -> None:
        self.base = base
        self.problems: list[str] = []
        context.add_init_script(_LISTEN)
        self.page: Page = context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    def _console(self, message) -> None:
        source = (message.location or {}).get("url", "")
        # The browser asks for /favicon.ico by itself; the portal has none, and it runs nothing.
        if message.type == "error" and not source.endswith("/favicon.ico"):
            self.problems.append(f"{self.page.url}: console: {message.text} ({source})")

    def collect(self, name: str) -> None:
        self.page.wait_for_load_state("load")
        for violation in self.page.evaluate("() => window.__cspViolations || []"):
            self.problems.append(f"{name} ({self.page.url}): {violation}")
        screenshot(self.page, f"csp-{name}")

    def open(self, name: str, path: str) -> None:
        response = self.page.goto(urljoin(self.base, path))
        assert response is not None and response.ok, f"{path}: {response and response.status}"
        policy = response.headers.get("content-security-policy", "")
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy, path
        self.collect(name)

    def log_in(self, username: str) -> None:
        page = self.page
        page.goto(self.base + reverse("login"))
        self.collect(f"{username}-login")
        page.fill("#id_username", username)
        page.fill("#id_password", DEMO_PASSWORD)
        page.click("main button[type=submit]")
        page.wait_for_load_state("load")
        if reverse("two_factor_setup") in page.url:
            self.collect(f"{username}-two-factor-setup")
            secret = re.sub(r"\s", "", page.locator("code.totp-secret").inner_text())
            page.fill("#id_token", totp_code(secret))
            page.click("main button[type=submit]")
            page.locator("#backup-codes").wait_for()  # shown once, then on
            self.collect(f"{username}-backup-codes")
            page.click("main a.button-primary")
            page.wait_for_load_state("load")
        assert page.url == self.base + reverse("dashboard"), page.url
        self.collect(f"{username}-dashboard")


def _pages(username: str) -> list[tuple[str, str]]:
    live = Integration.objects.get(name=LIVE)
    version = SpecificationVersion.objects.get(specification__integration=live)
    queued = Transfer.objects.get(state="queued")
    account = SftpAccount.objects.filter(it_system=live.sender).first()
    request = InfRefRequest.objects.get(it_system__name="Nordlys Omsorg")
    draft = GdprDeclaration.objects.get(
        infref__it_system__name="Fjordsoft Skoledata", status=GdprDeclaration.Status.DRAFT
    )
    pages = {
        "nordlys": [
            ("it-systems", reverse("itsystems:list")),
            ("infref-request", reverse("gdpr:request", args=[request.pk])),
            ("integration", reverse("onboarding:detail", args=[live.pk])),
            ("specification", reverse("specs:specification", args=[live.pk])),
            ("specification-version", reverse("specs:version", args=[version.pk])),
            ("transfers", reverse("transfers:list")),
            ("transfer-polling", reverse("transfers:detail", args=[queued.pk])),
            ("send", reverse("transfers:send")),
            ("routes", reverse("transfers:routes")),
            ("account", reverse("transfers:account", args=[account.pk])),
            ("audit", reverse("audit:log")),
        ],
        "fjordsoft": [
            ("declaration-draft", reverse("gdpr:declaration_edit", args=[draft.pk])),
            ("received", reverse("transfers:received")),
        ],
        "aarhus": [
            ("review", reverse("review:overview")),
            ("municipality", reverse("onboarding:municipality")),
        ],
        "kombit": [
            ("infref-requests", reverse("gdpr:requests")),
            ("organisations", reverse("organisations:list")),
            ("matrix", reverse("onboarding:matrix")),
            ("outbox", reverse("outbox:list")),
        ],
        "admin": [
            ("admin", reverse("admin:index")),
            ("admin-transfers", reverse("admin:transfers_transfer_changelist")),
            ("admin-transfer", reverse("admin:transfers_transfer_change", args=[queued.pk])),
        ],
    }
    return pages[username]


@pytest.mark.parametrize("username", ["nordlys", "fjordsoft", "aarhus", "kombit", "admin"])
def test_no_content_security_policy_violations(
    live_server,
    browser,
    one_declaration_pdf,  # noqa: F811 - the fixture, imported from test_accessibility
    username,
):
    _seed()
    pages = _pages(username)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        visit = Visit(context, live_server.url)
        visit.log_in(username)
        for name, path in pages:
            visit.open(f"{username}-{name}", path)
            if name == "transfer-polling":
                # Let htmx swap the status panel a few times under the policy.
                visit.page.wait_for_timeout(2500)
                visit.collect(f"{username}-{name}-after-polling")
        # dkfds' navigation script, below its lg breakpoint: the mobile drawer.
        visit.page.set_viewport_size({"width": 375, "height": 800})
        visit.open(f"{username}-dashboard-mobile", reverse("dashboard"))
        visit.page.get_by_role("button", name="Menu").click()
        visit.page.get_by_role("dialog", name="Menu").wait_for()
        visit.collect(f"{username}-menu-mobile")
    finally:
        context.close()
    assert not visit.problems, "\n".join(visit.problems)
