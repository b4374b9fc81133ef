"""Integrations, their tasks 10–70 and the rules between them (seed, chapter 5)."""

from datetime import date, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone, translation

from gdpr import workflow
from portal.onboarding import bilateral, rules
from portal.onboarding.models import Consent, IntegrationTest, OnboardingTask
from portal.onboarding.reminders import weekly_digest
from portal.outbox.models import OutgoingMail
from tests.conftest import make_user
from tests.support.declarations import complete_answers
from tests.support.pdf import ONE_PAGE
from tests.support.specs import first_spec_version

State = OnboardingTask.State


@pytest.fixture
def integration(staff_a, system_a, system_b, aarhus):
    return rules.create_integration(
        name="Alfa Omsorg → Beta Journal",
        sender=system_a,
        receiver=system_b,
        created_by=staff_a,
        municipalities=[aarhus],
        legal_basis="Serviceloven § 83.",
        legal_basis_reviewed_on=timezone.localdate(),
    )


@pytest.fixture
def declared_integration(integration, staff_a, operator, aarhus, system_b):
    from gdpr.forms import DeclarationForm

    first_spec_version(integration)  # the declaration names version 1.0
    request = workflow.request_infref(it_system=integration.sender, description="x", user=staff_a)
    infref = workflow.assign_infref(
        request, name="FagsystemdefineredeDataRefGDPR77_1", user=operator
    )
    integration.infref = infref
    integration.save()
    draft = workflow.open_draft(infref, staff_a)
    form = DeclarationForm(complete_answers([aarhus], [system_b]), instance=draft)
    assert form.is_valid(), form.errors
    form.save()
    workflow.submit_declaration(draft, staff_a)
    return integration


def task(integration, number, municipality=None) -> OnboardingTask:
    return integration.tasks.get(number=number, municipality=municipality)


def settle(integration, *numbers, user=None):
    for number in numbers:
        for one in integration.tasks.filter(number=number):
            rules.set_state(one, State.DONE, user)


def test_an_integration_gets_tasks_10_to_60_and_70_per_municipality(integration, aarhus, odense):
    numbers = sorted((t.number, t.municipality_id) for t in integration.tasks.all())
    assert numbers == [
        (10, None),
        (20, None),
        (30, None),
        (40, None),
        (50, None),
        (60, None),
        (70, aarhus.pk),
    ]
    rules.add_municipality(integration, odense)
    rules.add_municipality(integration, odense)  # joining twice changes nothing
    assert integration.tasks.filter(number=70).count() == 2
    assert all(t.state == State.NOT_STARTED for t in integration.tasks.all())


def test_only_municipalities_can_join(integration, vendor_b):
    with pytest.raises(ValidationError):
        rules.add_municipality(integration, vendor_b)


@pytest.mark.parametrize("number", [20, 30, 40])
def test_tasks_that_follow_their_records_are_not_set_by_hand(integration, operator, number):
    with pytest.raises(ValidationError) as error:
        rules.set_state(task(integration, number), State.DONE, operator)
    assert [e.code for e in error.value.error_list] == ["mirrored"]
    assert task(integration, number).state == State.NOT_STARTED


def test_task_40_waits_for_task_30(integration):
    # Task 40 follows its records, but still says what it waits for (the reminders read it).
    assert task(integration, 40).waiting_for() == [task(integration, 30)]
    assert task(integration, 30).waiting_for() == []


def test_task_70_waits_for_50_and_60_and_not_relevant_counts_as_settled(
    integration, staff_a, aarhus
):
    route = task(integration, 70, aarhus)
    with pytest.raises(ValidationError, match="opgave 50 og 60"):
        rules.set_state(route, State.DONE, staff_a)
    rules.set_state(task(integration, 50), State.DONE, staff_a)
    with pytest.raises(ValidationError, match="opgave 60"):
        rules.set_state(route, State.IN_PROGRESS, staff_a)
    rules.set_state(task(integration, 60), State.NOT_RELEVANT, staff_a)
    rules.set_state(route, State.DONE, staff_a, comment="Bestilt i Digitaliseringskataloget.")
    route.refresh_from_db()
    assert (route.state, route.changed_by, route.comment) == (
        State.DONE,
        staff_a,
        "Bestilt i Digitaliseringskataloget.",
    )
    assert route.changed_at is not None


