"""The GDPR declaration says what the portal knows, names a real data-specification version, and
holds sends to the municipalities and receiving IT systems it names."""

import io
import uuid
from datetime import date

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import translation

from gdpr import workflow
from gdpr.forms import DeclarationForm
from gdpr.models import GdprDeclaration
from portal.itsystems.models import ItSystem
from portal.onboarding.models import Integration, ProcessingAgreement
from portal.onboarding.rules import add_municipality, create_integration
from tests.support import engine
from tests.support.declarations import complete_answers, submit
from tests.support.specs import SPEC_FIELDS, spec_version
from transfers.queueing import queue_send, route_blockers


@pytest.fixture
def system_c(vendor_b) -> ItSystem:
    return ItSystem.objects.create(
        uuid=uuid.uuid4(), name="Beta Arkiv", vendor=vendor_b, is_receiver=True
    )


@pytest.fixture
def infref(system_a, staff_a, operator):
    request = workflow.request_infref(it_system=system_a, description="x", user=staff_a)
    return workflow.assign_infref(request, name=workflow.proposed_infref_name(), user=operator)


def integration_under(infref, *, name, receiver, municipalities, staff, **fields) -> Integration:
    return create_integration(
        name=name,
        sender=infref.it_system,
        receiver=receiver,
        created_by=staff,
        municipalities=municipalities,
        infref=infref,
        **fields,
    )


# 1. A first draft is filled in from what the portal knows


def test_a_first_draft_is_filled_in_from_what_the_portal_knows(
    infref, staff_a, aarhus, odense, system_b, system_c
):
    staff_a.last_name = "Jensen"
    staff_a.save()
    first = integration_under(
        infref,
        name="Omsorg",
        receiver=system_b,
        municipalities=[aarhus],
        staff=staff_a,
        legal_basis="Serviceloven § 83.",
    )
    integration_under(
        infref,
        name="Arkiv",
        receiver=system_c,
        municipalities=[aarhus, odense],
        staff=staff_a,
        legal_basis="Arkivloven § 7.",
    )
    spec_version(first, 1, 0)
    spec_version(first, 1, 1)
    ProcessingAgreement.objects.create(
        integration=first, title="Databehandleraftale om omsorgsdata", signed_on=date(2026, 2, 1)
    )

    draft = workflow.open_draft(infref, staff_a)

    assert (draft.version, draft.status) == (1, "draft")
    assert set(draft.controllers.all()) == {aarhus, odense}
    assert set(draft.receiving_it_systems.all()) == {system_b, system_c}
    assert draft.data_specification_version == "1.1"
    assert (draft.dpa_title, draft.dpa_signed_on) == (
        "Databehandleraftale om omsorgsdata",
        date(2026, 2, 1),
    )
    # Both integrations' legal bases, the one named first by integration name first.
    assert draft.legal_basis_detail == "Arkivloven § 7.\n\nServiceloven § 83."
    assert (draft.contact_name, draft.contact_email) == ("Ada Jensen", staff_a.email)
    assert draft.purpose == ""  # what only the vendor knows stays for the vendor to answer


def test_a_first_draft_without_an_agreement_or_integration_leaves_those_answers_empty(
    infref, staff_a
):
    draft = workflow.open_draft(infref, staff_a)
    assert not draft.controllers.exists() and not draft.receiving_it_systems.exists()
    assert (draft.dpa_title, draft.dpa_signed_on, draft.data_specification_version) == (
        "",
        None,
        "",
    )
    assert draft.contact_name == "Ada"  # the user's name, as the pages name them


