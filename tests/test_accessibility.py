"""axe-core on the main pages, with the demo data, as each role sees them (issue 6, point 9).

Each page must have no serious or critical violation of WCAG 2.0/2.1 A or AA. A violation that
belongs to another part of the portal and is not fixed yet is listed by rule id in the page's
`allowed`, with a comment saying where it is and what would fix it; nothing is skipped silently.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

import pytest
from django.urls import reverse

from gdpr.models import GdprDeclaration, InfRefRequest
from portal.accounts.demo import DEMO_PASSWORD
from portal.onboarding.models import Integration
from portal.specs.models import SpecificationVersion
from tests.support.accessibility import axe_violations, format_violations, serious
from tests.support.browser import screenshot
from tests.support.demo import LIVE, seed_with_transfers
from transfers.models import Transfer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@dataclass(frozen=True)
class Page:
    name: str
    username: str | None  # None: not logged in
    path: Callable[[], str]  # called after the demo data is made
    allowed: dict[str, str] = field(default_factory=dict)  # rule id → why it is still there
    width: int = 1280
    open_menu: bool = False  # open dkfds' mobile drawer before axe looks


def _live() -> Integration:
    return Integration.objects.get(name=LIVE)


def _request_page() -> str:
    request = InfRefRequest.objects.get(it_system__name="Nordlys Omsorg")
    return reverse("gdpr:request", args=[request.pk])


def _draft_declaration() -> str:
    draft = GdprDeclaration.objects.get(
        infref__it_system__name="Fjordsoft Skoledata", status=GdprDeclaration.Status.DRAFT
    )
    return reverse("gdpr:declaration_edit", args=[draft.pk])


def _version_page() -> str:
    version = SpecificationVersion.objects.get(specification__integration__name=LIVE)
    return reverse("specs:version", args=[version.pk])


def _live_page(name: str) -> str:
    return reverse(name, args=[_live().pk])


def _task_page(number: int) -> str:
    task = _live().tasks.filter(number=number).order_by("pk").first()
    return reverse("onboarding:task", args=[task.pk])


def _it_system_page() -> str:
    return reverse("itsystems:detail", args=[_live().sender_id])


def _route_order_page() -> str:
    live = _live()
    odense = live.municipalities.get(municipality_code="461")
    return (
        reverse("transfers:route_create")
        + "?"
        + urlencode({"integration": live.pk, "municipality": odense.pk})
    )


def _failed_transfer() -> str:
    return reverse("transfers:detail", args=[Transfer.objects.get(state="failed").pk])


PAGES = [
    Page("login", None, lambda: reverse("login")),
    Page("dashboard-vendor", "nordlys", lambda: reverse("dashboard")),
    Page("dashboard-architect", "aarhus", lambda: reverse("dashboard")),
    Page("dashboard-kombit", "kombit", lambda: reverse("dashboard")),
    # Below dkfds' lg breakpoint the menu, the user and "Log out" are in the drawer.
    Page("menu-mobile", "aarhus", lambda: reverse("dashboard"), width=375, open_menu=True),
    Page("it-systems", "nordlys", lambda: reverse("itsystems:list")),
    Page("organisations", "kombit", lambda: reverse("organisations:list")),
    Page("infref-requests", "kombit", lambda: reverse("gdpr:requests")),
    Page("infref-request", "nordlys", _request_page),
    Page("declaration-draft", "fjordsoft", _draft_declaration),
    Page("integration", "nordlys", lambda: reverse("onboarding:detail", args=[_live().pk])),
    Page("integration-architect", "aarhus", lambda: _live_page("onboarding:detail")),
    Page("integration-edit", "nordlys", lambda: _live_page("onboarding:edit")),
    Page("task-20-architect", "aarhus", lambda: _task_page(20)),
    Page("task-70-vendor", "nordlys", lambda: _task_page(70)),
    Page("agreement-architect", "aarhus", lambda: _live_page("onboarding:agreement")),
    Page("test-record", "nordlys", lambda: _live_page("onboarding:test")),
    Page("municipality-overview", "odense", lambda: reverse("onboarding:municipality")),
    Page("dashboard-receiving-vendor", "fjordsoft", lambda: reverse("dashboard")),
    Page("it-system", "nordlys", _it_system_page),
    Page("routes-kombit", "kombit", lambda: reverse("transfers:routes")),
    Page("route-order", "nordlys", _route_order_page),
    Page("matrix", "kombit", lambda: reverse("onboarding:matrix")),
    Page(
        "data-specification",
        "nordlys",
        lambda: reverse("specs:specification", args=[_live().pk]),
    ),
    Page("data-specification-version", "nordlys", _version_page),
    Page("outbox", "kombit", lambda: reverse("outbox:list")),
    Page("transfers", "nordlys", lambda: reverse("transfers:list")),
    Page("transfer", "nordlys", _failed_transfer),
    Page("audit-log", "nordlys", lambda: reverse("audit:log")),
]


@pytest.mark.parametrize("page_under_test", PAGES, ids=[page.name for page in PAGES])
def test_no_serious_accessibility_violations(
    live_server, chromium_browser, one_declaration_pdf, page_under_test: Page
):
    seed_with_transfers()
    path = page_under_test.path()
    url = live_server.url + path
    context = chromium_browser.new_context(viewport={"width": page_under_test.width, "height": 900})
    try:
        page = context.new_page()
        if page_under_test.username:
            # Logging in through the form, straight on to the page under test.
            page.goto(live_server.url + reverse("login") + "?" + urlencode({"next": path}))
            page.fill("#id_username", page_under_test.username)
            page.fill("#id_password", DEMO_PASSWORD)
            with page.expect_navigation(url=url) as navigation:
                page.click("main button[type=submit]")
            response = navigation.value
        else:
            response = page.goto(url)
        assert response is not None and response.ok, f"{url}: {response and response.status}"
        page.wait_for_load_state("load")
        if page_under_test.open_menu:
            page.get_by_role("button", name="Menu").click()
            drawer = page.get_by_role("dialog", name="Menu")
            drawer.get_by_role("button", name="Log af").wait_for()
            assert page.evaluate("document.activeElement.classList.contains('js-menu-close')")
        violations = axe_violations(page)
        screenshot(page, f"a11y-{page_under_test.name}")
    finally:
        context.close()

    # Every allowance must still be needed, so none outlives its fix.
    found = {violation["id"] for violation in violations}
    stale = set(page_under_test.allowed) - found
    assert not stale, f"allowed but no longer found, remove: {sorted(stale)}"
    failing = serious(violations, page_under_test.allowed)
    assert not failing, f"{url}\n{format_violations(failing)}"
