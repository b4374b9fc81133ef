"""Each party acts in its own role on the onboarding pages, and no page leads nowhere.

The sending vendor edits the integration; the municipality and the vendor register the
data-processing agreement, keep the test record and say yes each for itself; the municipality
and KOMBIT date and comment the tasks their rule gives them; every task says what moves it.
"""

import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import formats, translation
from django.utils.timezone import localtime

from gdpr import workflow
from gdpr.forms import DeclarationForm
from portal.accounts.models import Organisation
from portal.audit.models import AuditEvent
from portal.itsystems.models import ItSystem
from portal.onboarding import bilateral, rules
from portal.onboarding.models import Consent, IntegrationTest, OnboardingTask
from tests.conftest import make_user
from tests.support.clients import english
from tests.support.declarations import complete_answers
from tests.support.engine import ready_integration
from tests.support.pdf import ONE_PAGE
from tests.support.specs import first_spec_version
from transfers.models import Environment, Route

State = OnboardingTask.State
Subject = Consent.Subject


@pytest.fixture
def integration(staff_a, system_a, system_b, aarhus):
    return rules.create_integration(
        name="Alfa Omsorg → Beta Journal",
        sender=system_a,
        receiver=system_b,
        created_by=staff_a,
        municipalities=[aarhus],
    )


@pytest.fixture
def created_infref(integration, staff_a, operator, aarhus, system_b):
    """The sending IT system's InfRef, declared and created on Serviceplatformen, and linked."""
    first_spec_version(integration)
    request = workflow.request_infref(it_system=integration.sender, description="x", user=staff_a)
    infref = workflow.assign_infref(
        request, name="FagsystemdefineredeDataRefGDPR88_1", user=operator
    )
    integration.infref = infref
    integration.save()
    draft = workflow.open_draft(infref, staff_a)
    form = DeclarationForm(complete_answers([aarhus], [system_b]), instance=draft)
    assert form.is_valid(), form.errors
    form.save()
    workflow.submit_declaration(draft, staff_a)
    workflow.mark_created(infref, operator)
    return infref


def task(integration, number, municipality=None) -> OnboardingTask:
    return integration.tasks.get(number=number, municipality=municipality)


def outsider_vendor_user():
    third = Organisation.objects.create(kind="vendor", name="Gamma", cvr="29547181")
    return make_user("gamma-staff", third)


def edit_data(integration, **changes) -> dict:
    data = {
        "name": integration.name,
        "infref": integration.infref_id or "",
        "legal_basis": integration.legal_basis,
        "legal_basis_reviewed_on": "",
    }
    return data | changes


def give(client, integration, subject, party, **extra):
    return client.post(
        reverse("onboarding:consent_give", args=[integration.pk]),
        {"subject": subject, "party": party.pk, **extra},
    )


def register_agreement(client, integration, parties, title="Databehandleraftale 2026"):
    return client.post(
        reverse("onboarding:agreement", args=[integration.pk]),
        {
            "title": title,
            "parties": [p.pk for p in parties],
            "signed_on": "2026-03-01",
            "document": SimpleUploadedFile("aftale.pdf", ONE_PAGE, "application/pdf"),
        },
    )


# --- The integration's edit page --------------------------------------------------------------


