"""Each party's next steps (portal.onboarding.todo) and the dashboard that lists them."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import formats, timezone

from gdpr import workflow
from gdpr.models import GdprDeclaration, InfRef
from portal.accounts.models import Organisation
from portal.itsystems.models import ItSystem
from portal.onboarding import bilateral, rules
from portal.onboarding.models import Consent, IntegrationTest, OnboardingTask
from portal.onboarding.todo import Kind, todo_for
from tests.conftest import make_user
from transfers.models import Route, SftpAccount

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
        legal_basis="Serviceloven § 83.",
        legal_basis_reviewed_on=timezone.localdate(),
    )


@pytest.fixture
def infref(integration, staff_a, operator) -> InfRef:
    """The InfRef KOMBIT assigned to the sending IT system, not yet linked to the integration."""
    request = workflow.request_infref(it_system=integration.sender, description="x", user=staff_a)
    return workflow.assign_infref(request, name="FagsystemdefineredeDataRefGDPR77_1", user=operator)


@pytest.fixture
def linked(integration, infref):
    integration.infref = infref
    integration.save()
    return integration


@pytest.fixture
def other_staff(db):
    vendor = Organisation.objects.create(kind="vendor", name="Gamma IT A/S", cvr="29403473")
    return make_user("staff-c", vendor)


def submitted(infref: InfRef, user, version: int = 1) -> GdprDeclaration:
    """A submitted declaration, as the row stands after submission: what the to-do list reads.
    Made directly, so these tests do not depend on what the declaration form asks."""
    return GdprDeclaration.objects.create(
        infref=infref,
        version=version,
        status=GdprDeclaration.Status.SUBMITTED,
        created_by=user,
        submitted_by=user,
        submitted_at=timezone.now(),
        submitted_content={"infref": infref.name},
        content_sha256="0" * 64,
    )


def settle(integration, *numbers, user):
    for task in integration.tasks.filter(number__in=numbers):
        rules.set_state(task, State.DONE, user)


def kinds(user) -> list[str]:
    return [item.kind for item in todo_for(user)]


def item(user, kind, **match):
    found = [
        i
        for i in todo_for(user)
        if i.kind == kind and all(getattr(i, name) == value for name, value in match.items())
    ]
    assert len(found) == 1, (kind, todo_for(user))
    return found[0]


def opens(client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)


# --- The sending vendor ----------------------------------------------------------------------


def test_the_sending_vendor_requests_an_infref_once_per_it_system(
    client_for, staff_a, integration, system_a, system_b
):
    rules.create_integration(
        name="Anden", sender=system_a, receiver=system_b, created_by=staff_a, municipalities=[]
    )
    step = item(staff_a, Kind.REQUEST_INFREF)
    assert step.url == reverse("gdpr:request_create") + f"?it_system={system_a.pk}"
    assert step.it_system == system_a
    opens(client_for(staff_a), step.url)
    workflow.request_infref(it_system=system_a, description="x", user=staff_a)
    assert Kind.REQUEST_INFREF not in kinds(staff_a)


def test_kombit_assigns_then_the_vendor_links_and_declares(
    client_for, staff_a, operator, integration, infref
):
    assert Kind.ASSIGN_INFREF not in kinds(operator)  # assigned already
    link = item(staff_a, Kind.LINK_INFREF, integration=integration)
    assert link.url == reverse("onboarding:edit", args=[integration.pk])
    opens(client_for(staff_a), link.url)
    declare = item(staff_a, Kind.SUBMIT_DECLARATION)
    assert declare.url == reverse("gdpr:request", args=[infref.request.pk])
    opens(client_for(staff_a), declare.url)
    integration.infref = infref
    integration.save()
    assert Kind.LINK_INFREF not in kinds(staff_a)
    draft = workflow.open_draft(infref, staff_a)
    # With a draft, the step leads straight to it.
    assert item(staff_a, Kind.SUBMIT_DECLARATION).url == reverse(
        "gdpr:declaration_edit", args=[draft.pk]
    )
    draft.delete()
    submitted(infref, staff_a)
    assert Kind.SUBMIT_DECLARATION not in kinds(staff_a)


def test_kombit_sees_requests_to_assign_and_infrefs_to_create(
    client_for, staff_a, operator, integration, system_a
):
    request = workflow.request_infref(it_system=system_a, description="x", user=staff_a)
    step = item(operator, Kind.ASSIGN_INFREF)
    assert step.url == reverse("gdpr:request", args=[request.pk])
    opens(client_for(operator), step.url)
    infref = workflow.assign_infref(
        request, name="FagsystemdefineredeDataRefGDPR78_1", user=operator
    )
    assert Kind.ASSIGN_INFREF not in kinds(operator)
    assert Kind.CREATE_INFREF not in kinds(operator)  # nothing declared yet
    submitted(infref, staff_a)
    create = item(operator, Kind.CREATE_INFREF)
    assert create.url == reverse("gdpr:request", args=[request.pk])
    assert infref.name in create.text
    workflow.mark_created(infref, operator)
    assert Kind.CREATE_INFREF not in kinds(operator)


def test_a_declaration_to_renew_or_outdated_comes_first_with_its_date(
    client_for, staff_a, linked, infref
):
    current = submitted(infref, staff_a)
    assert not {Kind.RENEW_DECLARATION, Kind.OUTDATED_DECLARATION} & set(kinds(staff_a))
    deadline = timezone.localdate() + timedelta(days=30)
    GdprDeclaration.objects.filter(pk=current.pk).update(renew_by=deadline)
    renew = item(staff_a, Kind.RENEW_DECLARATION)
    assert formats.date_format(deadline, "SHORT_DATE_FORMAT") in renew.text
    assert todo_for(staff_a)[0] == renew
    opens(client_for(staff_a), renew.url)
    # Past the deadline, sends stop: the declaration counts as outdated.
    GdprDeclaration.objects.filter(pk=current.pk).update(
        renew_by=timezone.localdate() - timedelta(1)
    )
    assert todo_for(staff_a)[0].kind == Kind.OUTDATED_DECLARATION
    GdprDeclaration.objects.filter(pk=current.pk).update(renew_by=None)
    workflow.mark_outdated(infref, "2.0")
    assert todo_for(staff_a)[0].kind == Kind.OUTDATED_DECLARATION
    # A new declaration replaces it.
    GdprDeclaration.objects.filter(pk=current.pk).update(status=GdprDeclaration.Status.SUPERSEDED)
    submitted(infref, staff_a, version=2)
    assert not {Kind.RENEW_DECLARATION, Kind.OUTDATED_DECLARATION} & set(kinds(staff_a))


def test_the_data_specification_is_asked_for_until_task_10_is_settled(
    client_for, staff_a, integration
):
    step = item(staff_a, Kind.SPECIFY, integration=integration)
    assert step.url == reverse("specs:specification", args=[integration.pk])
    opens(client_for(staff_a), step.url)
    settle(integration, 10, user=staff_a)
    assert Kind.SPECIFY not in kinds(staff_a)


def test_each_vendor_registers_its_production_account(
    client_for, staff_a, staff_b, integration, system_a, system_b
):
    sender = item(staff_a, Kind.SENDER_ACCOUNT, it_system=system_a)
    receiver = item(staff_b, Kind.RECEIVER_ACCOUNT, it_system=system_b)
    opens(client_for(staff_a), sender.url)
    opens(client_for(staff_b), receiver.url)
    assert Kind.RECEIVER_ACCOUNT not in kinds(staff_a)
    assert Kind.SENDER_ACCOUNT not in kinds(staff_b)
    # An external-test account does not open production.
    SftpAccount.objects.create(
        it_system=system_a, environment="exttest", username="alfa", host="h", port=22
    )
    assert Kind.SENDER_ACCOUNT in kinds(staff_a)
    SftpAccount.objects.create(
        it_system=system_a, environment="production", username="alfa", host="h", port=22
    )
    SftpAccount.objects.create(
        it_system=system_b, environment="simulator", username="beta", host="h", port=22
    )
    assert Kind.SENDER_ACCOUNT not in kinds(staff_a)
    assert Kind.RECEIVER_ACCOUNT not in kinds(staff_b)


def test_routes_are_ordered_per_municipality_once_the_accounts_exist(
    client_for, staff_a, staff_b, operator, linked, aarhus, odense
):
    rules.add_municipality(linked, odense)
    assert Kind.ORDER_ROUTE not in kinds(staff_a)  # tasks 50 and 60 first
    settle(linked, 50, user=staff_a)
    settle(linked, 60, user=staff_b)
    aarhus_step = item(staff_a, Kind.ORDER_ROUTE, municipality=aarhus)
    assert item(staff_a, Kind.ORDER_ROUTE, municipality=odense)
    assert aarhus_step.url == (
        reverse("transfers:route_create") + f"?integration={linked.pk}&municipality={aarhus.pk}"
    )
    opens(client_for(staff_a), aarhus_step.url)
    route = Route.objects.create(
        environment="production",
        infref=linked.infref,
        sender=linked.sender,
        receiver=linked.receiver,
        municipality=aarhus,
        integration=linked,
    )
    assert [i.municipality for i in todo_for(staff_a) if i.kind == Kind.ORDER_ROUTE] == [odense]
    establish = item(operator, Kind.ESTABLISH_ROUTES)
    assert establish.url == reverse("transfers:routes") + "?state=ordered"
    opens(client_for(operator), establish.url)
    route.state = Route.State.ESTABLISHED
    route.save()
    assert Kind.ESTABLISH_ROUTES not in kinds(operator)


# --- The agreement and the test: each party's own yes ----------------------------------------


def test_the_municipality_answers_the_agreement_and_the_vendor_follows(
    client_for, staff_a, architect, integration, aarhus
):
    step = item(architect, Kind.CONFIRM_AGREEMENT, integration=integration, municipality=aarhus)
    opens(client_for(architect), step.url)
    # Nothing registered and nothing said: the vendor has nothing to confirm yet.
    assert Kind.CONFIRM_AGREEMENT not in kinds(staff_a)
    bilateral.give(integration, Subject.NO_AGREEMENT, aarhus, architect)
    assert Kind.CONFIRM_AGREEMENT not in kinds(architect)
    vendor_step = item(staff_a, Kind.CONFIRM_AGREEMENT, integration=integration)
    assert aarhus.name in vendor_step.text
    opens(client_for(staff_a), vendor_step.url)
    bilateral.give(integration, Subject.NO_AGREEMENT, integration.sender.vendor, staff_a)
    assert Kind.CONFIRM_AGREEMENT not in kinds(staff_a)


def test_the_vendors_confirmation_waits_for_the_municipalitys(
    staff_a, architect, integration, aarhus
):
    from portal.onboarding.models import ProcessingAgreement

    ProcessingAgreement.objects.create(
        integration=integration, title="Databehandleraftale", signed_on=timezone.localdate()
    )
    assert Kind.CONFIRM_AGREEMENT in kinds(staff_a)  # registered: both confirm
    bilateral.give(integration, Subject.AGREEMENT, integration.sender.vendor, staff_a)
    assert Kind.CONFIRM_AGREEMENT not in kinds(staff_a)
    waiting = item(architect, Kind.CONFIRM_AGREEMENT)
    assert integration.sender.vendor.name in waiting.text
    bilateral.give(integration, Subject.AGREEMENT, aarhus, architect)
    assert Kind.CONFIRM_AGREEMENT not in kinds(architect)


def test_a_passed_test_is_accepted_by_both_and_asks_nothing_of_the_receiver(
    client_for, staff_a, staff_b, architect, integration, aarhus
):
    test = IntegrationTest.objects.create(integration=integration)
    assert Kind.ACCEPT_TEST not in set(kinds(staff_a) + kinds(staff_b) + kinds(architect))
    test.result = IntegrationTest.Result.PASSED
    test.save()
    item(staff_a, Kind.ACCEPT_TEST, integration=integration)
    item(architect, Kind.ACCEPT_TEST, municipality=aarhus)
    assert kinds(staff_b) == [Kind.RECEIVER_ACCOUNT]  # its own SFTP user, not the test
    bilateral.give(integration, Subject.TEST, integration.sender.vendor, staff_a)
    assert Kind.ACCEPT_TEST not in kinds(staff_a)
    assert integration.sender.vendor.name in item(architect, Kind.ACCEPT_TEST).text
    bilateral.give(integration, Subject.TEST, aarhus, architect)
    assert Kind.ACCEPT_TEST not in kinds(architect)


# --- Who sees what ---------------------------------------------------------------------------


def test_another_vendor_and_another_municipality_see_none_of_it(
    staff_a, other_staff, integration, infref, odense
):
    IntegrationTest.objects.create(integration=integration, result="passed")
    assert todo_for(staff_a)
    assert todo_for(other_staff) == []
    assert todo_for(make_user("architect-odense", odense)) == []


def test_the_receiving_vendor_sees_none_of_the_senders_steps(staff_b, integration, infref):
    assert set(kinds(staff_b)) == {Kind.RECEIVER_ACCOUNT}


def _many(staff, sender, receiver, municipalities, count):
    """`count` integrations with steps for every party, and requests for KOMBIT to answer."""
    for number in range(count):
        system = ItSystem.objects.create(
            uuid=uuid.uuid4(), name=f"Flere {number}", vendor=sender.vendor, is_sender=True
        )
        workflow.request_infref(it_system=system, description="x", user=staff)
        integration = rules.create_integration(
            name=f"Flere {number}",
            sender=sender,
            receiver=receiver,
            created_by=staff,
            municipalities=municipalities,
        )
        IntegrationTest.objects.create(integration=integration, result="passed")
        bilateral.give(integration, Subject.NO_AGREEMENT, municipalities[0], staff)


def _queries(user) -> int:
    # A fresh user object: the scope is read once per request, as in a view.
    user = type(user).objects.get(pk=user.pk)
    with CaptureQueriesContext(connection) as queries:
        todo_for(user)
    return len(queries)


@pytest.mark.parametrize("user_fixture", ["staff_a", "staff_b", "architect", "operator"])
def test_the_list_costs_the_same_queries_however_many_integrations(
    request, django_assert_max_num_queries, user_fixture, staff_a, integration, infref, aarhus
):
    user = request.getfixturevalue(user_fixture)
    few = _queries(user)
    _many(staff_a, integration.sender, integration.receiver, [aarhus], 6)
    assert len(todo_for(user)) > 0
    assert _queries(user) == few
    with django_assert_max_num_queries(12):
        todo_for(type(user).objects.get(pk=user.pk))


# --- The dashboard ---------------------------------------------------------------------------


def test_the_dashboard_lists_the_next_steps_with_their_count(client_for, staff_a, integration):
    client = client_for(staff_a)
    client.cookies["django_language"] = "en"
    html = client.get(reverse("dashboard")).content.decode()
    count = len(todo_for(staff_a))
    assert "Your next steps" in html
    assert f"{count} steps wait for you." in html
    assert reverse("specs:specification", args=[integration.pk]) in html


def test_the_dashboard_says_when_nothing_waits(client_for, other_staff):
    client = client_for(other_staff)
    client.cookies["django_language"] = "en"
    html = client.get(reverse("dashboard")).content.decode()
    assert "Your next steps" in html
    assert "Nothing waits for you." in html


def test_the_dashboard_lists_the_first_steps_and_says_how_many_there_are(
    client_for, staff_a, system_a, system_b, aarhus
):
    from portal.core.views import TODO_SHOWN

    _many(staff_a, system_a, system_b, [aarhus], TODO_SHOWN)
    total = len(todo_for(staff_a))
    assert total > TODO_SHOWN
    client = client_for(staff_a)
    client.cookies["django_language"] = "en"
    html = client.get(reverse("dashboard")).content.decode()
    assert f"{total} steps wait for you." in html
    assert f"The first {TODO_SHOWN} are listed" in html
    assert html.count("<li data-kind=") == TODO_SHOWN
