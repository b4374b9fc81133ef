"""The four steps of an InfRef request, who may take each, and what the page says."""

import uuid

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from gdpr import workflow
from gdpr.forms import DeclarationForm
from gdpr.models import DeclarationDownload, GdprDeclaration, InfRef, InfRefRequest
from portal.audit.models import AuditEvent
from portal.itsystems.models import ItSystem
from portal.onboarding.models import Integration
from portal.onboarding.rules import create_integration
from portal.outbox.models import OutgoingMail
from tests.support.declarations import complete_answers
from tests.support.specs import spec_version


@pytest.fixture
def requested(client_for, staff_a, system_a) -> InfRefRequest:
    client_for(staff_a).post(
        reverse("gdpr:request_create"),
        {"it_system": system_a.pk, "description": "Borgerdata til det nye omsorgssystem."},
    )
    return InfRefRequest.objects.get()


@pytest.fixture
def integration(system_a, system_b, staff_a, aarhus) -> Integration:
    """The integration the InfRef is for, with version 1.0 of its data specification."""
    integration = create_integration(
        name="Alfa Omsorg til Beta Journal",
        sender=system_a,
        receiver=system_b,
        created_by=staff_a,
        municipalities=[aarhus],
        legal_basis="Serviceloven § 83.",
    )
    spec_version(integration, 1, 0)
    return integration


@pytest.fixture
def assigned(requested, operator, integration) -> InfRefRequest:
    workflow.assign_infref(requested, name=workflow.proposed_infref_name(), user=operator)
    requested.refresh_from_db()
    integration.infref = requested.infref
    integration.save()
    return requested


@pytest.fixture
def declared(assigned, staff_a, aarhus, system_b) -> GdprDeclaration:
    draft = workflow.open_draft(assigned.infref, staff_a)
    form = DeclarationForm(complete_answers([aarhus], [system_b]), instance=draft)
    assert form.is_valid(), form.errors
    form.save()
    return workflow.submit_declaration(draft, staff_a)


def page(client, name, *args) -> str:
    response = client.get(reverse(name, args=args))
    assert response.status_code == 200
    return response.content.decode()


def test_step_1_vendor_requests_and_the_mail_goes_to_kombit(requested, system_a, staff_a):
    assert requested.step == InfRefRequest.Step.REQUESTED
    assert requested.requested_by == staff_a
    mail = requested.request_mail
    assert mail.to == ["kdi@kombit.dk"]
    assert mail.addressed_to_kombit
    assert str(system_a.uuid) in mail.body
    assert "Borgerdata til det nye omsorgssystem." in mail.body
    assert mail.subject.startswith("Anmodning om InfRef")


def test_only_sending_systems_of_the_own_vendor_can_be_requested_for(
    client_for, staff_a, system_b, vendor_a
):
    response = client_for(staff_a).post(
        reverse("gdpr:request_create"), {"it_system": system_b.pk, "description": "x"}
    )
    assert response.context["form"].errors["it_system"]
    assert not InfRefRequest.objects.exists()


def test_step_1_page_says_it_is_kombits_move(client_for, staff_a, requested):
    text = page(client_for(staff_a), "gdpr:request", requested.pk)
    assert "Det er KOMBITs tur." in text
    assert "Tildel InfRef" not in text


def test_step_2_kombit_is_offered_the_next_free_number_and_assigns(
    client_for, operator, requested, staff_a
):
    client = client_for(operator)
    assert 'value="FagsystemdefineredeDataRefGDPR1_1"' in page(client, "gdpr:request", requested.pk)
    response = client.post(
        reverse("gdpr:request_assign", args=[requested.pk]),
        {"name": "FagsystemdefineredeDataRefGDPR1_1"},
    )
    assert response.status_code == 302
    requested.refresh_from_db()
    assert requested.infref.name == "FagsystemdefineredeDataRefGDPR1_1"
    assert requested.infref.assigned_by == operator
    assert requested.step == InfRefRequest.Step.ASSIGNED
    told = OutgoingMail.objects.get(subject__contains="InfRef tildelt")
    assert told.to == [staff_a.email]


@pytest.fixture
def second_system(vendor_a) -> ItSystem:
    return ItSystem.objects.create(
        uuid=uuid.uuid4(), name="Alfa Sag", vendor=vendor_a, is_sender=True
    )