class TestEditPage:
    def test_linking_the_infref_moves_tasks_30_and_40(
        self, client_for, staff_a, integration, created_infref
    ):
        client = client_for(staff_a)
        url = reverse("onboarding:edit", args=[integration.pk])
        assert (task(integration, 30).state, task(integration, 40).state) == (
            State.DONE,
            State.DONE,
        )
        assert client.post(url, edit_data(integration, infref="")).status_code == 302
        # Unlinked, the request is still there: 30 is under way, 40 has nothing to follow.
        assert (task(integration, 30).state, task(integration, 40).state) == (
            State.IN_PROGRESS,
            State.NOT_STARTED,
        )
        response = client.post(url, edit_data(integration, infref=created_infref.pk))
        assert response.status_code == 302
        integration.refresh_from_db()
        assert integration.infref == created_infref
        assert (task(integration, 30).state, task(integration, 40).state) == (
            State.DONE,
            State.DONE,
        )
        event = AuditEvent.objects.filter(action=AuditEvent.Action.INTEGRATION_CHANGED).latest("pk")
        assert event.details["changed"] == "infref"
        assert event.actor == staff_a

    def test_the_name_and_legal_basis_are_saved_and_logged(self, client_for, staff_a, integration):
        response = client_for(staff_a).post(
            reverse("onboarding:edit", args=[integration.pk]),
            edit_data(
                integration,
                name="Omdøbt",
                legal_basis="Serviceloven § 83.",
                legal_basis_reviewed_on="2026-02-01",
            ),
        )
        assert response.status_code == 302
        integration.refresh_from_db()
        assert (integration.name, integration.legal_basis_reviewed_on.isoformat()) == (
            "Omdøbt",
            "2026-02-01",
        )
        event = AuditEvent.objects.get(action=AuditEvent.Action.INTEGRATION_CHANGED)
        assert event.details["changed"] == "name, legal_basis, legal_basis_reviewed_on"

    def test_an_infref_of_another_it_system_is_refused(
        self, client_for, staff_a, operator, vendor_a, integration
    ):
        other_system = ItSystem.objects.create(
            uuid=uuid.uuid4(), name="Alfa Økonomi", vendor=vendor_a, is_sender=True
        )
        request = workflow.request_infref(it_system=other_system, description="x", user=staff_a)
        foreign = workflow.assign_infref(
            request, name="FagsystemdefineredeDataRefGDPR99_1", user=operator
        )
        client = client_for(staff_a)
        url = reverse("onboarding:edit", args=[integration.pk])
        assert list(client.get(url).context["form"].fields["infref"].queryset) == []
        response = client.post(url, edit_data(integration, infref=foreign.pk))
        assert response.status_code == 200
        assert response.context["form"].errors["infref"]
        integration.refresh_from_db()
        assert integration.infref is None
        assert not AuditEvent.objects.filter(action=AuditEvent.Action.INTEGRATION_CHANGED).exists()

    def test_a_name_the_sender_already_uses_is_refused(
        self, client_for, staff_a, system_a, system_b, integration
    ):
        rules.create_integration(
            name="Anden", sender=system_a, receiver=system_b, created_by=staff_a
        )
        response = client_for(staff_a).post(
            reverse("onboarding:edit", args=[integration.pk]), edit_data(integration, name="Anden")
        )
        assert response.status_code == 200
        assert response.context["form"].errors
        integration.refresh_from_db()
        assert integration.name == "Alfa Omsorg → Beta Journal"

    def test_only_the_sending_vendor_edits(
        self, client_for, staff_a, staff_b, architect, integration
    ):
        url = reverse("onboarding:edit", args=[integration.pk])
        assert client_for(outsider_vendor_user()).get(url).status_code == 404
        assert client_for(staff_b).get(url).status_code == 403
        assert client_for(architect).post(url, edit_data(integration, name="x")).status_code == 403
        assert client_for(staff_a).get(url).status_code == 200

    def test_the_detail_page_links_the_edit_page_for_the_sending_vendor_only(
        self, client_for, staff_a, staff_b, integration
    ):
        url = reverse("onboarding:detail", args=[integration.pk])
        edit = reverse("onboarding:edit", args=[integration.pk])
        assert edit in client_for(staff_a).get(url).text
        assert edit not in client_for(staff_b).get(url).text


