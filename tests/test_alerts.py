"""Alerts: a missed expected delivery, a failed transfer and a quarantined file, raised once."""

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from portal.accounts.models import Organisation
from portal.alerts.models import Alert
from portal.alerts.tasks import check_expected_deliveries
from portal.outbox.models import OutgoingMail
from tests.conftest import make_user
from tests.test_dashboard import english, make_route, make_transfers
from tests.test_transfer_engine import inbox, queue, setup  # noqa: F401
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
    from tests.test_dashboard import make_integration

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
    mail = OutgoingMail.objects.get()
    assert mail.to == ["drift@example.invalid", "vagt@example.invalid"]
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


def test_a_failed_transfer_raises_an_alert(setup, vendor_a, vendor_b, aarhus):  # noqa: F811
    from tests import engine

    engine.load_registry(setup.sim, routes=())  # the platform knows no route
    transfer = queue(setup)
    tasks.send_transfer(transfer.pk)
    transfer.refresh_from_db()
    assert transfer.state == Transfer.State.FAILED
    alert = Alert.objects.get()
    assert alert.kind == Alert.Kind.TRANSFER_FAILED
    assert alert.transfer == transfer
    assert alert.dedupe_key == f"failed:{transfer.pk}:1"
    assert "106" in alert.message
    assert set(alert.concerns.all()) == {vendor_a, vendor_b, aarhus}
    # The route has no contacts; the person who sent the file is told.
    assert OutgoingMail.objects.get(body__contains=alert.message).to == [setup.user.email]


def test_a_quarantined_file_raises_one_alert(setup, monkeypatch, vendor_b):  # noqa: F811
    monkeypatch.setattr("transfers.fetch.METADATA_GRACE_SECONDS", 0)
    folder = setup.sim.data_dir / "beta_journal" / "IN"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stray.csv").write_bytes(b"no metadata")
    fetch_inbox(setup.receiver.pk)
    fetch_inbox(setup.receiver.pk)
    alert = Alert.objects.get()
    assert alert.kind == Alert.Kind.FETCH_QUARANTINED
    assert alert.received_file.remote_name == "stray.csv"
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