def test_tasks_30_and_40_follow_the_infref_request(declared_integration, operator, staff_a):
    integration = declared_integration
    assert task(integration, 30).state == State.DONE
    assert task(integration, 40).state == State.NOT_STARTED
    workflow.mark_created(integration.infref, operator)
    assert task(integration, 40).state == State.DONE
    rules.data_specification_changed(integration, "2.0", backward_compatible=False)
    assert task(integration, 30).state == State.IN_PROGRESS
    declaration = integration.infref.current_declaration()
    assert declaration.is_outdated
    assert "version 2.0" in declaration.outdated_reason


def test_readiness_names_every_blocking_condition(integration, aarhus):
    with translation.override("en"):
        blockers = rules.readiness(integration, aarhus).blockers
    assert "The integration is not linked to its InfRef yet." in blockers
    assert "Task 10 (Write the data specification) is not done." in blockers
    assert "Task 70 (the SFTP route) is not done for Aarhus Kommune." in blockers
    assert "No GDPR declaration has been submitted for the InfRef." in blockers
    assert "The test before production has not passed, nor been agreed to be skipped." in blockers


def agree(integration, subject, *parties, user):
    for party in parties:
        bilateral.give(integration, subject, party, user)


def test_readiness_when_everything_is_in_place(
    declared_integration, staff_a, operator, aarhus, odense
):
    integration = declared_integration
    vendor = integration.sender.vendor
    workflow.mark_created(integration.infref, operator)
    settle(integration, 10, 50, 60, 70, user=staff_a)
    agree(integration, Consent.Subject.NO_AGREEMENT, vendor, aarhus, user=staff_a)
    assert rules.readiness(integration, aarhus, environment="exttest").ready
    assert not rules.readiness(integration, aarhus).ready  # no accepted test yet
    IntegrationTest.objects.create(integration=integration, result="passed")
    assert not rules.readiness(integration, aarhus).ready  # passed, but not accepted by both
    agree(integration, Consent.Subject.TEST, vendor, aarhus, user=staff_a)
    assert rules.readiness(integration, aarhus).ready
    with translation.override("en"):
        assert (
            "Odense Kommune is not part of the integration."
            in rules.readiness(integration, odense).blockers
        )
        rules.data_specification_changed(integration, "2.0", backward_compatible=False)
        assert rules.readiness(integration, aarhus).blockers == [
            "Task 30 (Order the InfRef and submit the GDPR declaration) is not done.",
            "The GDPR declaration is outdated: a new one must be submitted.",
        ]


def test_actionable_tasks_are_mailed_to_their_executors_once(
    django_capture_on_commit_callbacks, staff_a, system_a, system_b, aarhus, operator
):
    make_user("beta-staff", system_b.vendor)
    with django_capture_on_commit_callbacks(execute=True):
        integration = rules.create_integration(
            name="Mail",
            sender=system_a,
            receiver=system_b,
            created_by=staff_a,
            municipalities=[aarhus],
        )
    mails = {tuple(m.to): m for m in OutgoingMail.objects.all()}
    assert set(mails) == {(staff_a.email,), ("beta-staff@example.invalid",)}
    alfa = mails[(staff_a.email,)]
    assert (
        "Opgave 10" in alfa.body and "Opgave 70" not in alfa.body and "Opgave 40" not in alfa.body
    )
    assert "Opgave 60" in mails[("beta-staff@example.invalid",)].body

    with django_capture_on_commit_callbacks(execute=True):
        rules.set_state(task(integration, 10), State.IN_PROGRESS, staff_a)
    assert OutgoingMail.objects.count() == 2  # nothing new became actionable

    with django_capture_on_commit_callbacks(execute=True):
        settle(integration, 50, 60, user=staff_a)
    route_mail = OutgoingMail.objects.latest("created")
    assert "Opgave 70" in route_mail.body and "Aarhus Kommune" in route_mail.body


