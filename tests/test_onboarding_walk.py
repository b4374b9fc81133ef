"""Onboarding walked in Chromium by every party in its own role, never through /admin/: from a new
IT system to the first production file seen by the receiving vendor and the architect.

Two simulators stand in for Serviceplatformen's external test and production environments: the
test is KOMBIT, configuring them from what its operator established in the portal.
"""

import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.urls import reverse
from playwright.sync_api import Browser, Page, expect

from gdpr.models import InfRefRequest
from portal.onboarding.models import Consent
from tests.conftest import PASSWORD
from tests.support.accessibility import axe_violations, format_violations, serious
from tests.support.browser import chromium, screenshot
from tests.support.pdf import ONE_PAGE
from tests.support.workers import worker_cluster
from transfers.models import Environment, Transfer
from transfers.simulator.registry import Registry, StaticRegistry
from transfers.simulator.server import Simulator

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TIMEOUT = 15_000
DELIVERY = 60_000


@dataclass
class World:
    browser: Browser
    url: str
    tmp: Path
    platforms: dict[str, Simulator]
    pages: dict[str, Page] = field(default_factory=dict)
    shots: str = "walk"

    def as_(self, username: str) -> Page:
        """The user's own browser, logged in once, in English."""
        if username not in self.pages:
            context = self.browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_cookies([{"name": "django_language", "value": "en", "url": self.url}])
            page = context.new_page()
            page.set_default_timeout(TIMEOUT)
            page.goto(f"{self.url}/login/")
            page.fill("#id_username", username)
            page.fill("#id_password", PASSWORD)
            page.click("main button[type=submit]")
            page.wait_for_url(f"{self.url}/")
            self.pages[username] = page
        return self.pages[username]

    def open(self, username: str, path: str) -> Page:
        page = self.as_(username)
        page.goto(self.url + path)
        return page

    def shot(self, page: Page, name: str) -> None:
        screenshot(page, f"{self.shots}-{name}")

    def serviceplatform_configured(self) -> None:
        """KOMBIT's side: each platform routes what the portal says is established there."""
        for environment, platform in self.platforms.items():
            platform.registry.registry = Registry.from_database(environment)


def choose(page: Page, select: str, text: str) -> None:
    """Pick the option whose label contains `text`, as a person reading the list would."""
    option = page.locator(f"{select} option", has_text=text).first
    page.select_option(select, value=option.get_attribute("value"))


def axe_clean(page: Page) -> None:
    found = serious(axe_violations(page))
    assert not found, f"{page.url}: {format_violations(found)}"


def next_step(page: Page, text: str) -> None:
    """Follow the link of a to-do item on the user's overview."""
    page.goto(page.url.split("/", 3)[0] + "//" + page.url.split("/", 3)[2] + "/")
    link = page.locator("#todo-list").get_by_role("link", name=re.compile(text)).first
    path = urlsplit(link.get_attribute("href")).path
    link.click()
    # Wait for the new page: the steps read it straight away, and the overview is still there.
    page.wait_for_url(lambda url: urlsplit(url).path == path)


# --- The steps, each by the party that takes it ------------------------------------------------


def register_it_system(w: World, name: str) -> None:
    page = w.open("staff-a", reverse("itsystems:create"))
    page.fill("#id_name", name)
    page.fill("#id_uuid", str(uuid.uuid4()))
    page.check("#id_is_sender")
    page.get_by_role("button", name="Save").click()
    page.get_by_role("heading", name=name).wait_for()
    w.shot(page, "1-it-system")


def create_integration(w: World, system: str, *, infref: str = "") -> str:
    page = w.as_("staff-a")
    page.get_by_role("link", name="Create an integration").click()
    assert page.locator("#id_sender option:checked").inner_text().startswith(system)
    page.fill("#id_name", f"{system} til Beta Journal")
    choose(page, "#id_receiver", "Beta Journal")
    if infref:
        choose(page, "#id_infref", infref)
    page.get_by_label("Aarhus Kommune", exact=True).check()
    page.fill("#id_legal_basis", "Serviceloven § 83.")
    page.get_by_role("button", name=re.compile("Create")).click()
    page.wait_for_url(re.compile(r"/integrations/\d+/$"))
    w.shot(page, "2-integration")
    axe_clean(page)
    return page.url.removeprefix(w.url)


