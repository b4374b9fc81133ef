"""English is English (issue 16, item 8): dates in day-month-year on a 24-hour clock, the audit
log in sentences in the reader's language, and every page of the menu reachable from it."""

import hashlib
import re
import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import formats, translation
from django.utils.timezone import localtime

from gdpr.models import GdprDeclaration, InfRefRequest
from handoff import tokens
from portal.accounts.access import scope_of
from portal.audit.log import record
from portal.audit.models import AuditEvent
from portal.core.navigation import menu_for
from portal.onboarding import rules
from portal.onboarding.models import OnboardingTask
from tests.support.handoff_setup import ready_fixture, received_file  # noqa: F401
from transfers.models import Transfer

Action = AuditEvent.Action

# 13:03 in Copenhagen, where the portal's clock runs: December is an hour ahead of UTC.
DECEMBER_6 = datetime(2025, 12, 6, 12, 3, tzinfo=UTC)
INFREF = "FagsystemdefineredeDataRefGDPR4242_1"
FOLDER = "39123452/aarhus-ud"

# Words an English reader met in the log before: raw values and Danish.
RAW = [r"\bdone\b", r"\bin_progress\b", r"\bestablished\b", r"\btask_changed\b", r"state:", "via:"]
DANISH = ["Opgave", "opgave", "Dataspecifikation", "dataspecifikation", "Udført", "udført"]
DANISH += ["I gang", "Etableret", "I kø", "Skriv", "Kommandolinjen", "Portalen", "planlagt"]


def english(client):
    client.cookies["django_language"] = "en"
    return client


def make_transfer(ready, name: str = "borgere.csv", queued_at: datetime | None = None):
    transfer = Transfer.objects.create(
        route=ready.route,
        account=ready.sender,
        original_name=name,
        payload=f"/nonexistent/{uuid.uuid4()}",
        size=1,
        sha256=hashlib.sha256(name.encode()).hexdigest(),
        remote_name=f"{uuid.uuid4()}.csv",
    )
    if queued_at is not None:
        Transfer.objects.filter(pk=transfer.pk).update(queued_at=queued_at)
    return transfer


def log_table(client, **query) -> str:
    page = client.get(reverse("audit:log"), query)
    assert page.status_code == 200
    return page.text[page.text.index("<table") : page.text.index("</table>")]


def sentences(client, **query) -> list[str]:
    return [entry.sentence for entry in client.get(reverse("audit:log"), query).context["entries"]]


# --- Dates ------------------------------------------------------------------------------------


def test_a_date_in_english_is_day_month_year_on_a_24_hour_clock(client_for, ready):
    make_transfer(ready, queued_at=DECEMBER_6)
    text = english(client_for(ready.staff)).get(reverse("transfers:list")).text
    assert "6 Dec 2025 13:03" in text
    assert "12/06/2025" not in text and "p.m." not in text


def test_a_date_in_danish_names_the_month(client_for, ready):
    make_transfer(ready, queued_at=DECEMBER_6)
    assert "6. dec. 2025 13:03" in client_for(ready.staff).get(reverse("transfers:list")).text


def test_the_audit_log_dates_its_events_in_the_readers_format(client_for, ready):
    event = record(ready.staff, Action.SEND, make_transfer(ready), concerns=ready.route.parties())
    # The log is append-only for the portal; the test moves one event to a known moment.
    AuditEvent.objects.filter(pk=event.pk).update(at=DECEMBER_6)
    client = client_for(ready.staff)
    assert "6. dec. 2025 13:03" in log_table(client)
    assert "6 Dec 2025 13:03" in log_table(english(client))


@pytest.mark.parametrize(
    ("language", "value", "shown"),
    [
        ("en", "06/12/2025", "6 December 2025"),
        ("en", "6 Dec 2025", "6 December 2025"),
        ("da", "06.12.2025", "6. december 2025"),
        ("da", "2025-12-06", "6. december 2025"),
    ],
)
def test_a_typed_date_is_read_day_first(language, value, shown):
    from django import forms

    with translation.override(language):
        field = forms.DateField()
        assert formats.date_format(field.clean(value), "DATE_FORMAT") == shown


