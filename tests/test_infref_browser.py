"""The four InfRef steps walked in a real browser, each role in its own session."""

import pytest
from django.urls import reverse
from pypdf import PdfReader

from gdpr.models import InfRefRequest
from portal.onboarding.rules import create_integration
from tests.support.accessibility import axe_violations, format_violations, serious
from tests.support.browser import chromium, log_in, screenshot
from tests.support.specs import spec_version

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_four_steps_and_the_pdf(live_server, staff_a, operator, system_a, system_b, aarhus):
    # The integration the InfRef is for, with the specification version its declaration names.
    integration = create_integration(
        name="Alfa Omsorg til Beta Journal",
        sender=system_a,
        receiver=system_b,
        created_by=staff_a,
        municipalities=[aarhus],
    )
    spec_version(integration, 1, 0)
    with chromium() as browser:
        vendor = log_in(browser, live_server.url, "staff-a")
        vendor.get_by_role("link", name="InfRefs og GDPR").click()
        vendor.get_by_role("link", name="Anmod om en InfRef").click()
        vendor.select_option("#id_it_system", label="Alfa Omsorg")
        vendor.fill("#id_description", "Borgerdata til det nye omsorgssystem.")
        vendor.get_by_role("button", name="Send anmodningen til KOMBIT").click()
        vendor.get_by_text("Det er KOMBITs tur.").wait_for()
        request_url = vendor.url
        screenshot(vendor, "infref-step1-vendor")

        kombit = log_in(browser, live_server.url, "operator")
        kombit.goto(request_url)
        assert kombit.input_value("#id_name") == "FagsystemdefineredeDataRefGDPR1_1"
        kombit.get_by_role("button", name="Tildel InfRef").click()
        kombit.get_by_role("heading", name="FagsystemdefineredeDataRefGDPR1_1").wait_for()

        # The vendor links the assigned InfRef to its integration, then declares.
        vendor.goto(live_server.url + reverse("onboarding:edit", args=[integration.pk]))
        vendor.select_option("#id_infref", label="FagsystemdefineredeDataRefGDPR1_1")
        vendor.get_by_role("button", name="Gem").click()
        vendor.goto(request_url)
        vendor.get_by_role("button", name="Udfyld GDPR-erklæringen").click()
        vendor.fill("#id_purpose", "Overførsel ved systemskifte.")
        vendor.get_by_role("button", name="Gem kladde").click()
        vendor.get_by_text("Kladden er gemt.").wait_for()
        vendor.get_by_role("button", name="Indsend til KOMBIT").click()
        vendor.get_by_text("Besvar dette, før du indsender.").first.wait_for()
        assert vendor.input_value("#id_purpose") == "Overførsel ved systemskifte."

        vendor.get_by_label("Aarhus Kommune", exact=True).check()
        vendor.get_by_label("Beta Journal (Beta Data ApS)").check()
        for field, value in {
            "#id_data_subject_categories": "Borgere i hjemmeplejen.",
            "#id_personal_data_categories": "Navn, adresse, CPR-nummer.",
            "#id_legal_basis_detail": "Serviceloven § 83.",
            "#id_dpa_title": "Databehandleraftale 2026",
            "#id_dpa_signed_on": "2026-03-01",
            "#id_retention": "Efter kommunens regler.",
            "#id_deletion": "Efter hentning.",
            "#id_security_measures": "SFTP og logning.",
            "#id_transfer_volume": "5 MB pr. døgn.",
            "#id_contact_name": "Ada Jensen",
            "#id_contact_email": "ada@alfa.example",
            "#id_signatory_name": "Bodil Alfa",
            "#id_signatory_title": "Direktør",
            "#id_signed_on": "2026-11-20",
        }.items():
            vendor.fill(field, value)
        vendor.check("#id_includes_cpr")
        vendor.get_by_label("Art. 6, stk. 1, litra e: opgave i samfundets interesse").check()
        vendor.select_option("#id_transfer_frequency", "daily")
        assert vendor.input_value("#id_data_specification_version") == "1.0"
        screenshot(vendor, "declaration-form")
        vendor.get_by_role("button", name="Indsend til KOMBIT").click()
        vendor.get_by_text("Version 1 er indsendt og sendt til KOMBIT som PDF.").wait_for()
        screenshot(vendor, "infref-step3-vendor")

        with vendor.expect_download() as download:
            vendor.get_by_role("link", name="Hent PDF").click()
        pdf = PdfReader(download.value.path())
        text = " ".join(page.extract_text() for page in pdf.pages)
        assert "FagsystemdefineredeDataRefGDPR1_1" in text
        assert "Overførsel ved systemskifte." in text

        kombit.goto(request_url)
        kombit.get_by_role("button", name="Markér som oprettet på Serviceplatformen").click()
        kombit.get_by_text("InfRef er markeret som oprettet på Serviceplatformen.").wait_for()
        screenshot(kombit, "infref-step4-kombit")

    assert InfRefRequest.objects.get().step == InfRefRequest.Step.CREATED


def test_a_request_is_withdrawn_through_the_button(live_server, staff_a, system_a):
    with chromium() as browser:
        vendor = log_in(browser, live_server.url, "staff-a")
        # In English: the texts are checked before their Danish translations exist.
        vendor.context.add_cookies(
            [{"name": "django_language", "value": "en", "url": live_server.url}]
        )
        vendor.goto(live_server.url + reverse("gdpr:request_create"))
        vendor.select_option("#id_it_system", label="Alfa Omsorg")
        vendor.fill("#id_description", "Borgerdata til det nye omsorgssystem.")
        vendor.get_by_role("button", name="Send the request to KOMBIT").click()
        vendor.get_by_text("It is KOMBIT's move.").wait_for()

        vendor.get_by_text("Withdraw the request", exact=True).click()
        screenshot(vendor, "infref-withdraw-confirm")
        found = serious(axe_violations(vendor))
        assert not found, format_violations(found)
        vendor.get_by_role("button", name="Yes, withdraw the request").click()
        vendor.get_by_text("The request is withdrawn, and KOMBIT is told by mail.").wait_for()
        screenshot(vendor, "infref-withdrawn")
        found = serious(axe_violations(vendor))
        assert not found, format_violations(found)

        vendor.get_by_role("link", name="InfRefs and GDPR declarations").first.click()
        row = vendor.get_by_role("row").filter(has_text="Alfa Omsorg")
        assert "Withdrawn" in row.inner_text()
        screenshot(vendor, "infref-withdrawn-list")

    request = InfRefRequest.objects.get()
    assert request.withdrawn_by == staff_a
