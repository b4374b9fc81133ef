"""The audit log: who did what and when, append-only, visible to whom it concerns."""

import pytest
from django.urls import reverse

from portal.audit.log import record
from portal.audit.models import AuditEvent
from portal.onboarding import rules
from portal.onboarding.models import OnboardingTask
from tests.conftest import make_user
from tests.support.handoff_setup import bearer, ready_fixture, received_file, token_for  # noqa: F401


@pytest.fixture
def integration(staff_a, system_a, system_b, aarhus):
    return rules.create_integration(
        name="Revision",
        sender=system_a,
        receiver=system_b,
        created_by=staff_a,
        municipalities=[aarhus],
    )


def test_a_task_change_is_recorded_for_the_parties(
    client_for, staff_a, staff_b, architect, integration
):
    task = integration.tasks.get(number=10)
    rules.set_state(task, OnboardingTask.State.DONE, staff_a)
    event = AuditEvent.objects.get(action=AuditEvent.Action.TASK_CHANGED)
    assert (event.actor, event.object_id, event.details["state"]) == (staff_a, str(task.pk), "done")
    sentence = "Ada set onboarding task 10 “Write the data specification” of Revision to Done"
    for user in (staff_a, staff_b):  # both vendors are parties
        client = client_for(user)
        client.cookies["django_language"] = "en"
        assert sentence in client.get(reverse("audit:log")).text


def test_events_are_not_shown_to_those_they_do_not_concern(
    client_for, staff_a, odense, integration
):
    rules.set_state(integration.tasks.get(number=10), OnboardingTask.State.DONE, staff_a)
    page = client_for(make_user("odense-arch", odense)).get(reverse("audit:log"))
    assert list(page.context["page"].object_list) == []


def test_the_log_filters_by_action(client_for, staff_a, integration):
    rules.set_state(integration.tasks.get(number=10), OnboardingTask.State.DONE, staff_a)
    client = client_for(staff_a)
    downloads = client.get(reverse("audit:log"), {"action": "download"}).context["page"]
    assert not downloads.object_list
    assert len(client.get(reverse("audit:log"), {"action": "task_changed"}).context["page"]) == 1


def test_the_log_cannot_be_changed_or_deleted(staff_a, integration):
    rules.set_state(integration.tasks.get(number=10), OnboardingTask.State.DONE, staff_a)
    event = AuditEvent.objects.get()
    event.summary = "rewritten"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    assert AuditEvent.objects.get().summary != "rewritten"


def test_keys_and_route_changes_are_recorded(
    client_for, staff_a, operator, system_a, system_b, aarhus, integration
):
    from gdpr.models import InfRef
    from transfers.models import Route, SftpAccount

    account = SftpAccount.objects.create(
        it_system=system_a, environment="simulator", username="alfa", host="127.0.0.1", port=2222
    )
    client_for(staff_a).post(
        reverse("transfers:account_generate", args=[account.pk]), {"kind": "ed25519"}
    )
    account.refresh_from_db()
    event = AuditEvent.objects.get(action=AuditEvent.Action.KEY_GENERATED)
    assert event.details["fingerprint"] == account.key_fingerprint
    assert list(event.concerns.all()) == [system_a.vendor]

    infref = InfRef.objects.create(
        name="FagsystemdefineredeDataRefGDPR8_1", it_system=system_a, assigned_by=operator
    )
    route = Route.objects.create(
        environment="simulator",
        infref=infref,
        sender=system_a,
        receiver=system_b,
        municipality=aarhus,
        integration=integration,
    )
    client_for(operator).post(
        reverse("transfers:route_state", args=[route.pk]), {"state": "established"}
    )
    event = AuditEvent.objects.get(action=AuditEvent.Action.ROUTE_CHANGED)
    assert (event.actor, event.details["state"]) == (operator, "established")
    assert set(event.concerns.all()) == {system_a.vendor, system_b.vendor, aarhus}


# Who acted: a person, an IT system's API token, a watched folder, the command line, or the
# portal's own schedule. The log names each, in every role that sees it.


def test_the_log_renders_events_without_a_person_in_every_role(
    client, client_for, ready, vendor_a, staff_a, staff_b, architect, superuser, tmp_path
):
    route = ready.route
    received = received_file(ready.receiver, route, tmp_path, b"751;1\r\n", "a.csv")
    token = token_for(ready.receiver.it_system, staff_b)
    download = client.get(f"/api/v1/received-files/{received.pk}/content", **bearer(token))
    assert download.status_code == 200
    fingerprint = AuditEvent.objects.get(action=AuditEvent.Action.DOWNLOAD).details["token"]
    parties = route.parties()
    folder = f"{vendor_a.cvr}/aarhus-ud"
    record(
        None, AuditEvent.Action.SEND, route, concerns=parties, via="watched folder", folder=folder
    )
    record(None, AuditEvent.Action.RETENTION_DELETED, route, concerns=parties, days=30)
    record(staff_a, AuditEvent.Action.SEND, route, concerns=parties, via="command line")

    for user in (staff_a, staff_b, architect, superuser):
        for query in ({}, {"action": "download"}, {"action": "send"}):
            page = client_for(user).get(reverse("audit:log"), query)
            assert page.status_code == 200, (user, query)
    client.cookies["django_language"] = "en"
    assert f"API token {fingerprint}" in client_for(staff_b).get(reverse("audit:log")).text
    text = client_for(staff_a).get(reverse("audit:log")).text
    assert f"Watched folder {folder}" in text
    assert "The portal (scheduled)" in text
    assert "Ada" in text  # the person who sent from the command line


def test_a_person_named_in_the_log_is_kept(staff_a, integration):
    """The log never loses who acted: a user it names cannot be deleted, only deactivated."""
    from django.db.models import ProtectedError

    rules.set_state(integration.tasks.get(number=10), OnboardingTask.State.DONE, staff_a)
    with pytest.raises(ProtectedError):
        staff_a.delete()
    staff_a.is_active = False
    staff_a.save()
    assert AuditEvent.objects.get().who == "Ada"