# --- The audit log in sentences ---------------------------------------------------------------


@pytest.fixture
def every_action(ready, staff_a, staff_b, operator, tmp_path):
    """One event of each action, in the shapes the portal records them, and what they read as
    in English. The ready integration has recorded its own task changes and declaration too."""
    route, parties = ready.route, ready.route.parties()
    transfer = make_transfer(ready)
    received = received_file(ready.receiver, route, tmp_path, b"751;1\r\n", "modtaget.csv")
    declaration = GdprDeclaration.objects.get(infref__name=INFREF, version=1)
    request = InfRefRequest.objects.get(infref__name=INFREF)
    token, _plain = tokens.issue(
        ready.receiver.it_system, name="nightly", valid_days=30, user=staff_b
    )
    tokens.revoke(token, staff_b)
    rules.set_state(
        OnboardingTask.objects.get(integration=route.integration, number=10),
        OnboardingTask.State.IN_PROGRESS,
        staff_a,
    )
    sha256 = transfer.sha256
    via_api = {"via": "API", "token": token.fingerprint}
    record(staff_a, Action.SEND, transfer, concerns=parties, sha256=sha256)
    record(None, Action.SEND, transfer, concerns=parties, sha256=sha256, **via_api)
    record(None, Action.SEND, transfer, concerns=parties, via="watched folder", folder=FOLDER)
    record(staff_a, Action.SEND, transfer, concerns=parties, sha256=sha256, via="command line")
    record(staff_a, Action.RESUBMIT, transfer, concerns=parties, sha256=sha256)
    record(staff_a, Action.CANCEL, transfer, concerns=parties, sha256=sha256)
    record(staff_a, Action.DOWNLOAD, transfer, concerns=parties, sha256=sha256)
    record(staff_a, Action.DOWNLOAD, declaration, concerns=parties, sha256=sha256)
    record(None, Action.DOWNLOAD, received, concerns=parties, **via_api)
    account = ready.sender
    for action in (Action.KEY_GENERATED, Action.KEY_IMPORTED, Action.HOST_KEY_CONFIRMED):
        record(staff_a, action, account, concerns=parties, fingerprint=account.key_fingerprint)
    record(operator, Action.ROUTE_CHANGED, route, concerns=parties, state="established")
    record(None, Action.RETENTION_DELETED, transfer, concerns=parties, sha256=sha256, days=30)
    record(None, Action.RETENTION_DELETED, received, concerns=parties, sha256=sha256, days=1)
    record(staff_a, Action.INFREF_REQUEST_WITHDRAWN, request, concerns=parties)
    with translation.override("en"):
        expires = formats.date_format(localtime(token.expires_at).date(), "SHORT_DATE_FORMAT")
        requested = formats.date_format(localtime(request.requested_at), "SHORT_DATE_FORMAT")
    fingerprint = token.fingerprint
    aarhus_route = f"{INFREF} → Beta Journal · Aarhus Kommune"
    return {
        Action.SEND: [
            "Ada queued borgere.csv for Aarhus Kommune",
            f"API token {fingerprint} queued borgere.csv for Aarhus Kommune",
            f"Watched folder {FOLDER} queued borgere.csv for Aarhus Kommune",
            "Ada (command line) queued borgere.csv for Aarhus Kommune",
        ],
        Action.RESUBMIT: ["Ada sent borgere.csv for Aarhus Kommune again"],
        Action.CANCEL: ["Ada cancelled sending borgere.csv for Aarhus Kommune"],
        Action.DOWNLOAD: [
            "Ada downloaded the local copy of borgere.csv for Aarhus Kommune",
            f"Ada downloaded version 1 of the GDPR declaration for {INFREF}",
            f"API token {fingerprint} downloaded the received file modtaget.csv",
        ],
        Action.KEY_GENERATED: ["Ada made a new key for SFTP account alfa_omsorg (Local simulator)"],
        Action.KEY_IMPORTED: ["Ada imported a key for SFTP account alfa_omsorg (Local simulator)"],
        Action.HOST_KEY_CONFIRMED: [
            "Ada confirmed the host key of SFTP account alfa_omsorg (Local simulator)"
        ],
        Action.ROUTE_CHANGED: [f"operator set route {aarhus_route} to Established"],
        Action.DECLARATION_SUBMITTED: [
            f"Ada submitted version 1 of the GDPR declaration for {INFREF}"
        ],
        Action.TASK_CHANGED: [
            "Ada set onboarding task 10 “Write the data specification” of Motor to In progress",
            "Ada set onboarding task 70 “Order the establishment of the SFTP route” of Motor "
            "for Aarhus Kommune to Done",
        ],
        Action.RETENTION_DELETED: [
            "The portal (scheduled) deleted the local copy of borgere.csv for Aarhus Kommune "
            "after 30 days",
            "The portal (scheduled) deleted the received file modtaget.csv after 1 day",
        ],
        Action.API_TOKEN_CREATED: [
            f"Bo made API token nightly ({fingerprint}) for Beta Journal, valid until {expires}"
        ],
        Action.API_TOKEN_REVOKED: [
            f"Bo revoked API token nightly ({fingerprint}) for Beta Journal"
        ],
        Action.INFREF_REQUEST_WITHDRAWN: [
            f"Ada withdrew the InfRef request for Alfa Omsorg made on {requested}"
        ],
    }