class TestRemoveMunicipality:
    def test_a_municipality_without_a_route_is_removed_with_its_task_and_consents(
        self, client_for, staff_a, integration, odense
    ):
        rules.add_municipality(integration, odense)
        bilateral.give(integration, Subject.NO_AGREEMENT, odense, staff_a)
        response = client_for(staff_a).post(
            reverse("onboarding:remove_municipality", args=[integration.pk, odense.pk])
        )
        assert response.status_code == 302
        assert list(integration.municipalities.values_list("name", flat=True)) == ["Aarhus Kommune"]
        assert not integration.tasks.filter(municipality=odense).exists()
        assert not integration.consents.exists()
        event = AuditEvent.objects.get(action=AuditEvent.Action.INTEGRATION_CHANGED)
        assert event.details["removed_municipality"] == "Odense Kommune"

    def test_a_municipality_with_a_route_stays(
        self, client_for, staff_a, integration, created_infref, aarhus
    ):
        Route.objects.create(
            environment=Environment.EXTERNAL_TEST,
            infref=created_infref,
            sender=integration.sender,
            receiver=integration.receiver,
            municipality=aarhus,
            integration=integration,
        )
        client = english(client_for(staff_a))
        edit = client.get(reverse("onboarding:edit", args=[integration.pk]))
        assert "Has a route, so it cannot be removed." in edit.text
        response = client.post(
            reverse("onboarding:remove_municipality", args=[integration.pk, aarhus.pk]),
            follow=True,
        )
        assert "has a route on the integration and cannot be removed" in response.text
        assert integration.municipalities.filter(pk=aarhus.pk).exists()
        assert integration.tasks.filter(number=70, municipality=aarhus).exists()

    def test_removing_takes_a_post_by_the_sending_vendor(
        self, client_for, staff_b, architect, staff_a, integration, aarhus, odense
    ):
        url = reverse("onboarding:remove_municipality", args=[integration.pk, aarhus.pk])
        assert client_for(staff_a).get(url).status_code == 405
        assert client_for(staff_b).post(url).status_code == 403
        assert client_for(architect).post(url).status_code == 403
        # Odense is not part of the integration: nothing to remove.
        outside = reverse("onboarding:remove_municipality", args=[integration.pk, odense.pk])
        assert client_for(staff_a).post(outside).status_code == 404
        assert integration.municipalities.filter(pk=aarhus.pk).exists()


# --- Tasks, by role --------------------------------------------------------------------------


class TestTasksByRole:
    def test_the_architect_opens_tasks_20_60_and_their_own_70(
        self, client_for, architect, integration, aarhus, odense
    ):
        rules.add_municipality(integration, odense)
        client = client_for(architect)

        def status(number, municipality=None):
            url = reverse("onboarding:task", args=[task(integration, number, municipality).pk])
            return client.get(url).status_code

        assert (status(20), status(60), status(70, aarhus)) == (200, 200, 200)
        assert (status(10), status(70, odense)) == (403, 403)

    def test_the_architect_comments_but_does_not_set_states(
        self, client_for, architect, integration, aarhus
    ):
        client = client_for(architect)
        route = task(integration, 70, aarhus)
        url = reverse("onboarding:task", args=[route.pk])
        assert "state" not in client.get(url).context["form"].fields
        response = client.post(url, {"state": "done", "comment": "Aftalt med Alfa."})
        assert response.status_code == 302
        route.refresh_from_db()
        assert (route.state, route.comment) == (State.NOT_STARTED, "Aftalt med Alfa.")
        ten = reverse("onboarding:task", args=[task(integration, 10).pk])
        assert client.post(ten, {"state": "done"}).status_code == 403
        assert task(integration, 10).state == State.NOT_STARTED

    def test_kombit_comments_on_task_40(self, client_for, operator, integration):
        client = client_for(operator)
        forty = task(integration, 40)
        url = reverse("onboarding:task", args=[forty.pk])
        page = client.get(url)
        assert page.status_code == 200
        assert "state" not in page.context["form"].fields
        response = client.post(url, {"comment": "Oprettes i uge 12.", "due_date": "2026-03-20"})
        assert response.status_code == 302
        forty.refresh_from_db()
        assert (forty.comment, forty.due_date.isoformat(), forty.state) == (
            "Oprettes i uge 12.",
            "2026-03-20",
            State.NOT_STARTED,
        )
        event = AuditEvent.objects.get(action=AuditEvent.Action.TASK_CHANGED)
        assert event.actor == operator
        ten = reverse("onboarding:task", args=[task(integration, 10).pk])
        assert client.get(ten).status_code == 403

    def test_the_state_field_is_for_the_vendor_who_does_the_task(
        self, client_for, staff_a, staff_b, integration, aarhus
    ):
        def fields(user, number, municipality=None):
            url = reverse("onboarding:task", args=[task(integration, number, municipality).pk])
            return set(client_for(user).get(url).context["form"].fields)

        assert "state" in fields(staff_a, 10)
        assert "state" in fields(staff_a, 50)
        assert "state" in fields(staff_a, 70, aarhus)
        assert "state" not in fields(staff_a, 20)
        assert "state" not in fields(staff_a, 60)  # the receiving vendor's task
        assert "state" in fields(staff_b, 60)

    def test_every_task_row_offers_an_update_to_whoever_may_change_it(
        self, client_for, staff_a, architect, operator, integration
    ):
        def updatable(user):
            page = client_for(user).get(reverse("onboarding:detail", args=[integration.pk]))
            return {item["task"].number for item in page.context["checklist"] if item["may_change"]}

        assert updatable(staff_a) == {10, 20, 30, 40, 50, 60, 70}
        assert updatable(architect) == {20, 60, 70}
        assert updatable(operator) == {40}


