"""A send whose receipt does not come, or cannot be read, is shown, alerted once, and can be sent
again; nothing is read again and again, and nothing waits in silence.

- No receipt within TRANSFER_RECEIPT_TIMEOUT_SECONDS: the transfer shows "No receipt", one alert
  goes to the route's contacts and the sender; a receipt that comes later still settles it and
  resolves the alert.
- Its owner sends it again: delivered on the same record, the alert resolved. An earlier trigger
  the platform is still holding is not written over: the send goes back to waiting for it.
- An unreadable receipt is kept byte for byte, shown and offered as received, taken off the
  platform and alerted once; one over 1 MiB the same without being fetched.
- `send_file --wait` ends on "no receipt" as a failure.
"""

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from handoff.cli import FAILED, wait_for
from portal.alerts.models import Alert
from portal.outbox.models import OutgoingMail
from tests.support.browser import chromium, log_in, screenshot
from tests.support.engine import SENDER
from tests.support.sending import page, queue
from transfers import tasks
from transfers.fetch import fetch_inbox
from transfers.models import Transfer

pytestmark = pytest.mark.django_db(transaction=True)
State = Transfer.State


@pytest.fixture
def setup(settings, monkeypatch, ready_route):
    settings.TRANSFER_RETRY_SECONDS = 1
    # The send does not wait on its session for the receipt: the test decides what the
    # platform's sender IN/ holds when the portal looks.
    monkeypatch.setattr(tasks, "RECEIPT_WAIT_SECONDS", 0)
    ready = ready_route()
    return ready.sim, ready.route, ready.sender, ready.receiver


def receipt_on_platform(sim, transfer: Transfer) -> Path:
    return sim.data_dir / SENDER / "IN" / f"{transfer.remote_name}.sftpreceipt"


def sent_and_routed(sim, route, user) -> Transfer:
    transfer = queue(route, user)
    assert tasks.send_transfer(transfer.pk) == "sent"
    assert sim.router.wait_idle(10)
    transfer.refresh_from_db()
    assert transfer.state == State.SENT
    return transfer


def overdue(transfer: Transfer, settings) -> None:
    """As if the receipt timeout had passed since the trigger was written."""
    late = timedelta(seconds=settings.TRANSFER_RECEIPT_TIMEOUT_SECONDS + 1)
    Transfer.objects.filter(pk=transfer.pk).update(sent_at=timezone.now() - late)


def no_receipt_alerts(transfer: Transfer):
    return Alert.objects.filter(transfer=transfer, kind=Alert.Kind.NO_RECEIPT)


def test_a_send_without_a_receipt_is_shown_alerted_once_and_settled_by_a_late_receipt(
    setup, settings, tmp_path, client_for, staff_a
):
    sim, route, _sender, receiver = setup
    transfer = sent_and_routed(sim, route, staff_a)
    held = tmp_path / "held.sftpreceipt"
    shutil.move(receipt_on_platform(sim, transfer), held)  # the receipt is late

    assert tasks.collect_receipts() == 0
    assert Transfer.objects.get(pk=transfer.pk).state == State.SENT  # not yet overdue
    overdue(transfer, settings)
    mails_before = OutgoingMail.objects.order_by("pk").values_list("pk", flat=True).last() or 0
    for _ in range(3):
        tasks.collect_receipts()
    transfer.refresh_from_db()
    assert transfer.state == State.NO_RECEIPT
    alert = no_receipt_alerts(transfer).get()
    assert alert.resolved_at is None and alert.is_error
    assert set(alert.concerns.all()) == set(route.parties())
    mail = OutgoingMail.objects.filter(pk__gt=mails_before).get()  # one mail, once
    assert staff_a.email in mail.to and transfer.original_name in mail.body

    shown = page(client_for(staff_a), transfer)
    assert 'id="transfer-no-receipt"' in shown and 'id="transfer-resubmit"' in shown
    assert " 15 " in shown.split('id="transfer-no-receipt"')[1].split("</p>")[0]  # minutes

    shutil.move(held, receipt_on_platform(sim, transfer))  # it comes after all
    assert tasks.collect_receipts() == 1
    transfer.refresh_from_db()
    assert transfer.state == State.DELIVERED and transfer.file_transfer_uuid
    assert no_receipt_alerts(transfer).get().resolved_at is not None
    assert not receipt_on_platform(sim, transfer).exists()
    assert fetch_inbox(receiver.pk).received == 1


