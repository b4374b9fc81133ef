"""Alerts: a missed expected delivery, a failed transfer and a quarantined file, raised once;
worded when read, in the reader's language on the overview and in Danish in the mail."""

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from django.utils import translation

from portal.accounts.models import Organisation
from portal.alerts.models import Alert
from portal.alerts.tasks import check_expected_deliveries
from portal.outbox.models import OutgoingMail
from tests.conftest import make_user
from tests.support import engine
from tests.support.clients import english
from tests.support.records import make_integration, make_route, make_transfers
from tests.support.sending import inbox, queue
from transfers import tasks
from transfers.fetch import fetch_inbox
from transfers.models import Route, Transfer

CPH = ZoneInfo("Europe/Copenhagen")
MONDAY = datetime(2025, 3, 10, tzinfo=CPH).date()


def at(hour: int, minute: int = 0, day=MONDAY) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=CPH)


@pytest.fixture
def daily_route(integration, aarhus, operator):
    route = make_route(integration, aarhus, operator)
    route.state = Route.State.ESTABLISHED
    route.expected_frequency = Route.Frequency.DAILY
    route.expected_by = time(6, 0)
    route.contacts = "drift@example.invalid,\nvagt@example.invalid"
    route.full_clean()
    route.save()
    return route


@pytest.fixture
def integration(system_a, system_b, staff_a, aarhus):
    return make_integration(system_a, system_b, staff_a, [aarhus])


def test_a_missed_daily_delivery_raises_one_alert_and_one_mail_after_the_deadline(
    daily_route, vendor_a, vendor_b, aarhus
):
    assert check_expected_deliveries(now=at(5, 59)) == 0
    assert not Alert.objects.exists()
    assert check_expected_deliveries(now=at(6, 1)) == 1
    assert check_expected_deliveries(now=at(9, 0)) == 0  # the same period: raised once
    alert = Alert.objects.get()
    assert alert.kind == Alert.Kind.MISSED_DELIVERY
    assert alert.route == daily_route
    assert alert.dedupe_key == f"missed:{daily_route.pk}:2025-03-10"
    assert set(alert.concerns.all()) == {vendor_a, vendor_b, aarhus}
    assert alert.params == {
        "municipality": aarhus.name,
        "day": "2025-03-10",
        "deadline": "2025-03-10T06:00:00+01:00",
    }
    mail = OutgoingMail.objects.get()
    assert mail.to == ["drift@example.invalid", "vagt@example.invalid"]
    with translation.override("da"):
        assert alert.message in mail.body
    # The next day is a period of its own.
    assert check_expected_deliveries(now=at(7, 0, MONDAY.replace(day=11))) == 1
    assert OutgoingMail.objects.count() == 2


def test_no_alert_when_a_file_was_queued_today(daily_route):
    make_transfers(daily_route, 1, at=at(0, 30))
    assert check_expected_deliveries(now=at(6, 1)) == 0
    assert not Alert.objects.exists()


def test_a_file_queued_yesterday_does_not_count_for_today(daily_route):
    make_transfers(daily_route, 1, at=at(23, 30, MONDAY.replace(day=9)))
    assert check_expected_deliveries(now=at(6, 1)) == 1


def test_weekday_and_weekly_expectations(daily_route):
    daily_route.expected_frequency = Route.Frequency.WEEKDAYS
    daily_route.save()
    saturday = MONDAY.replace(day=15)
    assert check_expected_deliveries(now=at(12, 0, saturday)) == 1
    assert Alert.objects.get().dedupe_key.endswith(":2025-03-14")  # Friday's file
    Alert.objects.all().delete()
    daily_route.expected_frequency = Route.Frequency.WEEKLY
    daily_route.save()
    make_transfers(daily_route, 1, at=at(8, 0))  # Monday, after the deadline: late, not missed
    assert check_expected_deliveries(now=at(12, 0, saturday)) == 0


def test_no_alert_without_an_expectation_or_for_a_route_not_established(daily_route):
    Route.objects.filter(pk=daily_route.pk).update(state=Route.State.SUSPENDED)
    assert check_expected_deliveries(now=at(7, 0)) == 0
    Route.objects.filter(pk=daily_route.pk).update(
        state=Route.State.ESTABLISHED, expected_frequency=""
    )
    assert check_expected_deliveries(now=at(7, 0)) == 0