class TestSignposts:
    def test_each_task_links_to_where_it_is_done(
        self, client_for, staff_a, integration, aarhus, system_a
    ):
        page = client_for(staff_a).get(reverse("onboarding:detail", args=[integration.pk]))
        links = {
            item["task"].number: [url for _label, url in item["links"]]
            for item in page.context["checklist"]
        }
        assert links[30] == [f"{reverse('gdpr:request_create')}?it_system={system_a.pk}"]
        assert links[20] == [
            reverse("onboarding:detail", args=[integration.pk]) + "#bilateral-heading"
        ]
        assert links[50] == [f"{reverse('transfers:account_create')}?it_system={system_a.pk}"]
        route_create = reverse("transfers:route_create")
        order = f"{route_create}?integration={integration.pk}&municipality={aarhus.pk}"
        assert links[70] == [order, order + "&environment=exttest"]
        for urls in links.values():
            for url in urls:
                assert url in page.text.replace("&amp;", "&")

    def test_once_requested_task_30_leads_to_the_request_and_40_too(
        self, client_for, staff_a, operator, integration
    ):
        request = workflow.request_infref(
            it_system=integration.sender, description="x", user=staff_a
        )
        workflow.assign_infref(request, name="FagsystemdefineredeDataRefGDPR77_1", user=operator)
        own = reverse("gdpr:request", args=[request.pk])
        edit = reverse("onboarding:edit", args=[integration.pk])
        page = client_for(staff_a).get(reverse("onboarding:task", args=[task(integration, 30).pk]))
        # Assigned but not linked: the vendor is told where to link it.
        assert [url for _label, url in page.context["links"]] == [own, edit]
        page = client_for(operator).get(reverse("onboarding:task", args=[task(integration, 40).pk]))
        assert [url for _label, url in page.context["links"]] == [own]

    def test_links_a_party_cannot_follow_are_left_out(
        self, client_for, staff_b, architect, integration, system_b
    ):
        for user in (staff_b, architect):
            page = client_for(user).get(reverse("onboarding:detail", args=[integration.pk]))
            links = {item["task"].number: item["links"] for item in page.context["checklist"]}
            assert links[30] == [] and links[70] == []
        page = client_for(staff_b).get(reverse("onboarding:detail", args=[integration.pk]))
        sixty = next(i for i in page.context["checklist"] if i["task"].number == 60)
        assert [url for _label, url in sixty["links"]] == [
            f"{reverse('transfers:account_create')}?it_system={system_b.pk}"
        ]

    def test_the_create_page_preselects_the_sending_it_system(self, client_for, staff_a, system_a):
        page = client_for(staff_a).get(reverse("onboarding:create"), {"sender": system_a.pk})
        assert page.context["form"]["sender"].value() == system_a.pk
        assert f'<option value="{system_a.pk}" selected>' in page.text
        ignored = client_for(staff_a).get(reverse("onboarding:create"), {"sender": "x"})
        assert ignored.status_code == 200
        assert ignored.context["form"]["sender"].value() is None


# --- The agreement, the test and the parties' consents ---------------------------------------