def test_the_weekly_digest_lists_overdue_tasks(integration, staff_a):
    late = task(integration, 10)
    late.due_date = date.today() - timedelta(days=3)
    late.save()
    assert weekly_digest() == 1
    digest = OutgoingMail.objects.get(subject__contains="overskredet")
    assert digest.to == [staff_a.email]
    assert "Skriv dataspecifikationen" in digest.body


class TestPages:
    def test_the_vendor_sees_the_checklist_and_readiness(self, client_for, staff_a, integration):
        page = client_for(staff_a).get(reverse("onboarding:detail", args=[integration.pk]))
        text = page.content.decode()
        assert "Opret SFTP-bruger og IT-system (afsender)" in text
        assert "ikke klar" in text

    def test_a_task_update_refused_by_a_dependency_says_why(
        self, client_for, staff_a, integration, aarhus
    ):
        route = task(integration, 70, aarhus)
        response = client_for(staff_a).post(
            reverse("onboarding:task", args=[route.pk]), {"state": "done", "comment": ""}
        )
        assert (
            "Opgave 70 kan først begynde, når opgave 50 og 60 er udført."
            in response.content.decode()
        )
        route.refresh_from_db()
        assert route.state == State.NOT_STARTED

    def test_tasks_that_follow_the_infref_cannot_be_set_by_hand(
        self, client_for, staff_a, integration
    ):
        url = reverse("onboarding:task", args=[task(integration, 30).pk])
        client = client_for(staff_a)
        assert "state" not in client.get(url).context["form"].fields
        response = client.post(url, {"state": "done", "comment": "Bestilt."})
        assert response.status_code == 302
        followed = task(integration, 30)
        assert (followed.state, followed.comment) == (State.NOT_STARTED, "Bestilt.")

    def test_the_receiving_vendor_updates_task_60_only(self, client_for, system_b, integration):
        client = client_for(make_user("beta", system_b.vendor))
        assert (
            client.get(reverse("onboarding:task", args=[task(integration, 60).pk])).status_code
            == 200
        )
        assert (
            client.get(reverse("onboarding:task", args=[task(integration, 10).pk])).status_code
            == 403
        )

    def test_another_vendor_and_municipality_find_nothing(
        self, client_for, odense, vendor_b, integration
    ):
        from portal.accounts.models import Organisation

        third = Organisation.objects.create(kind="vendor", name="Gamma", cvr="29547181")
        for user in (make_user("gamma", third), make_user("odense-arch", odense)):
            client = client_for(user)
            assert (
                client.get(reverse("onboarding:detail", args=[integration.pk])).status_code == 404
            )
            assert integration.name not in client.get(reverse("onboarding:list")).content.decode()

    def test_the_municipal_architect_sees_what_is_lacking(self, client_for, architect, integration):
        text = client_for(architect).get(reverse("onboarding:municipality")).content.decode()
        assert integration.name in text
        assert "Opgave 70 (SFTP-ruten) er ikke udført for Aarhus Kommune." in text

    def test_the_matrix_has_a_row_per_municipality_and_integration(
        self, client_for, staff_a, integration, odense
    ):
        rules.add_municipality(integration, odense)
        rows = client_for(staff_a).get(reverse("onboarding:matrix")).context["rows"]
        assert [(r["municipality"].name, len(r["cells"])) for r in rows] == [
            ("Aarhus Kommune", 7),
            ("Odense Kommune", 7),
        ]

    def test_a_vendor_creates_an_integration(
        self, client_for, staff_a, system_a, system_b, aarhus, odense
    ):
        response = client_for(staff_a).post(
            reverse("onboarding:create"),
            {
                "name": "Ny",
                "sender": system_a.pk,
                "receiver": system_b.pk,
                "municipalities": [aarhus.pk, odense.pk],
            },
        )
        assert response.status_code == 302
        assert OnboardingTask.objects.filter(integration__name="Ny").count() == 8

    def test_a_stale_legal_basis_review_is_flagged(self, client_for, staff_a, integration):
        integration.legal_basis_reviewed_on = timezone.localdate() - timedelta(days=400)
        integration.save()
        text = client_for(staff_a).get(reverse("onboarding:list")).content.decode()
        assert "Gennemgang påkrævet" in text

    def test_a_test_is_accepted_only_when_passed_or_skipped(self, client_for, staff_a, integration):
        client = client_for(staff_a)
        url = reverse("onboarding:test", args=[integration.pk])
        accept = {"party": integration.sender.vendor_id, "subject": Consent.Subject.TEST}
        give = reverse("onboarding:consent_give", args=[integration.pk])
        client.post(url, {"result": "failed"})
        client.post(give, accept)
        assert not integration.consents.exists()
        client.post(url, {"result": "passed", "scope": "Tre kommuner"})
        client.post(give, accept)
        consent = integration.consents.get()
        assert (consent.subject, consent.given_by) == (Consent.Subject.TEST, staff_a)
        client.post(url, {"result": "failed", "scope": "Tre kommuner"})
        assert IntegrationTest.objects.get().result == "failed"
        assert not integration.consents.exists()  # a changed result is accepted anew