def test_a_malformed_or_taken_infref_is_refused_and_nothing_is_saved(
    client_for, operator, staff_a, assigned, second_system
):
    other = workflow.request_infref(it_system=second_system, description="y", user=staff_a)
    client = client_for(operator)
    for name, message in [
        ("FagsystemdefineredeDataRefGDPR02_1", "uden foranstillede nuller"),
        (assigned.infref.name, "er allerede tildelt"),
    ]:
        response = client.post(reverse("gdpr:request_assign", args=[other.pk]), {"name": name})
        assert response.status_code == 200
        assert message in response.content.decode()
    other.refresh_from_db()
    assert other.infref is None


def test_a_request_gets_one_infref_only(operator, assigned):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="har allerede"):
        workflow.assign_infref(assigned, name="FagsystemdefineredeDataRefGDPR9_1", user=operator)


def test_vendors_cannot_take_kombits_steps(client_for, staff_a, requested, declared):
    client = client_for(staff_a)
    response = client.post(
        reverse("gdpr:request_assign", args=[requested.pk]),
        {"name": "FagsystemdefineredeDataRefGDPR9_1"},
    )
    assert response.status_code == 403
    assert client.post(reverse("gdpr:request_created", args=[requested.pk])).status_code == 403
    requested.refresh_from_db()
    assert requested.step == InfRefRequest.Step.DECLARED


def test_step_3_the_vendor_drafts_saves_resumes_and_submits(
    client_for, staff_a, assigned, aarhus, system_b
):
    client = client_for(staff_a)
    response = client.post(reverse("gdpr:declaration_open", args=[assigned.pk]))
    draft = GdprDeclaration.objects.get()
    assert response["Location"] == reverse("gdpr:declaration_edit", args=[draft.pk])
    assert (draft.version, draft.status) == (1, "draft")

    partial = {"purpose": "Kun formålet indtil videre.", "save": "1"}
    client.post(reverse("gdpr:declaration_edit", args=[draft.pk]), partial)
    draft.refresh_from_db()
    assert draft.purpose == "Kun formålet indtil videre."

    # Resuming opens the same draft, not a new version.
    client.post(reverse("gdpr:declaration_open", args=[assigned.pk]))
    assert GdprDeclaration.objects.count() == 1

    response = client.post(
        reverse("gdpr:declaration_edit", args=[draft.pk]), {**partial, "submit": "1"}
    )
    assert response.status_code == 200
    assert "Besvar dette, før du indsender." in response.content.decode()
    draft.refresh_from_db()
    assert draft.status == "draft"

    data = {**complete_answers([aarhus], [system_b]), "submit": "1"}
    response = client.post(reverse("gdpr:declaration_edit", args=[draft.pk]), data)
    assert response["Location"] == reverse("gdpr:request", args=[assigned.pk])
    draft.refresh_from_db()
    assert draft.status == "submitted"
    assert draft.submitted_by == staff_a and draft.submitted_at
    assert draft.content_sha256 == draft.compute_sha256()
    mail = draft.submission_mail
    assert mail.to == ["kdi@kombit.dk"]
    attachment = mail.attachments.get()
    assert attachment.content_type == "application/pdf"
    assert bytes(attachment.content).startswith(b"%PDF")
    assigned.refresh_from_db()
    assert assigned.step == InfRefRequest.Step.DECLARED


def test_art_9_answers_must_agree_with_the_special_categories(
    client_for, staff_a, assigned, aarhus, system_b
):
    draft = workflow.open_draft(assigned.infref, staff_a)
    data = {**complete_answers([aarhus], [system_b]), "legal_basis_art9": [], "submit": "1"}
    response = client_for(staff_a).post(reverse("gdpr:declaration_edit", args=[draft.pk]), data)
    assert "artikel 9" in response.content.decode()
    draft.refresh_from_db()
    assert draft.status == "draft"


def test_a_submitted_version_cannot_be_edited_or_submitted_again(
    client_for, staff_a, declared, aarhus, system_b
):
    client = client_for(staff_a)
    response = client.get(reverse("gdpr:declaration_edit", args=[declared.pk]))
    assert response["Location"] == reverse("gdpr:declaration", args=[declared.pk])
    data = {**complete_answers([aarhus], [system_b]), "purpose": "Ændret", "submit": "1"}
    client.post(reverse("gdpr:declaration_edit", args=[declared.pk]), data)
    declared.refresh_from_db()
    assert declared.purpose != "Ændret"
    assert OutgoingMail.objects.filter(subject__startswith="GDPR-erklæring").count() == 1
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="allerede"):
        workflow.submit_declaration(declared, staff_a)