def test_a_new_version_copies_the_last_and_adds_who_joined_since(
    infref, staff_a, aarhus, odense, system_b, system_c
):
    integration = integration_under(
        infref, name="Omsorg", receiver=system_b, municipalities=[aarhus], staff=staff_a
    )
    spec_version(integration, 1, 0)
    first = submit(
        workflow.open_draft(infref, staff_a), complete_answers([aarhus], [system_b]), staff_a
    )
    # Since then Odense joined, and a second integration sends to another receiving system.
    add_municipality(integration, odense)
    integration_under(
        infref, name="Arkiv", receiver=system_c, municipalities=[aarhus], staff=staff_a
    )
    ProcessingAgreement.objects.create(
        integration=integration, title="En senere aftale", signed_on=date(2026, 6, 1)
    )

    second = workflow.open_draft(infref, staff_a)

    assert second.version == 2
    assert set(second.controllers.all()) == {aarhus, odense}
    assert set(second.receiving_it_systems.all()) == {system_b, system_c}
    # The answers are the last version's, not the portal's: the vendor declared them.
    assert second.purpose == first.purpose
    assert second.dpa_title == first.dpa_title
    assert second.contact_name == first.contact_name == "Ada Jensen"


# 2. The data-specification version is chosen from the real versions


def test_the_version_is_chosen_from_the_real_versions_newest_first(
    infref, staff_a, aarhus, system_b, client_for
):
    integration = integration_under(
        infref, name="Omsorg", receiver=system_b, municipalities=[aarhus], staff=staff_a
    )
    for major, minor in [(1, 0), (1, 1), (2, 0)]:
        spec_version(integration, major, minor, fields=engine_fields(major))
    draft = workflow.open_draft(infref, staff_a)
    choices = [
        value
        for value, _label in DeclarationForm(instance=draft)
        .fields["data_specification_version"]
        .choices
    ]
    assert choices == ["", "2.0", "1.1", "1.0"]

    html = client_for(staff_a).get(reverse("gdpr:declaration_edit", args=[draft.pk])).text
    assert '<select name="data_specification_version"' in html
    assert '<option value="2.0" selected>2.0</option>' in html
    assert html.index('value="2.0"') < html.index('value="1.1"') < html.index('value="1.0"')


def engine_fields(major: int):
    # A major version may change anything; minor versions keep the fields.
    return SPEC_FIELDS if major == 1 else SPEC_FIELDS[:1]


def test_a_stored_version_no_longer_listed_still_renders_but_is_refused_at_submission(
    infref, staff_a, aarhus, system_b, client, client_for
):
    integration = integration_under(
        infref, name="Omsorg", receiver=system_b, municipalities=[aarhus], staff=staff_a
    )
    spec_version(integration, 1, 0)
    draft = workflow.open_draft(infref, staff_a)
    GdprDeclaration.objects.filter(pk=draft.pk).update(data_specification_version="3.0")
    draft.refresh_from_db()

    client.cookies["django_language"] = "en"
    vendor = client_for(staff_a)
    url = reverse("gdpr:declaration_edit", args=[draft.pk])
    assert '<option value="3.0" selected>3.0</option>' in vendor.get(url).text

    problems = workflow.submission_problems(draft)
    with translation.override("en"):
        assert str(problems["data_specification_version"]) == (
            "The data specification has no version 3.0; choose one of its versions."
        )
    data = {**complete_answers([aarhus], [system_b]), "data_specification_version": "3.0"}
    response = vendor.post(url, {**data, "submit": "1"})
    assert response.status_code == 200
    assert "The data specification has no version 3.0; choose one of its versions." in (
        response.text
    )
    draft.refresh_from_db()
    assert draft.status == "draft"
    # A label the specification never had is refused by the form itself.
    response = vendor.post(url, {**data, "data_specification_version": "9.9", "save": "1"})
    assert response.status_code == 200
    assert response.context["form"].errors["data_specification_version"]