class TestProcessingAgreement:
    PDF = ONE_PAGE

    def _post(self, client, integration, parties, upload):
        from django.core.files.uploadedfile import SimpleUploadedFile

        return client.post(
            reverse("onboarding:agreement", args=[integration.pk]),
            {
                "title": "Databehandleraftale 2026",
                "parties": [p.pk for p in parties],
                "signed_on": "2026-03-01",
                "document": SimpleUploadedFile(*upload),
            },
        )

    def test_the_signed_agreement_is_kept_with_its_checksum(
        self, client_for, staff_a, integration, aarhus
    ):
        import hashlib

        client = client_for(staff_a)
        response = self._post(
            client, integration, [aarhus], ("aftale.pdf", self.PDF, "application/pdf")
        )
        assert response.status_code == 302
        agreement = integration.processing_agreement
        assert agreement.document_sha256 == hashlib.sha256(self.PDF).hexdigest()
        download = client.get(reverse("onboarding:agreement_document", args=[agreement.pk]))
        assert b"".join(download.streaming_content) == self.PDF

    def test_a_file_that_is_not_a_pdf_or_word_document_is_refused(
        self, client_for, staff_a, integration, aarhus
    ):
        png = b"\x89PNG\r\n\x1a\n" + b"\0" * 100
        response = self._post(
            client_for(staff_a), integration, [aarhus], ("aftale.pdf", png, "application/pdf")
        )
        assert response.status_code == 200
        assert "PNG" in response.content.decode()
        from portal.onboarding.models import ProcessingAgreement

        assert not ProcessingAgreement.objects.exists()

    def test_only_the_parties_can_download_it(
        self, client_for, staff_a, staff_b, integration, aarhus
    ):
        from portal.accounts.models import Organisation

        upload = ("aftale.pdf", self.PDF, "application/pdf")
        self._post(client_for(staff_a), integration, [aarhus], upload)
        url = reverse("onboarding:agreement_document", args=[integration.processing_agreement.pk])
        outsider = Organisation.objects.create(kind="vendor", name="Gamma", cvr="29547181")
        assert client_for(make_user("gamma-staff", outsider)).get(url).status_code == 404
        # The receiving vendor is a party to the integration and may read it.
        assert client_for(staff_b).get(url).status_code == 200