def test_the_model_itself_keeps_submitted_versions_unchanged(declared, odense):
    from gdpr.models import DeclarationLocked

    declared.purpose = "Omskrevet"
    with pytest.raises(DeclarationLocked):
        declared.save()
    with pytest.raises(DeclarationLocked), transaction.atomic():
        declared.controllers.add(odense)
    declared.refresh_from_db()
    assert declared.controllers.count() == 1


def test_step_4_kombit_marks_the_infref_created(client_for, operator, declared):
    request = declared.infref.request
    client = client_for(operator)
    assert "Markér som oprettet på Serviceplatformen" in page(client, "gdpr:request", request.pk)
    client.post(reverse("gdpr:request_created", args=[request.pk]))
    request.refresh_from_db()
    assert request.step == InfRefRequest.Step.CREATED
    assert request.infref.created_on_serviceplatform_by == operator
    response = client.post(reverse("gdpr:request_created", args=[request.pk]), follow=True)
    assert "allerede markeret som oprettet" in response.content.decode()


def test_step_4_needs_a_submitted_declaration(client_for, operator, assigned):
    response = client_for(operator).post(
        reverse("gdpr:request_created", args=[assigned.pk]), follow=True
    )
    assert "ingen indsendt GDPR-erklæring" in response.content.decode()
    assigned.refresh_from_db()
    assert assigned.step == InfRefRequest.Step.ASSIGNED


def test_a_new_version_supersedes_the_old_and_the_history_stays_readable(
    client_for, staff_a, declared, aarhus, system_b, integration
):
    spec_version(integration, 1, 1)
    client = client_for(staff_a)
    client.post(reverse("gdpr:declaration_open", args=[declared.infref.request.pk]))
    second = GdprDeclaration.objects.get(status="draft")
    assert second.version == 2
    assert second.purpose == declared.purpose  # starts from the previous answers
    assert list(second.controllers.all()) == [aarhus]
    data = {**complete_answers([aarhus], [system_b]), "data_specification_version": "1.1"}
    client.post(reverse("gdpr:declaration_edit", args=[second.pk]), {**data, "submit": "1"})
    declared.refresh_from_db()
    second.refresh_from_db()
    assert (declared.status, second.status) == ("superseded", "submitted")
    assert declared.infref.current_declaration() == second
    old = page(client, "gdpr:declaration", declared.pk)
    assert "Erstattet" in old and declared.purpose in old
    mail = second.submission_mail
    assert "erstatter version 1" in mail.body


def test_an_outdated_declaration_is_said_plainly_and_a_new_one_clears_it(
    client_for, staff_a, declared, aarhus, system_b, integration
):
    workflow.mark_outdated(declared.infref, "Dataspecifikationen er nu version 2.0.")
    spec_version(integration, 2, 0)
    client = client_for(staff_a)
    text = page(client, "gdpr:request", declared.infref.request.pk)
    assert "Forældet: en ny GDPR-erklæring er påkrævet" in text
    assert "Dataspecifikationen er nu version 2.0." in text
    assert "Afsendelser på denne InfRef er blokeret" in text
    client.post(reverse("gdpr:declaration_open", args=[declared.infref.request.pk]))
    second = GdprDeclaration.objects.get(status="draft")
    data = {**complete_answers([aarhus], [system_b]), "data_specification_version": "2.0"}
    client.post(reverse("gdpr:declaration_edit", args=[second.pk]), {**data, "submit": "1"})
    current = declared.infref.current_declaration()
    assert current == second and not current.is_outdated


class TestWhoSeesWhat:
    def test_another_vendor_finds_nothing(self, client_for, staff_b, declared):
        client = client_for(staff_b)
        request = declared.infref.request
        for name, pk in [
            ("gdpr:request", request.pk),
            ("gdpr:declaration", declared.pk),
            ("gdpr:declaration_pdf", declared.pk),
            ("gdpr:declaration_edit", declared.pk),
        ]:
            assert client.get(reverse(name, args=[pk])).status_code == 404
        assert client.post(reverse("gdpr:declaration_open", args=[request.pk])).status_code == 404
        assert request.it_system.name not in page(client, "gdpr:requests")

    def test_the_controlling_municipality_reads_and_downloads(
        self, client_for, architect, declared
    ):
        client = client_for(architect)
        assert declared.purpose in page(client, "gdpr:declaration", declared.pk)
        response = client.get(reverse("gdpr:declaration_pdf", args=[declared.pk]))
        assert response.status_code == 200
        assert response["Content-Type"] == "application/pdf"
        assert DeclarationDownload.objects.get().user == architect

    def test_another_municipality_finds_nothing(self, client_for, odense, declared):
        from tests.conftest import make_user

        client = client_for(make_user("architect-odense", odense))
        assert client.get(reverse("gdpr:declaration", args=[declared.pk])).status_code == 404
        assert client.get(reverse("gdpr:declaration_pdf", args=[declared.pk])).status_code == 404

    def test_drafts_stay_with_the_vendor(self, client_for, operator, architect, staff_a, declared):
        draft = workflow.open_draft(declared.infref, staff_a)
        for user in (operator, architect):
            assert (
                client_for(user).get(reverse("gdpr:declaration", args=[draft.pk])).status_code
                == 404
            )

    def test_kombit_reads_submitted_declarations_but_cannot_edit(
        self, client_for, operator, declared
    ):
        client = client_for(operator)
        assert client.get(reverse("gdpr:declaration", args=[declared.pk])).status_code == 200
        assert client.get(reverse("gdpr:declaration_pdf", args=[declared.pk])).status_code == 200

    def test_every_download_is_logged(self, client_for, staff_a, declared):
        client = client_for(staff_a)
        for _ in range(2):
            client.get(reverse("gdpr:declaration_pdf", args=[declared.pk]))
        assert DeclarationDownload.objects.filter(user=staff_a, declaration=declared).count() == 2


