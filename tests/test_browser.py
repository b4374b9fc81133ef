"""The portal in a real browser: log in, the Danish dashboard, switching language, log out."""

import pytest

from tests.conftest import PASSWORD
from tests.support.browser import chromium, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_vendor_staff_log_in_see_their_systems_switch_language_and_log_out(
    live_server, staff_a, system_a, system_b
):
    with chromium() as browser:
        page = browser.new_page(locale="en-GB", viewport={"width": 1280, "height": 900})
        page.goto(live_server.url + "/")
        assert page.locator("h1").inner_text() == "Log ind"
        screenshot(page, "login")

        page.fill("#id_username", "staff-a")
        page.fill("#id_password", PASSWORD)
        page.click("main button[type=submit]")
        page.wait_for_url(live_server.url + "/")
        assert page.locator("h1").inner_text() == "Overblik"
        assert page.get_by_role("link", name="Alfa Omsorg").is_visible()
        assert page.get_by_text("Beta Journal").count() == 0
        screenshot(page, "dashboard-vendor")

        page.get_by_role("button", name="English").click()
        page.wait_for_load_state()
        assert page.locator("h1").inner_text() == "Overview"
        assert page.locator("html").get_attribute("lang") == "en"

        page.get_by_role("button", name="Dansk").click()
        page.wait_for_load_state()
        page.get_by_role("button", name="Log af").click()
        page.wait_for_url(live_server.url + "/login/")
        assert page.locator("h1").inner_text() == "Log ind"


def test_the_design_system_is_served_and_applied(live_server, staff_a):
    with chromium() as browser:
        page = browser.new_page()
        response = page.goto(live_server.url + "/static/dkfds/css/dkfds-virkdk.min.css")
        assert response.ok
        page.goto(live_server.url + "/login/")
        font = page.locator("body").evaluate("element => getComputedStyle(element).fontFamily")
        assert "IBM Plex Sans" in font
