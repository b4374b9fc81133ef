"""The demo world the browser tests walk: the demo data with transfers on its live integration,
and one role's visit to it that records what the Content-Security-Policy blocked.

    seed_with_transfers()
    visit = Visit(browser.new_context(), live_server.url)
    visit.log_in("nordlys")
    visit.open("transfers", reverse("transfers:list"))
    assert not visit.problems
"""

import hashlib
import re
from urllib.parse import urljoin

from django.urls import reverse
from playwright.sync_api import BrowserContext, Page

from portal.accounts.demo import DEMO_PASSWORD, seed_demo
from portal.onboarding.models import Integration
from tests.support.browser import screenshot
from tests.support.totp import totp_code
from transfers.models import Route, SftpAccount, Transfer

# The demo's integration that is live: routes, accounts and a data specification.
LIVE = "Omsorgsdata til Fjordsoft Journal"

# Listens from the first line of every document, before any of the page's own scripts.
_LISTEN = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (event) => {
  window.__cspViolations.push(
    `${event.violatedDirective} blocked ${event.blockedURI || 'inline'} ` +
    `(${event.sourceFile || ''}:${event.lineNumber || ''}) ${event.sample || ''}`);
});
"""


def seed_with_transfers() -> None:
    """The demo data (its data specification included), plus what it lacks for these pages:
    transfers."""
    seed_demo()
    live = Integration.objects.get(name=LIVE)
    nordlys = live.created_by
    route = Route.objects.get(integration=live, municipality__municipality_code="751")
    account = SftpAccount.objects.get(it_system=live.sender, environment="simulator")
    for number, (state, extra) in enumerate(
        [
            ("delivered", {"bytes_done": 5120, "attempts": 1}),
            (
                "failed",
                {
                    "attempts": 3,
                    "error_code": 3,
                    "error_text": "Modtageren findes ikke på ruten.",
                    "last_error": "Serviceplatformen afviste filen.",
                },
            ),
            ("queued", {}),
        ],
        1,
    ):
        name = f"omsorg-{number}.csv"
        Transfer.objects.create(
            route=route,
            account=account,
            state=state,
            original_name=name,
            payload=f"/nonexistent/{name}",
            size=5120,
            sha256=hashlib.sha256(name.encode()).hexdigest(),
            remote_name=f"{account.username}_{name}",
            created_by=nordlys,
            **extra,
        )


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