def test_without_any_version_the_page_links_the_specification_and_submission_is_refused(
    infref, staff_a, aarhus, system_b, client, client_for
):
    # Taken before the integration exists: complete_answers gives a linked integration
    # without a version its version 1.0 (for tests/support/engine.py).
    answers = {**complete_answers([aarhus], [system_b]), "data_specification_version": ""}
    integration = integration_under(
        infref, name="Omsorg", receiver=system_b, municipalities=[aarhus], staff=staff_a
    )
    draft = workflow.open_draft(infref, staff_a)
    client.cookies["django_language"] = "en"
    vendor = client_for(staff_a)
    url = reverse("gdpr:declaration_edit", args=[draft.pk])

    html = vendor.get(url).text
    assert "Save the data specification&#x27;s first version before submitting:" in html
    spec_page = reverse("specs:specification", args=[integration.pk])
    assert f'<a href="{spec_page}">Omsorg</a>' in html

    response = vendor.post(url, {**answers, "submit": "1"})
    assert response.status_code == 200
    assert "Save the data specification&#x27;s first version before submitting." in response.text
    draft.refresh_from_db()
    assert draft.status == "draft"
    with pytest.raises(ValidationError) as refused:
        workflow.submit_declaration(draft, staff_a)
    assert "data_specification_version" in refused.value.message_dict


def test_without_an_integration_the_form_says_to_link_one(infref, staff_a, client, client_for):
    draft = workflow.open_draft(infref, staff_a)
    client.cookies["django_language"] = "en"
    html = client_for(staff_a).get(reverse("gdpr:declaration_edit", args=[draft.pk])).text
    assert "No integration is linked to this InfRef yet" in html


# 3. Scope: sends go only to what the declaration names


@pytest.fixture
def ready(staff_a, operator, system_a, system_b, aarhus, odense):
    ready = engine.ready_route(
        staff=staff_a,
        operator=operator,
        sender=system_a,
        receiver=system_b,
        municipalities=[aarhus, odense],
        receiver_account=False,
        host_key=engine.PINNED,
    )
    return ready.integration, ready.routes


def test_a_send_to_a_municipality_the_declaration_does_not_name_is_refused(
    ready, staff_a, aarhus, odense, system_b
):
    integration, routes = ready
    assert route_blockers(routes["461"]) == []
    # A new version that leaves Odense out (the draft offers it; the vendor unticks it).
    draft = workflow.open_draft(integration.infref, staff_a)
    assert odense in draft.controllers.all()
    submit(draft, complete_answers([aarhus], [system_b]), staff_a)

    with translation.override("en"):
        named = f"The GDPR declaration does not name {odense.name} as data controller."
        assert route_blockers(routes["461"]) == [named]
        with pytest.raises(ValidationError) as refused:
            queue_send(routes["461"], io.BytesIO(b"461;x\r\n"), original_name="a.csv")
        assert refused.value.messages == [named]
        assert route_blockers(routes["751"]) == []


def test_a_send_to_a_receiver_the_declaration_does_not_name_is_refused(
    ready, staff_a, aarhus, odense, system_b, system_c
):
    integration, routes = ready
    draft = workflow.open_draft(integration.infref, staff_a)
    submit(draft, complete_answers([aarhus, odense], [system_c]), staff_a)

    with translation.override("en"):
        named = f"The GDPR declaration does not name {system_b.name} as receiving IT system."
        for code in ("751", "461"):
            assert route_blockers(routes[code]) == [named]
        with pytest.raises(ValidationError) as refused:
            queue_send(routes["751"], io.BytesIO(b"751;x\r\n"), original_name="a.csv")
        assert refused.value.messages == [named]


# 6. The request form takes the IT system from the link


def test_the_request_form_preselects_the_it_system_from_the_link(
    client_for, staff_a, system_a, vendor_b
):
    foreign = ItSystem.objects.create(
        uuid=uuid.uuid4(), name="Beta Sag", vendor=vendor_b, is_sender=True
    )
    client = client_for(staff_a)
    url = reverse("gdpr:request_create")
    selected = f'<option value="{system_a.pk}" selected>'

    assert selected in client.get(url, {"it_system": system_a.pk}).text
    assert client.get(url, {"it_system": system_a.pk}).context["form"]["it_system"].value() == (
        system_a.pk
    )
    assert selected not in client.get(url).text
    # Another vendor's IT system, or nonsense, preselects nothing and fails nothing.
    for value in (foreign.pk, "x", "-1"):
        response = client.get(url, {"it_system": value})
        assert response.status_code == 200
        assert response.context["form"]["it_system"].value() is None
        assert f'<option value="{foreign.pk}"' not in response.text