def test_each_action_reads_as_an_english_sentence(client_for, superuser, every_action):
    client = english(client_for(superuser))
    for action, expected in every_action.items():
        assert set(expected) <= set(sentences(client, action=action)), action


def test_an_english_reader_meets_no_raw_value_and_no_danish(client_for, superuser, every_action):
    table = log_table(english(client_for(superuser)))
    for raw in RAW:
        assert not re.search(raw, table), raw
    for word in DANISH:
        assert word not in table, word


def test_the_technical_details_stay_under_the_sentence(client_for, superuser, every_action, ready):
    client = english(client_for(superuser))
    page = client.get(reverse("audit:log"), {"action": Action.KEY_GENERATED})
    (entry,) = page.context["entries"]
    assert entry.technical == [("Fingerprint", ready.sender.key_fingerprint)]
    assert f'<code class="break-all">{ready.sender.key_fingerprint}</code>' in page.text
    # What the sentence's subject already says is not repeated under it.
    sends = client.get(reverse("audit:log"), {"action": Action.SEND}).context["entries"]
    assert {label for entry in sends for label, _value in entry.technical} == {"SHA-256"}


def test_a_danish_reader_reads_danish_sentences(client_for, superuser, every_action):
    """Needs the Danish catalogue to hold the sentences' msgids."""
    danish = sentences(client_for(superuser), action=Action.TASK_CHANGED)
    assert "Ada satte onboardingopgave 10 »Skriv dataspecifikationen« i Motor til I gang" in danish


# --- Old events -------------------------------------------------------------------------------


def _old_event(actor, action, object_type, summary, details, concerns) -> AuditEvent:
    """A row as an earlier portal left it, naming a record that is gone."""
    event = AuditEvent.objects.create(
        actor=actor,
        action=action,
        object_type=object_type,
        object_id="987654321",
        summary=summary,
        details=details,
    )
    event.concerns.set(concerns)
    return event