class TestAgreementAndTest:
    def test_the_architect_registers_the_agreement(
        self, client_for, architect, staff_b, integration, aarhus
    ):
        client = client_for(architect)
        url = reverse("onboarding:agreement", args=[integration.pk])
        assert client.get(url).status_code == 200
        assert register_agreement(client, integration, [aarhus]).status_code == 302
        assert integration.processing_agreement.title == "Databehandleraftale 2026"
        # The receiving vendor reads it but is no party to it.
        assert client_for(staff_b).get(url).status_code == 403

    def test_a_changed_agreement_must_be_confirmed_again(
        self, client_for, staff_a, architect, integration, aarhus
    ):
        vendor = integration.sender.vendor
        register_agreement(client_for(staff_a), integration, [aarhus])
        give(client_for(staff_a), integration, Subject.AGREEMENT, vendor)
        give(client_for(architect), integration, Subject.AGREEMENT, aarhus)
        assert integration.consents.count() == 2
        assert task(integration, 20).state == State.DONE
        client = english(client_for(architect))
        url = reverse("onboarding:agreement", args=[integration.pk])
        # Saved as it was: the yeses stand.
        data = {
            "title": "Databehandleraftale 2026",
            "parties": [aarhus.pk],
            "signed_on": "2026-03-01",
        }
        client.post(url, data)
        assert integration.consents.count() == 2
        response = client.post(
            url, data | {"title": "Databehandleraftale 2026, rev. 2"}, follow=True
        )
        assert "must confirm it again" in response.text
        assert not integration.consents.exists()
        assert task(integration, 20).state == State.IN_PROGRESS

    def test_the_architect_keeps_the_test_record_and_accepts_it(
        self, client_for, architect, integration, aarhus
    ):
        client = client_for(architect)
        url = reverse("onboarding:test", args=[integration.pk])
        assert client.get(url).status_code == 200
        assert client.post(url, {"result": "passed", "scope": "Ti borgere"}).status_code == 302
        assert IntegrationTest.objects.get(integration=integration).result == "passed"
        response = give(client, integration, Subject.TEST, aarhus, back="test")
        assert response["Location"] == url
        consent = integration.consents.get()
        assert (consent.organisation, consent.municipality) == (aarhus, aarhus)

    def test_the_test_page_is_for_the_bilateral_parties(
        self, client_for, staff_b, operator, integration
    ):
        url = reverse("onboarding:test", args=[integration.pk])
        assert client_for(staff_b).get(url).status_code == 403
        assert client_for(operator).get(url).status_code == 403
        assert client_for(outsider_vendor_user()).get(url).status_code == 404