def write_specification(w: World, integration: str) -> None:
    page = w.open("staff-a", integration)
    page.get_by_role("link", name="Data specification and its versions").first.click()
    page.get_by_role("link", name=re.compile("New version|first version")).first.click()
    page.fill("#id_major", "1")
    page.fill("#id_minor", "0")
    page.select_option("#id_format", "csv")
    page.select_option("#id_delimiter", ";")
    page.fill("#id_frequency", "Dagligt kl. 02:00")
    page.fill("#id_fields-0-name", "cpr")
    page.select_option("#id_fields-0-type", "cpr")
    page.check("#id_fields-0-required")
    page.fill("#id_fields-1-name", "navn")
    page.select_option("#id_fields-1-type", "string")
    page.get_by_role("button", name="Save the version").click()
    page.get_by_text("Version 1.0 is saved.").wait_for()


def request_infref(w: World, *, from_it_system: bool = False) -> None:
    page = w.as_("staff-a")
    if from_it_system:
        page.get_by_role("link", name="Request an InfRef").click()
    else:
        next_step(page, "Request an InfRef from KOMBIT")
    page.fill("#id_description", "Borgerdata til det nye journalsystem.")
    page.get_by_role("button", name="Send the request to KOMBIT").click()
    page.get_by_text("It is KOMBIT's move.").first.wait_for()


def assign_infref(w: World) -> str:
    page = w.open("operator", "/")
    axe_clean(page)
    w.shot(page, "3-kombit-todo")
    next_step(page, "Assign an InfRef")
    name = page.input_value("#id_name")
    page.get_by_role("button", name="Assign the InfRef").click()
    page.get_by_role("heading", name=name).wait_for()
    return name


def link_infref(w: World, integration: str, infref: str) -> None:
    page = w.as_("staff-a")
    next_step(page, "Link .* to the InfRef")
    choose(page, "#id_infref", infref)
    w.shot(page, "4-edit")
    axe_clean(page)
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(re.escape(integration)))


def declare(w: World, infref: str) -> None:
    page = w.as_("staff-a")
    next_step(page, f"submit the GDPR declaration for {infref}")
    if page.get_by_role("button", name="Fill in the GDPR declaration").count():
        page.get_by_role("button", name="Fill in the GDPR declaration").click()
    # Pre-filled from the integration: its municipality, its receiver and the spec version.
    expect(page.get_by_label("Aarhus Kommune", exact=True)).to_be_checked()
    expect(page.get_by_label(re.compile("Beta Journal"))).to_be_checked()
    assert page.input_value("#id_data_specification_version") == "1.0"
    assert page.input_value("#id_legal_basis_detail") == "Serviceloven § 83."
    for selector, value in {
        "#id_purpose": "Overførsel ved systemskifte.",
        "#id_data_subject_categories": "Borgere i hjemmeplejen.",
        "#id_personal_data_categories": "Navn, adresse, CPR-nummer.",
        "#id_dpa_title": "Databehandleraftale 2026",
        "#id_dpa_signed_on": "2026-03-01",
        "#id_retention": "Slettes efter indlæsning.",
        "#id_deletion": "Slettes efter hentning.",
        "#id_security_measures": "SFTP, adgangsstyring, logning.",
        "#id_transfer_volume": "5 MB pr. døgn.",
        "#id_signatory_name": "Ada Alfa",
        "#id_signatory_title": "Direktør",
        "#id_signed_on": "2026-11-02",
    }.items():
        page.fill(selector, value)
    page.check("#id_legal_basis_art6_2")
    page.select_option("#id_transfer_frequency", "daily")
    page.get_by_role("button", name="Submit to KOMBIT").click()
    page.get_by_text("submitted").first.wait_for()


def create_on_serviceplatform(w: World) -> None:
    page = w.open("operator", "/")
    next_step(page, "Create .* on Serviceplatformen")
    page.get_by_role("button", name="Mark as created on Serviceplatformen").click()
    page.get_by_text("Created on Serviceplatformen").first.wait_for()