def test_an_event_whose_record_is_gone_reads_from_what_it_stored(client_for, ready, staff_a):
    parties = ready.route.parties()
    _old_event(
        staff_a,
        Action.SEND,
        "transfers.Transfer",
        "borgere.csv → Aarhus Kommune (I kø)",
        {"sha256": "ab" * 32, "retired": "kept"},
        parties,
    )
    _old_event(
        staff_a,
        Action.TASK_CHANGED,
        "onboarding.OnboardingTask",
        "10 Skriv dataspecifikationen",
        {"integration": "Motor", "state": "done"},
        parties,
    )
    _old_event(
        staff_a,
        Action.TASK_CHANGED,
        "onboarding.OnboardingTask",
        "70 Bestil etablering af SFTP-ruten – Aarhus Kommune",
        {"integration": "Motor", "state": "done", "task": "70", "municipality": "Aarhus Kommune"},
        parties,
    )
    _old_event(None, Action.RETENTION_DELETED, "transfers.Transfer", "gammel.csv", {}, parties)
    client = english(client_for(staff_a))
    read = sentences(client)
    assert "Ada queued borgere.csv → Aarhus Kommune (I kø)" in read
    assert "Ada set onboarding task 10 Skriv dataspecifikationen of Motor to Done" in read
    # With the task's number recorded, the title comes from the catalogue in English.
    assert (
        "Ada set onboarding task 70 “Order the establishment of the SFTP route” of Motor "
        "for Aarhus Kommune to Done"
    ) in read
    assert (
        "The portal (scheduled) deleted the stored file of gammel.csv after its retention period"
        in read
    )
    # A detail no sentence knows is still shown, as recorded.
    entries = client.get(reverse("audit:log"), {"action": Action.SEND}).context["entries"]
    assert ("retired", "kept") in entries[0].technical


def test_the_task_number_is_recorded_with_a_task_change(ready, staff_a):
    task = OnboardingTask.objects.get(integration=ready.route.integration, number=10)
    rules.set_state(task, OnboardingTask.State.IN_PROGRESS, staff_a)
    event = AuditEvent.objects.filter(action=Action.TASK_CHANGED).first()
    assert (event.details["task"], event.details["state"]) == ("10", "in_progress")
    assert "municipality" not in event.details


# --- The page's cost ----------------------------------------------------------------------------


def _log_queries(client, **query) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("audit:log"), query).status_code == 200
    return len(queries)


def test_the_number_of_queries_does_not_grow_with_the_events(
    client_for, superuser, ready, every_action
):
    # Downloads name three kinds of record: a transfer, a declaration and a received file.
    client = english(client_for(superuser))
    few = _log_queries(client, action=Action.DOWNLOAD)
    declaration = GdprDeclaration.objects.first()
    for number in range(20):
        transfer = make_transfer(ready, f"fil-{number}.csv")
        record(superuser, Action.DOWNLOAD, transfer, concerns=[])
        record(superuser, Action.DOWNLOAD, declaration, concerns=[])
    assert _log_queries(client, action=Action.DOWNLOAD) == few


# --- The menu -----------------------------------------------------------------------------------


@pytest.fixture
def roles(staff_a, architect, operator, superuser):
    return {"vendor": staff_a, "architect": architect, "kombit": operator, "superuser": superuser}


def test_every_page_in_the_menu_answers_for_each_role_that_sees_it(client_for, roles):
    for role, user in roles.items():
        client = client_for(user)
        for item in menu_for("/", scope_of(user)):
            assert client.get(item["href"]).status_code == 200, (role, item["href"])
    assert client_for(roles["superuser"]).get(reverse("admin:index")).status_code == 200


def test_the_audit_log_is_in_everyones_menu(client_for, roles):
    for role, user in roles.items():
        page = english(client_for(user)).get(reverse("dashboard"))
        assert [item for item in page.context["menu"] if item["href"] == reverse("audit:log")], role
        assert f'href="{reverse("audit:log")}"' in page.text
        with translation.override("en"):
            labels = [str(item["label"]) for item in menu_for("/", scope_of(user))]
        assert "Audit log" in labels, role