class TestConsents:
    def test_each_party_says_yes_for_itself_and_the_page_says_who_and_when(
        self, client_for, staff_a, architect, integration, aarhus
    ):
        vendor = integration.sender.vendor
        assert (
            give(client_for(staff_a), integration, Subject.NO_AGREEMENT, vendor).status_code == 302
        )
        # Neither may answer for the other.
        assert (
            give(client_for(staff_a), integration, Subject.NO_AGREEMENT, aarhus).status_code == 403
        )
        assert (
            give(client_for(architect), integration, Subject.NO_AGREEMENT, vendor).status_code
            == 403
        )
        assert task(integration, 20).state == State.IN_PROGRESS
        give(client_for(architect), integration, Subject.NO_AGREEMENT, aarhus)
        assert task(integration, 20).state == State.NOT_RELEVANT
        by_vendor = integration.consents.get(organisation=vendor)
        by_aarhus = integration.consents.get(organisation=aarhus)
        assert (by_vendor.given_by, by_vendor.municipality) == (staff_a, None)
        assert (by_aarhus.given_by, by_aarhus.municipality) == (architect, aarhus)

        page = english(client_for(staff_a)).get(reverse("onboarding:detail", args=[integration.pk]))
        section = page.text[page.text.index('id="bilateral-heading"') :]
        with translation.override("en"):
            for consent, who in ((by_vendor, "Ada"), (by_aarhus, "architect-aarhus")):
                when = formats.date_format(localtime(consent.given_at), "SHORT_DATETIME_FORMAT")
                assert f"{who}, {when}" in section
        row = next(
            r for r in page.context["consents"][0]["rows"] if r["subject"] == Subject.NO_AGREEMENT
        )
        assert row["holds"]
        assert [cell["may_withdraw"] for cell in row["cells"]] == [True, False]

    def test_a_double_submit_gives_one_consent(self, client_for, staff_a, integration):
        client = client_for(staff_a)
        vendor = integration.sender.vendor
        for _twice in range(2):
            assert give(client, integration, Subject.NO_AGREEMENT, vendor).status_code == 302
        assert integration.consents.count() == 1
        assert AuditEvent.objects.filter(action=AuditEvent.Action.CONSENT_GIVEN).count() == 1

    def test_a_refused_yes_says_why(self, client_for, staff_a, integration, aarhus):
        client = english(client_for(staff_a))
        vendor = integration.sender.vendor
        response = give(client, integration, Subject.AGREEMENT, vendor)
        response = client.get(response["Location"])
        assert "Register the data-processing agreement before confirming it." in response.text
        give(client, integration, Subject.NO_AGREEMENT, vendor)
        assert register_agreement(client, integration, [aarhus]).status_code == 302
        response = client.post(
            reverse("onboarding:consent_give", args=[integration.pk]),
            {"subject": Subject.AGREEMENT, "party": vendor.pk},
            follow=True,
        )
        assert "already said the opposite" in response.text
        assert list(integration.consents.values_list("subject", flat=True)) == [
            Subject.NO_AGREEMENT
        ]

    def test_a_party_withdraws_its_yes(self, client_for, architect, integration, aarhus):
        client = client_for(architect)
        give(client, integration, Subject.NO_AGREEMENT, aarhus)
        response = client.post(
            reverse("onboarding:consent_withdraw", args=[integration.pk]),
            {"subject": Subject.NO_AGREEMENT, "party": aarhus.pk},
        )
        assert response.status_code == 302
        assert not integration.consents.exists()
        assert AuditEvent.objects.filter(action=AuditEvent.Action.CONSENT_WITHDRAWN).count() == 1

    def test_who_may_post_a_consent(self, client_for, staff_b, operator, integration):
        url = reverse("onboarding:consent_give", args=[integration.pk])
        data = {"subject": Subject.NO_AGREEMENT, "party": integration.sender.vendor_id}
        assert client_for(staff_b).post(url, data).status_code == 403
        assert client_for(operator).post(url, data).status_code == 403
        assert client_for(outsider_vendor_user()).post(url, data).status_code == 404
        assert client_for(staff_b).get(url).status_code == 405
        assert not integration.consents.exists()


# --- Readiness per environment ----------------------------------------------------------------


class TestReadinessPerEnvironment:
    def test_the_detail_page_shows_both_environments(self, client_for, staff_a, integration):
        page = english(client_for(staff_a)).get(reverse("onboarding:detail", args=[integration.pk]))
        [row] = page.context["readiness"]
        assert not row["exttest"].ready and not row["production"].ready
        section = page.text[
            page.text.index('id="readiness-heading"') : page.text.index('id="tasks-heading"')
        ]
        assert "External test" in section and "Production" in section
        assert "The integration is not linked to its InfRef yet." in section
        assert "Task 70 (the SFTP route) is not done for Aarhus Kommune." in section

    def test_a_ready_integration_is_ready_in_both(
        self, client_for, staff_a, operator, system_a, system_b, aarhus
    ):
        ready = ready_integration(
            staff=staff_a,
            operator=operator,
            sender=system_a,
            receiver=system_b,
            municipalities=[aarhus],
        )
        page = english(client_for(staff_a)).get(reverse("onboarding:detail", args=[ready.pk]))
        [row] = page.context["readiness"]
        assert row["exttest"].ready and row["production"].ready
        assert "ready for production sends" in page.text

    def test_the_architect_reads_only_their_own_municipality(
        self, client_for, architect, integration, odense
    ):
        rules.add_municipality(integration, odense)
        page = client_for(architect).get(reverse("onboarding:detail", args=[integration.pk]))
        assert [row["municipality"].name for row in page.context["readiness"]] == ["Aarhus Kommune"]
        assert [block["municipality"].name for block in page.context["consents"]] == [
            "Aarhus Kommune"
        ]

    def test_the_municipality_overview_shows_both_environments(
        self, client_for, architect, integration
    ):
        page = english(client_for(architect)).get(reverse("onboarding:municipality"))
        [row] = page.context["sections"][0]["rows"]
        assert row["integration"] == integration
        assert not row["exttest"].ready and not row["production"].ready
        assert "External test" in page.text and "Production" in page.text
