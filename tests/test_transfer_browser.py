"""A send followed in the browser from queued to delivered without reloading the page, and
the receiving municipality's architect finding the file."""

import pytest

from tests.support.browser import chromium, log_in, screenshot
from tests.support.workers import worker_cluster

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_send_is_followed_live_and_the_architect_sees_the_file(
    live_server, tmp_path, ready_route, architect
):
    ready_route()
    data = tmp_path / "borgere-aarhus.csv"
    data.write_bytes("kommunekode;navn\r\n751;Åse\r\n".encode() * 50_000)

    with worker_cluster(), chromium() as browser:
        vendor = log_in(browser, live_server.url, "staff-a")
        vendor.goto(f"{live_server.url}/transfers/send/")
        vendor.select_option("#id_route", index=1)
        vendor.set_input_files("#id_data_file", str(data))
        vendor.click("main button[type=submit]")
        vendor.wait_for_url("**/transfers/*/")
        vendor.evaluate("window.stillTheSamePage = true")
        vendor.wait_for_selector('#transfer-status[data-state="delivered"]', timeout=60_000)
        assert vendor.evaluate("window.stillTheSamePage") is True  # htmx, no reload
        screenshot(vendor, "transfer-delivered")

        municipality = log_in(browser, live_server.url, "architect-aarhus")
        municipality.goto(f"{live_server.url}/review/")
        municipality.get_by_text("borgere-aarhus.csv").first.wait_for(timeout=30_000)
        for _ in range(60):
            if municipality.get_by_text("alfa_omsorg_FDD_").count():
                break
            municipality.wait_for_timeout(500)
            municipality.reload()
        assert municipality.get_by_text("alfa_omsorg_FDD_").count() >= 1
        screenshot(municipality, "review-received")