def test_no_mail_without_contacts(daily_route):
    Route.objects.filter(pk=daily_route.pk).update(contacts="")
    assert check_expected_deliveries(now=at(7, 0)) == 1
    assert not OutgoingMail.objects.exists()


def test_contacts_must_be_addresses(daily_route):
    daily_route.contacts = "drift@example.invalid, not an address"
    with pytest.raises(ValidationError):
        daily_route.full_clean()


@pytest.fixture
def setup(ready_route) -> engine.ReadyRoute:
    """Routes to Aarhus and Odense on a running simulator."""
    return ready_route(municipalities=2)


def test_a_failed_transfer_raises_an_alert(setup, vendor_a, vendor_b, aarhus):
    engine.load_registry(setup.sim, routes=())  # the platform knows no route
    transfer = queue(setup.route, setup.staff)
    tasks.send_transfer(transfer.pk)
    transfer.refresh_from_db()
    assert transfer.state == Transfer.State.FAILED
    alert = Alert.objects.get()
    assert alert.kind == Alert.Kind.TRANSFER_FAILED
    assert alert.transfer == transfer
    assert alert.dedupe_key == f"failed:{transfer.pk}:1"
    assert alert.params["file"] == transfer.original_name
    assert alert.params["reason"].startswith("106: ")
    assert set(alert.concerns.all()) == {vendor_a, vendor_b, aarhus}
    # The route has no contacts; the person who sent the file is told, in Danish.
    with translation.override("da"):
        said = alert.message
    assert " fejlede: 106: " in said
    assert OutgoingMail.objects.get(body__contains=said).to == [setup.staff.email]


def test_a_quarantined_file_raises_one_alert(setup, monkeypatch, vendor_b):
    monkeypatch.setattr("transfers.fetch.METADATA_GRACE_SECONDS", 0)
    folder = setup.sim.data_dir / "beta_journal" / "IN"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stray.csv").write_bytes(b"no metadata")
    fetch_inbox(setup.receiver.pk)
    fetch_inbox(setup.receiver.pk)
    alert = Alert.objects.get()
    assert alert.kind == Alert.Kind.FETCH_QUARANTINED
    assert alert.received_file.remote_name == "stray.csv"
    assert alert.params["file"] == "stray.csv"
    with translation.override("en"):
        assert alert.message.startswith("stray.csv on ")
        assert " was quarantined: " in alert.message
    assert list(alert.concerns.all()) == [vendor_b]
    assert inbox(setup) == ["stray.csv"]


def test_the_dashboard_shows_alerts_to_those_concerned_and_resolving_hides_them(
    daily_route, client, staff_a
):
    check_expected_deliveries(now=at(7, 0))
    alert = Alert.objects.get()
    page = english(client)
    page.force_login(staff_a)
    html = page.get(reverse("dashboard")).content.decode()
    assert 'id="alerts-heading"' in html
    assert "Expected file not sent" in html
    assert reverse("alerts:resolve", args=[alert.pk]) in html

    outsider_vendor = Organisation.objects.create(kind="vendor", name="Gamma", cvr="12345674")
    outsider = make_user("staff-c", outsider_vendor)
    other = english(client.__class__())
    other.force_login(outsider)
    assert "Expected file not sent" not in other.get(reverse("dashboard")).content.decode()
    assert other.post(reverse("alerts:resolve", args=[alert.pk])).status_code == 404
    alert.refresh_from_db()
    assert alert.resolved_at is None

    response = page.post(reverse("alerts:resolve", args=[alert.pk]))
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.resolved_at is not None and alert.resolved_by == staff_a
    assert "Expected file not sent" not in page.get(reverse("dashboard")).content.decode()


MISSED_EN = "No file was sent for Aarhus Kommune since 10 Mar 2025 (expected by 10 Mar 2025 06:00)."
MISSED_DA = (
    "Der er ikke sendt nogen fil for Aarhus Kommune siden 10. marts 2025 "
    "(forventet senest 10. marts 2025 06:00)."
)


def overview(client, user, language: str) -> str:
    client.cookies["django_language"] = language
    client.force_login(user)
    return client.get(reverse("dashboard")).content.decode()


def test_the_same_alert_reads_in_each_readers_language_and_is_mailed_in_danish(
    daily_route, client, staff_a, staff_b
):
    # Raised by the scheduler, whatever language it happens to run under.
    with translation.override("en"):
        check_expected_deliveries(now=at(7, 0))
    assert Alert.objects.get().legacy_message == ""
    english_page = overview(client, staff_a, "en")
    assert MISSED_EN in english_page
    assert MISSED_DA not in english_page
    danish_page = overview(client.__class__(), staff_b, "da")
    assert MISSED_DA in danish_page
    assert MISSED_EN not in danish_page
    body = OutgoingMail.objects.get().body
    assert MISSED_DA in body and "Forventet fil ikke sendt" in body
    assert MISSED_EN not in body