def test_renaming_a_party_later_does_not_change_a_submitted_declaration(
    client_for, staff_a, declared, vendor_a, aarhus
):
    sha = declared.content_sha256
    vendor_a.name = "Alfa Software Holding A/S"
    vendor_a.save()
    aarhus.name = "Aarhus Kommune (omdøbt)"
    aarhus.save()
    declared.refresh_from_db()
    assert declared.compute_sha256() == sha
    assert declared.content()["processor"]["name"] == "Alfa Software A/S"
    text = page(client_for(staff_a), "gdpr:declaration", declared.pk)
    assert "Alfa Software A/S" in text and "omdøbt" not in text
    response = client_for(staff_a).get(reverse("gdpr:declaration_pdf", args=[declared.pk]))
    assert response.status_code == 200


# Once per IT system, and withdrawable while KOMBIT has not assigned the InfRef (issue 16).


def kombit_mails() -> int:
    return OutgoingMail.objects.filter(addressed_to_kombit=True).count()


def test_a_second_request_is_refused_with_a_link_to_the_first_and_nothing_is_mailed(
    client, client_for, staff_a, requested, system_a
):
    client.cookies["django_language"] = "en"
    response = client_for(staff_a).post(
        reverse("gdpr:request_create"), {"it_system": system_a.pk, "description": "Igen."}
    )
    assert response.status_code == 200
    [error] = response.context["form"].errors["it_system"]
    assert error.startswith("Alfa Omsorg already has an open InfRef request, made ")
    assert f'href="{reverse("gdpr:request", args=[requested.pk])}"' in response.text
    assert InfRefRequest.objects.get() == requested
    assert kombit_mails() == 1


def test_an_assigned_infref_refuses_a_second_request_by_its_name(
    client_for, staff_a, assigned, system_a
):
    response = client_for(staff_a).post(
        reverse("gdpr:request_create"), {"it_system": system_a.pk, "description": "Igen."}
    )
    [error] = response.context["form"].errors["it_system"]
    assert assigned.infref.name in error
    assert f'href="{reverse("gdpr:request", args=[assigned.pk])}"' in response.text
    assert InfRefRequest.objects.count() == 1


def test_a_request_racing_past_the_check_is_stopped_by_the_database(
    monkeypatch, staff_a, requested, system_a
):
    # As if a second click's check ran before the first click's row was written.
    monkeypatch.setattr(workflow, "refuse_a_second_request", lambda it_system: None)
    with pytest.raises(workflow.AlreadyRequested) as refused:
        workflow.request_infref(it_system=system_a, description="Igen.", user=staff_a)
    assert refused.value.existing == requested
    assert InfRefRequest.objects.get() == requested
    assert kombit_mails() == 1


def test_the_database_holds_one_open_or_assigned_request_per_it_system(
    staff_a, requested, system_a
):
    with pytest.raises(IntegrityError), transaction.atomic():
        InfRefRequest.objects.create(it_system=system_a, description="x", requested_by=staff_a)


def test_only_the_vendor_is_offered_the_withdraw_button(client_for, staff_a, operator, requested):
    withdraw = reverse("gdpr:request_withdraw", args=[requested.pk])
    assert f'action="{withdraw}"' in page(client_for(staff_a), "gdpr:request", requested.pk)
    assert withdraw not in page(client_for(operator), "gdpr:request", requested.pk)