def agree(w: World, integration: str, *, with_agreement: bool) -> None:
    """The sending vendor and the architect each say yes for themselves."""
    vendor = w.open("staff-a", integration)
    if with_agreement:
        vendor.get_by_role("link", name="Register the agreement").click()
        vendor.fill("#id_title", "Databehandleraftale Aarhus 2026")
        vendor.fill("#id_signed_on", "2026-03-01")
        agreement = w.tmp / "aftale æøå (underskrevet).pdf"
        agreement.write_bytes(ONE_PAGE)
        vendor.set_input_files("#id_document", str(agreement))
        vendor.get_by_role("button", name="Save").click()
        vendor.wait_for_url(re.compile(re.escape(integration)))
        button = "Confirm the agreement"
    else:
        button = "No agreement is needed"
    vendor.get_by_role("button", name=f"{button} (Alfa Software A/S)").click()
    architect = w.open("architect-aarhus", "/")
    w.shot(architect, "5-architect-todo")
    axe_clean(architect)
    architect.goto(w.url + integration)
    architect.get_by_role("button", name=f"{button} (Aarhus Kommune)").click()
    architect.get_by_text("Agreed by both").first.wait_for()
    w.shot(architect, "6-agreed")
    axe_clean(architect)


def sftp_account(w: World, username: str, system: str, environment: str, login: str) -> None:
    """Registered, given a key, and the platform's host key confirmed: by the vendor itself."""
    page = w.open(username, reverse("transfers:account_create"))
    choose(page, "#id_it_system", system)
    page.select_option("#id_environment", environment)
    page.fill("#id_username", login)
    page.fill("#id_host", "127.0.0.1")
    page.fill("#id_port", str(w.platforms[environment].port))
    page.get_by_role("button", name="Save").click()
    page.get_by_role("button", name="Make a key").click()
    page.get_by_role("button", name="Ask the server for its host key").click()
    page.get_by_role("button", name="Confirm and pin this host key").click()
    page.get_by_text("pinned").first.wait_for()


def order_route(w: World, integration: str, environment: str) -> None:
    page = w.open("staff-a", integration)
    label = "Order the route in the external test environment"
    page.get_by_role(
        "link", name=label if environment == "exttest" else "Order the route"
    ).first.click()
    assert page.input_value("#id_environment") == environment
    page.get_by_role("button", name=re.compile("Order")).click()
    page.get_by_text("KOMBIT").first.wait_for()


def establish_routes(w: World) -> None:
    page = w.open("operator", "/")
    next_step(page, "ordered route")
    w.shot(page, "7a-routes")
    while page.locator("select[name=state]").count():
        form = page.locator("form:has(select[name=state])").first
        form.locator("select[name=state]").select_option("established")
        with page.expect_navigation():
            form.get_by_role("button", name="Save").click()
        page.goto(w.url + reverse("transfers:routes") + "?state=ordered")
    w.serviceplatform_configured()


def send(w: World, environment: str, name: str) -> None:
    data = w.tmp / name
    data.write_bytes("kommunekode;cpr;navn\r\n751;0101011234;Åse\r\n".encode() * 100)
    page = w.open("staff-a", reverse("transfers:send"))
    w.shot(page, f"7-{environment}-send")
    choose(page, "#id_route", "External test" if environment == "exttest" else "Production")
    page.set_input_files("#id_data_file", str(data))
    page.click("main button[type=submit]")
    page.wait_for_url("**/transfers/*/")
    page.wait_for_selector('#transfer-status[data-state="delivered"]', timeout=DELIVERY)
    w.shot(page, f"8-{environment}-delivered")


def received(w: World, username: str, path: str, name: str) -> Page:
    page = w.open(username, path)
    for _ in range(60):
        if page.get_by_text(name).count():
            return page
        page.wait_for_timeout(1000)
        page.reload()
    raise AssertionError(f"{username} never saw {name} on {path}")


