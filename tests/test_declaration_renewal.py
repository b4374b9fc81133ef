"""A new data-specification version and the GDPR declaration: a minor one asks for a renewal by a
date and sends go on until then; a major one, or a document added to a version, stops sends at
once; a new declaration clears either. The vendor is mailed when asked, a week before the date
and the day after it passed."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse
from django.utils import formats, timezone, translation
from django_q.models import Schedule

from gdpr import reminders, workflow
from gdpr.models import GdprDeclaration
from portal.outbox.models import OutgoingMail
from portal.specs.documents import inspect_document
from portal.specs.versions import add_documents
from tests.conftest import make_user
from tests.support import engine
from tests.support.declarations import complete_answers, submit
from tests.support.specs import SPEC_FIELDS, spec_version
from transfers.queueing import route_blockers


@pytest.fixture
def ready(staff_a, operator, system_a, system_b, aarhus):
    """A ready integration sending to Aarhus under a declaration of version 1.0."""
    ready = engine.ready_route(
        staff=staff_a,
        operator=operator,
        sender=system_a,
        receiver=system_b,
        municipalities=[aarhus],
        receiver_account=False,
        host_key=engine.PINNED,
    )
    assert route_blockers(ready.route) == []
    return ready.integration, ready.route


def current(integration) -> GdprDeclaration:
    return integration.infref.current_declaration()


def move_deadline(integration, days: int) -> GdprDeclaration:
    """The renewal date `days` from today (negative: passed), as if time had gone by."""
    declaration = current(integration)
    GdprDeclaration.objects.filter(pk=declaration.pk).update(
        renew_by=timezone.localdate() + timedelta(days=days)
    )
    declaration.refresh_from_db()
    return declaration


def days_pass(integration, days: int) -> GdprDeclaration:
    """As if `days` went by: the renewal date and the last reminder come that much closer."""
    declaration = current(integration)
    GdprDeclaration.objects.filter(pk=declaration.pk).update(
        renew_by=declaration.renew_by - timedelta(days=days),
        renewal_reminded_at=declaration.renewal_reminded_at - timedelta(days=days)
        if declaration.renewal_reminded_at
        else None,
    )
    declaration.refresh_from_db()
    return declaration


def english_blockers(route) -> list[str]:
    with translation.override("en"):
        return route_blockers(route)


# What a new version does to sends


@override_settings(DECLARATION_RENEWAL_DAYS=12)
def test_a_minor_version_asks_for_renewal_and_sends_go_on_until_the_date(ready):
    integration, route = ready
    spec_version(integration, 1, 1)

    declaration = current(integration)
    assert declaration.renew_by == timezone.localdate() + timedelta(days=12)
    assert "1.1" in declaration.renew_reason
    assert not declaration.is_outdated
    assert route_blockers(route) == []

    move_deadline(integration, 0)  # the last day
    assert route_blockers(route) == []

    passed = move_deadline(integration, -1)
    with translation.override("en"):
        date = formats.date_format(passed.renew_by, "DATE_FORMAT")
    assert english_blockers(route) == [
        f"The GDPR declaration was to be renewed by {date}: a new one must be submitted."
    ]


def test_a_second_minor_version_keeps_the_first_deadline(ready):
    integration, _route = ready
    spec_version(integration, 1, 1)
    first = move_deadline(integration, 3).renew_by
    spec_version(integration, 1, 2)
    assert current(integration).renew_by == first


def test_a_major_version_stops_sends_at_once(ready):
    integration, route = ready
    spec_version(integration, 2, 0, fields=SPEC_FIELDS[:1])
    declaration = current(integration)
    assert declaration.is_outdated and declaration.renew_by is None
    assert "The GDPR declaration is outdated: a new one must be submitted." in (
        english_blockers(route)
    )


def test_a_document_added_to_a_version_stops_sends_at_once(ready, staff_a):
    integration, route = ready
    version = integration.data_specification.latest_version()
    upload = SimpleUploadedFile("felter.md", b"# Felter\n\ncpr, navn\n")
    add_documents(version, [(upload, inspect_document(upload))], staff_a)
    declaration = current(integration)
    assert declaration.is_outdated
    assert "1.0" in declaration.outdated_reason
    assert "The GDPR declaration is outdated: a new one must be submitted." in (
        english_blockers(route)
    )


def test_a_new_declaration_clears_the_renewal_and_does_not_inherit_the_date(
    ready, staff_a, aarhus, system_b
):
    integration, route = ready
    spec_version(integration, 1, 1)
    old = move_deadline(integration, -2)
    assert route_blockers(route) != []

    draft = workflow.open_draft(integration.infref, staff_a)
    assert draft.renew_by is None and draft.renew_reason == ""
    answers = {**complete_answers([aarhus], [system_b]), "data_specification_version": "1.1"}
    new = submit(draft, answers, staff_a)

    old.refresh_from_db()
    assert old.status == "superseded" and old.renew_by  # its history stays
    assert current(integration) == new
    assert new.renew_by is None and new.renewal_reminded_at is None
    assert route_blockers(route) == []


# What the pages say


def test_the_request_and_declaration_pages_show_the_date_the_reason_and_the_way_on(
    ready, staff_a, client_for, client
):
    integration, _route = ready
    spec_version(integration, 1, 1)
    declaration = move_deadline(integration, 5)
    client.cookies["django_language"] = "en"
    vendor = client_for(staff_a)
    with translation.override("en"):
        date = formats.date_format(declaration.renew_by, "SHORT_DATE_FORMAT")
    opens = f'action="{reverse("gdpr:declaration_open", args=[integration.infref.request.pk])}"'

    for url in (
        reverse("gdpr:request", args=[integration.infref.request.pk]),
        reverse("gdpr:declaration", args=[declaration.pk]),
    ):
        html = vendor.get(url).text
        assert f"To be renewed by {date}" in html
        assert declaration.renew_reason in html
        assert "Files may be sent as before until that day." in html
        assert opens in html and "Start a new version of the declaration" in html

    move_deadline(integration, -1)
    html = vendor.get(reverse("gdpr:declaration", args=[declaration.pk])).text
    assert "The date has passed: sends on this InfRef are blocked" in html

    # Opening the draft from the notice, the button then says to continue it.
    response = vendor.post(reverse("gdpr:declaration_open", args=[integration.infref.request.pk]))
    draft = GdprDeclaration.objects.get(status="draft")
    assert response["Location"] == reverse("gdpr:declaration_edit", args=[draft.pk])
    html = vendor.get(reverse("gdpr:request", args=[integration.infref.request.pk])).text
    assert "Continue the draft declaration" in html


def test_the_municipality_reads_the_notice_without_the_vendors_button(
    ready, aarhus, client_for, client
):
    integration, _route = ready
    spec_version(integration, 1, 1)
    declaration = current(integration)
    client.cookies["django_language"] = "en"
    html = (
        client_for(make_user("architect-aarhus", aarhus))
        .get(reverse("gdpr:declaration", args=[declaration.pk]))
        .text
    )
    assert "To be renewed by" in html
    assert reverse("gdpr:declaration_open", args=[integration.infref.request.pk]) not in html


def test_the_specification_pages_say_what_minor_and_major_versions_do(
    ready, staff_a, client_for, client
):
    integration, _route = ready
    client.cookies["django_language"] = "en"
    vendor = client_for(staff_a)
    detail = vendor.get(reverse("specs:specification", args=[integration.pk])).text
    assert "a new minor version asks for a new GDPR declaration within the renewal period" in (
        detail
    )
    assert "a new major version stops sends until a new declaration is submitted" in detail
    form = vendor.get(reverse("specs:version_create", args=[integration.pk])).text
    assert "A new minor version asks for a new GDPR declaration of the InfRef within" in form
    assert "A new major version stops sends on the InfRef at once" in form


# Mails


def renewal_mails() -> list[OutgoingMail]:
    return list(OutgoingMail.objects.filter(subject__contains="skal fornyes").order_by("pk"))


@override_settings(DECLARATION_RENEWAL_DAYS=30)
def test_the_vendor_is_mailed_once_when_a_renewal_is_asked(
    ready, staff_a, django_capture_on_commit_callbacks
):
    integration, _route = ready
    with django_capture_on_commit_callbacks(execute=True):
        spec_version(integration, 1, 1)
    [mail] = renewal_mails()
    declaration = current(integration)
    infref = integration.infref
    with translation.override("da"):
        date = formats.date_format(declaration.renew_by, "j. F Y")
    assert mail.to == [staff_a.email]
    assert mail.organisation == infref.vendor
    assert mail.subject == f"GDPR-erklæringen for {infref.name} skal fornyes senest {date}"
    assert declaration.renew_reason in mail.body and "1.1" in declaration.renew_reason
    assert f"Filer kan sendes som hidtil indtil {date}." in mail.body
    assert reverse("gdpr:request", args=[infref.request.pk]) in mail.body

    with django_capture_on_commit_callbacks(execute=True):
        spec_version(integration, 1, 2)
    assert len(renewal_mails()) == 1  # asked once; the first date holds


def test_reminders_go_a_week_before_and_the_day_after_the_date_each_once(ready, staff_a):
    integration, _route = ready
    spec_version(integration, 1, 1)
    infref = integration.infref

    move_deadline(integration, 8)
    assert reminders.remind_renewals() == 0

    declaration = days_pass(integration, 1)  # a week to go
    assert reminders.remind_renewals() == 1
    with translation.override("da"):
        date = formats.date_format(declaration.renew_by, "j. F Y")
    soon = OutgoingMail.objects.get(subject__startswith="Påmindelse")
    assert soon.to == [staff_a.email]
    assert soon.subject == (
        f"Påmindelse: GDPR-erklæringen for {infref.name} skal fornyes senest {date}"
    )
    assert reverse("gdpr:request", args=[infref.request.pk]) in soon.body
    assert current(integration).renewal_reminded_at is not None
    assert reminders.remind_renewals() == 0

    days_pass(integration, 7)  # the last day: the week's reminder went already
    assert reminders.remind_renewals() == 0

    declaration = days_pass(integration, 1)  # the day after
    assert reminders.remind_renewals() == 1
    with translation.override("da"):
        date = formats.date_format(declaration.renew_by, "j. F Y")
    stopped = OutgoingMail.objects.get(subject__startswith="Afsendelser standset")
    assert stopped.subject == (
        f"Afsendelser standset: GDPR-erklæringen for {infref.name} skulle være fornyet {date}"
    )
    assert "Afsendelser under InfRef'en er standset" in stopped.body
    assert reminders.remind_renewals() == 0
    days_pass(integration, 4)
    assert reminders.remind_renewals() == 0
    reminded = OutgoingMail.objects.filter(
        organisation=infref.vendor, subject__regex="^(Påmindelse|Afsendelser standset)"
    )
    assert reminded.count() == 2


def test_a_declaration_first_found_after_its_date_gets_only_the_later_reminder(ready):
    integration, _route = ready
    spec_version(integration, 1, 1)
    move_deadline(integration, -3)
    assert reminders.remind_renewals() == 1
    assert OutgoingMail.objects.filter(subject__startswith="Afsendelser standset").count() == 1
    assert not OutgoingMail.objects.filter(subject__startswith="Påmindelse").exists()
    assert reminders.remind_renewals() == 0


def test_no_reminder_for_a_renewed_or_outdated_declaration(ready, staff_a, aarhus, system_b):
    integration, _route = ready
    spec_version(integration, 1, 1)
    move_deadline(integration, -1)
    # Outdated as well: sends stopped already, and the pages say so.
    spec_version(integration, 2, 0, fields=SPEC_FIELDS[:1])
    assert reminders.remind_renewals() == 0

    draft = workflow.open_draft(integration.infref, staff_a)
    answers = {**complete_answers([aarhus], [system_b]), "data_specification_version": "2.0"}
    submit(draft, answers, staff_a)
    assert reminders.remind_renewals() == 0
    assert not OutgoingMail.objects.filter(
        subject__regex="^(Påmindelse|Afsendelser standset)"
    ).exists()


def test_the_reminders_run_daily_by_a_schedule(db):
    schedule = Schedule.objects.get(func="gdpr.reminders.remind_renewals")
    assert (schedule.schedule_type, schedule.repeats) == (Schedule.DAILY, -1)