def test_its_owner_sends_it_again_and_it_is_delivered_on_the_same_record(
    setup, settings, client_for, staff_a
):
    """The platform routed the file but lost its receipt: sent again, it is routed again (the
    page warns of that) and settles with the new receipt."""
    sim, route, _sender, receiver = setup
    transfer = sent_and_routed(sim, route, staff_a)
    receipt_on_platform(sim, transfer).unlink()
    assert fetch_inbox(receiver.pk).received == 1  # the receiver has the first delivery
    overdue(transfer, settings)
    tasks.collect_receipts()
    first_transaction = Transfer.objects.get(pk=transfer.pk).transaction_id

    client = client_for(staff_a)
    url = reverse("transfers:detail", args=[transfer.pk])
    assert client.post(reverse("transfers:resubmit", args=[transfer.pk]))["Location"] == url
    transfer.refresh_from_db()
    assert transfer.state == State.QUEUED and transfer.transaction_id != first_transaction
    assert no_receipt_alerts(transfer).get().resolved_at is not None
    # A second press finds nothing to send again.
    client.post(reverse("transfers:resubmit", args=[transfer.pk]))
    assert Transfer.objects.get(pk=transfer.pk).state == State.QUEUED

    assert tasks.send_transfer(transfer.pk) == "sent"
    assert sim.router.wait_idle(10)
    tasks.collect_receipts()
    transfer.refresh_from_db()
    assert (transfer.state, transfer.attempts) == (State.DELIVERED, 2)
    routed = [o.error for o in sim.router.outcomes if o.name == transfer.remote_name]
    assert routed == [None, None]
    assert not list((sim.data_dir / SENDER / "OUT").iterdir())


def test_sending_again_never_writes_over_a_trigger_the_platform_holds(
    setup, settings, client_for, staff_a
):
    """The trigger is still waiting to be routed: the platform refuses to remove it, so the
    send goes back to waiting for that trigger's receipt instead of uploading the file anew."""
    sim, route, _sender, _receiver = setup
    sim.router.delay = 3600  # taken up, not routed yet
    transfer = queue(route, staff_a)
    assert tasks.send_transfer(transfer.pk) == "sent"
    overdue(transfer, settings)
    tasks.collect_receipts()
    assert Transfer.objects.get(pk=transfer.pk).state == State.NO_RECEIPT
    trigger = sim.data_dir / SENDER / "OUT" / f"{transfer.remote_name}.trigger"
    written = trigger.read_bytes()

    client_for(staff_a).post(reverse("transfers:resubmit", args=[transfer.pk]))
    assert tasks.send_transfer(transfer.pk) == "sent"
    transfer.refresh_from_db()
    assert transfer.state == State.SENT and transfer.trigger_started_at is None
    assert trigger.read_bytes() == written  # the platform's trigger, untouched