def accept_test(w: World, integration: str) -> None:
    vendor = w.open("staff-a", integration)
    vendor.get_by_role("link", name="Record the test").click()
    vendor.fill("#id_scope", "Tre testborgere.")
    vendor.select_option("#id_result", "passed")
    vendor.get_by_role("button", name="Save").click()
    vendor.goto(w.url + integration)
    vendor.get_by_role("button", name="Accept the test (Alfa Software A/S)").click()
    architect = w.open("architect-aarhus", integration)
    architect.get_by_role("button", name="Accept the test (Aarhus Kommune)").click()
    architect.get_by_text("Agreed by both").nth(1).wait_for()


def production_ready(w: World, integration: str) -> None:
    page = w.open("architect-aarhus", integration)
    page.get_by_text("ready for production sends").wait_for()
    w.shot(page, "9-production-ready")
    axe_clean(page)


def through_test_to_production(w: World, integration: str, system: str, login: str) -> None:
    """The external test first, with what the platform needs to route and nothing that opens
    production; then production, to the first file seen by the receiver and the architect."""
    sftp_account(w, "staff-a", system, "exttest", f"{login}_test")
    sftp_account(w, "staff-b", "Beta Journal", "exttest", "beta_journal_test")
    order_route(w, integration, "exttest")
    establish_routes(w)
    send(w, "exttest", "testfil.csv")
    # The receiver sees the platform's name for the file: the sender's user and the transfer.
    received(w, "staff-b", reverse("transfers:received"), f"{login}_test_FDD_")
    accept_test(w, integration)
    assert not Transfer.objects.filter(route__environment=Environment.PRODUCTION).exists()

    sftp_account(w, "staff-a", system, "production", login)
    sftp_account(w, "staff-b", "Beta Journal", "production", "beta_journal")
    order_route(w, integration, "production")
    establish_routes(w)
    production_ready(w, integration)
    send(w, "production", "borgere-aarhus.csv")
    w.shot(received(w, "staff-b", reverse("transfers:received"), f"{login}_FDD_"), "10-received")
    page = received(w, "architect-aarhus", reverse("review:overview"), "borgere-aarhus.csv")
    w.shot(page, "10-review")


# --- The walks ----------------------------------------------------------------------------------


@pytest.fixture
def platforms(tmp_path):
    started = {}
    try:
        for environment in (Environment.EXTERNAL_TEST, Environment.PRODUCTION):
            started[environment] = Simulator(
                tmp_path / environment,
                registry=StaticRegistry(Registry()),
                host_key=tmp_path / f"{environment}_host_key",
            ).start()
        yield started
    finally:
        for platform in started.values():
            platform.stop()


@pytest.fixture
def world(live_server, tmp_path, platforms, staff_a, staff_b, operator, architect, system_b):
    with chromium() as browser, worker_cluster():
        yield World(browser, live_server.url, tmp_path, platforms)


def test_a_new_it_system_to_its_first_production_file(world):
    w = world
    register_it_system(w, "Alfa Sag")
    integration = create_integration(w, "Alfa Sag")
    write_specification(w, integration)
    request_infref(w)
    infref = assign_infref(w)
    link_infref(w, integration, infref)
    declare(w, infref)
    create_on_serviceplatform(w)
    agree(w, integration, with_agreement=True)

    through_test_to_production(w, integration, "Alfa Sag", "alfa_sag")


def test_the_same_with_the_infref_first_and_no_agreement_needed(world):
    w = world
    w.shots = "walk-b"
    register_it_system(w, "Alfa Borger")
    request_infref(w, from_it_system=True)
    infref = assign_infref(w)
    # With the InfRef in hand, the vendor creates the integration from the IT system's page.
    w.open("staff-a", reverse("itsystems:list")).get_by_role("link", name="Alfa Borger").click()
    integration = create_integration(w, "Alfa Borger", infref=infref)
    write_specification(w, integration)
    declare(w, infref)
    create_on_serviceplatform(w)
    agree(w, integration, with_agreement=False)

    through_test_to_production(w, integration, "Alfa Borger", "alfa_borger")


