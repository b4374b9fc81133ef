"""The municipal review at 1280 px, as the municipality's architect, with the long names real
flows have: they wrap inside their cells, and nothing on the page scrolls sideways."""

import pytest

from tests.conftest import PASSWORD
from tests.support.accessibility import axe_violations, format_violations, serious
from tests.support.browser import SCREENSHOTS, chromium, screenshot
from tests.support.declarations import declare
from tests.support.records import (
    at,
    fetched_copy,
    make_integration,
    make_route,
    make_transfers,
    receive,
)
from tests.support.specs import make_version
from transfers.models import Transfer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTH = 1280
LONG_NAME = "borgere_med_aktive_forloeb_i_hjemmeplejen_fuldt_udtraek_{n}_til_modtagersystemet.csv"
PLATFORM_NAME = "alfa_omsorg_FDD_7076f0e2-4c1b-4f7e-9a7c-0b0a3b9f1e55_{n}.csv"


def _long_named_flows(system_a, system_b, staff_a, operator, aarhus) -> None:
    """Two flows with the longest names the portal allows in practice: transfers in every
    state, most fetched by the receiver, and files from a sender outside the portal."""
    system_a.name = "Alfa Omsorg og Sundhed – Hjemmepleje, Sygepleje og Træning"
    system_a.save(update_fields=["name"])
    system_b.name = "Beta Journal til det samlede Sundheds- og Omsorgsområde"
    system_b.save(update_fields=["name"])
    for flow in range(2):
        integration = make_integration(
            system_a,
            system_b,
            staff_a,
            [aarhus],
            name=f"Omsorgsdata fra hjemmeplejen til den kommunale sundhedsjournal, del {flow}",
        )
        route = make_route(integration, aarhus, operator)
        make_version(integration, 1, 0, at(0), staff_a)
        # Named as the controller in one flow, not in the other; outdated before the files.
        declaration = declare(route.infref, 1, at(1), staff_a, [aarhus] if flow else [])
        declaration.outdated_at = at(2)
        declaration.save(update_fields=["outdated_at"])
        for n, state in enumerate(["delivered"] * 6 + ["sent", "failed", "queued", "sending"]):
            [sent] = make_transfers(route, 1, state=state, size=5_300_000 * n, at=at(10 + n))
            Transfer.objects.filter(pk=sent).update(
                original_name=LONG_NAME.format(n=f"{flow}-{n}"), sha256=f"{n:x}" * 64
            )
            if state == "delivered":
                fetched_copy(sent, PLATFORM_NAME.format(n=f"{flow}-{n}"), at=at(10 + n))
        for n in range(3):
            name = PLATFORM_NAME.format(n=f"udefra-{flow}-{n}")
            receive(route, name, size=700, sha256="f" * 64, at=at(30 + n))


def test_the_review_fits_1280_pixels_without_scrolling_sideways(
    live_server, architect, system_a, system_b, staff_a, operator, aarhus
):
    _long_named_flows(system_a, system_b, staff_a, operator, aarhus)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": WIDTH, "height": 800})
        page.goto(f"{live_server.url}/login/?next=/review/")
        page.fill("#id_username", architect.username)
        page.fill("#id_password", PASSWORD)
        with page.expect_navigation(url=f"{live_server.url}/review/"):
            page.click("main button[type=submit]")
        page.wait_for_load_state("load")
        assert page.locator("td.review-file").count() == 25
        screenshot(page, "review-1280")

        assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
        # A table may also scroll inside its own box: none of them may need to.
        overflowing = page.evaluate(
            """[...document.querySelectorAll('.table--responsive-scroll')]
                 .filter((box) => box.scrollWidth > box.clientWidth)
                 .map((box) => box.querySelector('caption').textContent)"""
        )
        assert overflowing == []
        # The whole SHA-256 is one click away, and it too wraps rather than widens.
        page.locator("td.review-file details summary").first.click()
        assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
        page.locator("td.review-file").first.screenshot(
            path=str(SCREENSHOTS / "review-1280-hash.png")
        )
        failing = serious(axe_violations(page))
        assert not failing, format_violations(failing)