def test_an_unreadable_receipt_is_kept_shown_alerted_once_and_not_read_again(
    setup, client_for, staff_a
):
    sim, route, _sender, _receiver = setup
    transfer = sent_and_routed(sim, route, staff_a)
    garbage = b"<Receipt><FileTransferUUID>\xff\xfe not a receipt"
    receipt_on_platform(sim, transfer).write_bytes(garbage)

    # Read once, it may have been caught while written: looked at again before it counts.
    assert tasks.collect_receipts() == 0
    assert Transfer.objects.get(pk=transfer.pk).state == State.SENT
    assert tasks.collect_receipts() == 1
    transfer.refresh_from_db()
    assert transfer.state == State.NO_RECEIPT
    assert transfer.last_error.startswith("The receipt could not be read: ")
    assert tasks.unreadable_receipt(transfer.remote_name).read_bytes() == garbage
    assert not receipt_on_platform(sim, transfer).exists()
    assert no_receipt_alerts(transfer).count() == 1
    assert tasks.collect_receipts() == 0  # nothing left to read
    assert no_receipt_alerts(transfer).count() == 1

    client = client_for(staff_a)
    shown = page(client, transfer)
    assert 'id="transfer-unreadable-receipt"' in shown
    assert "<Receipt><FileTransferUUID>" in shown  # shown as received
    response = client.get(reverse("transfers:unreadable_receipt", args=[transfer.pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == garbage
    assert f"{transfer.remote_name}.sftpreceipt" in response["Content-Disposition"]


def test_a_receipt_over_1_mib_is_not_fetched_but_alerted_and_taken_off_the_platform(setup, staff_a):
    sim, route, _sender, _receiver = setup
    transfer = sent_and_routed(sim, route, staff_a)
    receipt_on_platform(sim, transfer).write_bytes(b" " * ((1 << 20) + 1))

    assert tasks.collect_receipts() == 1
    transfer.refresh_from_db()
    assert transfer.state == State.NO_RECEIPT
    assert "over 1 MiB" in transfer.last_error
    assert not tasks.unreadable_receipt(transfer.remote_name).exists()
    assert not receipt_on_platform(sim, transfer).exists()
    assert no_receipt_alerts(transfer).count() == 1


def test_waiting_on_the_command_line_ends_on_no_receipt_as_a_failure(setup, settings, staff_a):
    sim, route, _sender, _receiver = setup
    transfer = sent_and_routed(sim, route, staff_a)
    receipt_on_platform(sim, transfer).unlink()
    overdue(transfer, settings)
    tasks.collect_receipts()
    reported = []
    assert wait_for([transfer.pk], timeout=5, report=reported.append, poll=0.05) == FAILED
    assert [t.state for t in reported] == [State.NO_RECEIPT]


@pytest.mark.browser
def test_in_the_browser_each_party_sees_the_alert_and_the_sender_sends_again(
    setup, settings, live_server, staff_a, staff_b, architect
):
    """Walked in Danish, as the portal speaks by default: the sending vendor follows the alert
    to the transfer and sends it again, the page follows it to delivered; the municipality's
    architect and the receiving vendor see the same alert on their overviews."""
    sim, route, _sender, receiver = setup
    transfer = sent_and_routed(sim, route, staff_a)
    receipt_on_platform(sim, transfer).unlink()
    assert fetch_inbox(receiver.pk).received == 1
    overdue(transfer, settings)
    tasks.collect_receipts()

    with chromium() as browser:
        for user in (architect, staff_b):
            page = log_in(browser, live_server.url, user.username)
            page.locator(".alert", has_text="Ingen kvittering fra KOMBIT").wait_for()
            screenshot(page, f"no-receipt-overview-{user.username}")
        page = log_in(browser, live_server.url, staff_a.username)
        alert = page.locator(".alert", has_text="Ingen kvittering fra KOMBIT")
        alert.get_by_role("link", name="Se overførslen").click()
        page.locator("#transfer-no-receipt").wait_for()
        screenshot(page, "no-receipt-transfer")
        page.get_by_role("button", name="Send igen").click()
        page.locator('#transfer-status[data-state="queued"]').wait_for()
        assert tasks.send_transfer(transfer.pk) == "sent"
        assert sim.router.wait_idle(10)
        tasks.collect_receipts()
        page.locator('#transfer-status[data-state="delivered"]').wait_for(timeout=10_000)
        screenshot(page, "no-receipt-sent-again")
        page.goto(f"{live_server.url}/")
        assert not page.locator(".alert", has_text="Ingen kvittering fra KOMBIT").count()