def test_each_hook_keeps_values_that_read_in_both_languages():
    said = {
        Alert.Kind.TRANSFER_FAILED: (
            {"file": "a.csv", "municipality": "Aarhus Kommune", "reason": "106: Ukendt rute"},
            "a.csv for Aarhus Kommune failed: 106: Ukendt rute",
            "a.csv til Aarhus Kommune fejlede: 106: Ukendt rute",
        ),
        Alert.Kind.NO_RECEIPT: (
            {"file": "a.csv", "municipality": "Aarhus Kommune", "unreadable": False, "minutes": 30},
            "a.csv for Aarhus Kommune: No receipt from KOMBIT 30 minutes after it was sent.",
            "a.csv til Aarhus Kommune: Ingen kvittering fra KOMBIT 30 minutter efter afsendelsen.",
        ),
        Alert.Kind.PLATFORM_UNREACHABLE: (
            {
                "account": "alfa",
                "host": "sp.example",
                "port": 22,
                "reason": "timed out",
                "hours": 48,
            },
            "alfa cannot reach sp.example:22 (timed out).",
            "alfa kan ikke nå sp.example:22 (timed out).",
        ),
        Alert.Kind.FETCH_QUARANTINED: (
            {"file": "x.csv", "account": "beta", "reason": "no metadata"},
            "x.csv on beta was quarantined: no metadata",
            "x.csv på beta blev sat i karantæne: no metadata",
        ),
    }
    for kind, (params, in_english, in_danish) in said.items():
        alert = Alert(kind=kind, params=params)
        with translation.override("en"):
            assert alert.message.startswith(in_english), kind
        with translation.override("da"):
            assert alert.message.startswith(in_danish), kind
    unreadable = Alert(kind=Alert.Kind.NO_RECEIPT, params={**said[Alert.Kind.NO_RECEIPT][0]})
    unreadable.params["unreadable"] = True
    with translation.override("en"):
        assert "KOMBIT's receipt could not be read" in unreadable.message


def test_an_alert_whose_values_do_not_fit_its_words_shows_its_kind(caplog):
    alert = Alert(kind=Alert.Kind.NO_RECEIPT, params={"file": "a.csv"})
    with translation.override("en"):
        assert alert.message == "No receipt from KOMBIT"
    assert "cannot be worded" in caplog.text


def test_a_caller_with_text_of_its_own_has_it_shown_as_written(db):
    from portal.alerts.service import raise_alert

    raise_alert(Alert.Kind.TRANSFER_FAILED, key="own", message="Egen tekst.", concerns=[])
    assert Alert.objects.get().message == "Egen tekst."
    with pytest.raises(TypeError):
        raise_alert(Alert.Kind.TRANSFER_FAILED, key="neither", concerns=[])
    with pytest.raises(TypeError):
        raise_alert(
            Alert.Kind.TRANSFER_FAILED, key="both", params={}, message="Tekst.", concerns=[]
        )


@pytest.mark.django_db(transaction=True)  # SQLite alters a table only outside a transaction
def test_an_alert_raised_before_the_migration_still_shows_its_text(
    daily_route, client, staff_a, vendor_a
):
    """Rows from before `params`, and rows written straight into the table by the bench's scale
    fill, have only the Danish text in the column `message`: every reader sees that."""
    before = [("alerts", "0003_waiting_and_no_receipt")]
    text = (
        "Der er ikke sendt nogen fil for Aarhus Kommune siden 10.03.2025 "
        "(forventet senest 10.03.2025 06:00)."
    )
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps.get_model("alerts", "Alert")
        made = old.objects.create(
            kind=Alert.Kind.MISSED_DELIVERY,
            dedupe_key="missed:old",
            route_id=daily_route.pk,
            message=text,
        )
        made.concerns.set([vendor_a.pk])
    finally:
        # The schema is the suite's, whatever happened above.
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    alert = Alert.objects.get()
    assert alert.params is None and alert.legacy_message == text
    assert text in overview(client, staff_a, "en")
    # The column the bench's scale fill writes.
    assert Alert._meta.get_field("legacy_message").column == "message"