def test_bad_input_gets_its_reason_and_nothing_happens_twice(
    live_server, tmp_path, ready_route, staff_b, architect, system_a, aarhus, odense
):
    """What a person tries: a second request, a double click, Back and send again, another
    party's page, a municipality the declaration does not name, odd file names."""
    integration = ready_route(receiver_account=False).integration
    detail = reverse("onboarding:detail", args=[integration.pk])
    with chromium() as browser:
        w = World(browser, live_server.url, tmp_path, {}, shots="walk-c")

        # A second InfRef request for an IT system that has one: refused, the first linked.
        page = w.open("staff-a", reverse("gdpr:request_create") + f"?it_system={system_a.pk}")
        page.fill("#id_description", "Igen.")
        page.get_by_role("button", name="Send the request to KOMBIT").click()
        page.get_by_text("already has the InfRef").wait_for()
        assert page.get_by_role("link", name=re.compile(integration.infref.name)).count()
        assert InfRefRequest.objects.filter(it_system=system_a).count() == 1

        # The test result changed: every yes to the old one lapses, none can be given to a
        # failed test; passed again, a double click gives one yes.
        page = w.open("staff-a", reverse("onboarding:test", args=[integration.pk]))
        page.select_option("#id_result", "failed")
        page.get_by_role("button", name="Save").click()
        page.get_by_text("must accept it again").wait_for()
        assert not Consent.objects.filter(integration=integration, subject="test").exists()
        page.goto(w.url + detail)
        assert page.get_by_role("button", name="Accept the test (Alfa Software A/S)").count() == 0
        page.goto(w.url + reverse("onboarding:test", args=[integration.pk]))
        page.select_option("#id_result", "passed")
        page.get_by_role("button", name="Save").click()
        page.goto(w.url + detail)
        page.get_by_role("button", name="Accept the test (Alfa Software A/S)").dblclick()
        page.get_by_text("said yes").first.wait_for()
        assert Consent.objects.filter(integration=integration, subject="test").count() == 1
        architect_page = w.open("architect-aarhus", detail)
        architect_page.get_by_role("button", name="Accept the test (Aarhus Kommune)").click()
        architect_page.get_by_text("said yes").first.wait_for()

        # A municipality the declaration does not name: joined, but production stays shut.
        page.goto(w.url + detail)
        choose(page, "#id_municipality", "Odense Kommune")
        page.get_by_role("button", name="Add the municipality").click()
        page.get_by_text(
            "The GDPR declaration does not name Odense Kommune as data controller."
        ).first.wait_for()
        w.shot(page, "1-odense-not-declared")

        # Another party's page: the architect may not edit the integration, nor tick task 10.
        architect_page = w.as_("architect-aarhus")
        refused = architect_page.goto(w.url + reverse("onboarding:edit", args=[integration.pk]))
        assert refused.status == 403
        task_10 = integration.tasks.get(number=10)
        architect_page.goto(w.url + reverse("onboarding:task", args=[task_10.pk]))
        assert architect_page.locator("#id_state").count() == 0

        # A file that is not what its name says, as the agreement: refused with the reason.
        fake = tmp_path / "aftale.pdf"
        fake.write_bytes(b"MZ\x90\x00 not a pdf")
        page = w.open("staff-a", reverse("onboarding:agreement", args=[integration.pk]))
        page.fill("#id_title", "Aftale")
        page.fill("#id_signed_on", "2026-03-01")
        page.set_input_files("#id_document", str(fake))
        page.get_by_role("button", name="Save").click()
        page.get_by_text("The file says .pdf but is not a PDF document.").wait_for()
        assert not hasattr(type(integration).objects.get(pk=integration.pk), "processing_agreement")

        # An odd file name sent, then Back and send again: one transfer, its name as text.
        odd = tmp_path / "<img src=x onerror=alert(1)> æøå;rm -rf ~.csv"
        odd.write_bytes(b"kommunekode;navn\r\n751;Aase\r\n")
        page = w.open("staff-a", reverse("transfers:send"))
        choose(page, "#id_route", "Aarhus")
        page.set_input_files("#id_data_file", str(odd))
        page.click("main button[type=submit]")
        page.wait_for_url("**/transfers/*/")
        first = page.url
        page.get_by_text("<img src=x onerror=alert(1)> æøå;rm -rf ~.csv").first.wait_for()
        page.go_back()
        page.click("main button[type=submit]")
        page.get_by_text("The file is already queued.").wait_for()
        assert page.url == first
        assert Transfer.objects.count() == 1
        w.shot(page, "2-already-queued")