def test_a_withdrawn_request_is_recorded_mailed_to_kombit_and_frees_the_it_system(
    client, client_for, staff_a, operator, vendor_a, kombit, requested, system_a
):
    client.cookies["django_language"] = "en"
    response = client_for(staff_a).post(reverse("gdpr:request_withdraw", args=[requested.pk]))
    assert response["Location"] == reverse("gdpr:request", args=[requested.pk])
    requested.refresh_from_db()
    assert requested.withdrawn_by == staff_a and requested.withdrawn_at
    assert requested.get_step_label() == "Withdrawn"

    event = AuditEvent.objects.get(action=AuditEvent.Action.INFREF_REQUEST_WITHDRAWN)
    assert (event.actor, event.object_id) == (staff_a, str(requested.pk))
    assert set(event.concerns.all()) == {vendor_a, kombit}

    told = requested.withdrawal_mail
    assert told.to == ["kdi@kombit.dk"]
    assert told.subject == "Anmodning om InfRef trukket tilbage – »Alfa Omsorg«"
    assert str(system_a.uuid) in told.body and "Trukket tilbage af: »Ada«" in told.body
    assert kombit_mails() == 2  # the request and its withdrawal

    # Withdrawing twice tells KOMBIT once.
    again = client_for(staff_a).post(
        reverse("gdpr:request_withdraw", args=[requested.pk]), follow=True
    )
    assert "This request is already withdrawn." in again.text
    assert kombit_mails() == 2
    assert "Withdrawn" in page(client_for(staff_a), "gdpr:requests")

    # KOMBIT is no longer offered the request, and is refused if it tries.
    kombit_page = page(client_for(operator), "gdpr:request", requested.pk)
    assert 'id="id_name"' not in kombit_page and "Withdrawn" in kombit_page
    refused = client_for(operator).post(
        reverse("gdpr:request_assign", args=[requested.pk]),
        {"name": "FagsystemdefineredeDataRefGDPR1_1"},
        follow=True,
    )
    assert "The vendor has withdrawn this request" in refused.text
    with pytest.raises(workflow.RequestWithdrawn):
        workflow.assign_infref(requested, name="FagsystemdefineredeDataRefGDPR1_1", user=operator)
    assert not InfRef.objects.exists()

    # The IT system is free again.
    response = client_for(staff_a).post(
        reverse("gdpr:request_create"), {"it_system": system_a.pk, "description": "Ny."}
    )
    fresh = InfRefRequest.objects.get(withdrawn_at=None)
    assert response["Location"] == reverse("gdpr:request", args=[fresh.pk])
    assert kombit_mails() == 3


def test_an_assigned_request_cannot_be_withdrawn(client, client_for, staff_a, assigned):
    client.cookies["django_language"] = "en"
    vendor = client_for(staff_a)
    assert reverse("gdpr:request_withdraw", args=[assigned.pk]) not in page(
        vendor, "gdpr:request", assigned.pk
    )
    response = vendor.post(reverse("gdpr:request_withdraw", args=[assigned.pk]), follow=True)
    assert (
        f"KOMBIT has assigned {assigned.infref.name}, so the request can no longer be withdrawn."
        in response.text
    )
    assigned.refresh_from_db()
    assert assigned.withdrawn_at is None and assigned.withdrawal_mail is None
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.INFREF_REQUEST_WITHDRAWN)


def test_only_the_requesting_vendor_withdraws(client_for, staff_b, operator, requested):
    withdraw = reverse("gdpr:request_withdraw", args=[requested.pk])
    assert client_for(staff_b).post(withdraw).status_code == 404
    assert client_for(operator).post(withdraw).status_code == 403
    assert client_for(staff_b).get(withdraw).status_code == 405
    requested.refresh_from_db()
    assert not requested.is_withdrawn
    assert kombit_mails() == 1


@pytest.mark.django_db(transaction=True)
def test_the_migration_withdraws_second_requests_made_before_the_rule(staff_a, system_a):
    """Requests made twice before the rule: the first keeps the IT system, no mail is sent."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("gdpr", "0002_single_line_text")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps.get_model("gdpr", "InfRefRequest")
        first, second = [
            old.objects.create(
                it_system_id=system_a.pk, description=text, requested_by_id=staff_a.pk
            )
            for text in ("Første.", "Anden.")
        ]
    finally:
        # The schema is the suite's, whatever happened above.
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert InfRefRequest.objects.get(withdrawn_at=None).pk == first.pk
    assert InfRefRequest.objects.get(pk=second.pk).withdrawn_by == staff_a
    assert not OutgoingMail.objects.exists()
