"""The main pages in Chromium under the portal's Content-Security-Policy (issue 8, point 6).

Each role logs in through the forms (operators and superusers with a TOTP code, computed from the
key the setup page shows) and opens its pages. Chromium reports every blocked script, style or
image as a `securitypolicyviolation` event and a console error; the test collects both, and
fails on any, naming the page and what was blocked.
"""

import pytest
from django.urls import reverse

from gdpr.models import GdprDeclaration, InfRefRequest
from portal.onboarding.models import Integration
from portal.specs.models import SpecificationVersion
from tests.support.demo import LIVE, Visit, seed_with_transfers
from transfers.models import SftpAccount, Transfer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def two_factor_on(settings):
    settings.TWO_FACTOR_REQUIRED = True


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
    chromium_browser,
    one_declaration_pdf,
    username,
):
    seed_with_transfers()
    pages = _pages(username)
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 900})
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
