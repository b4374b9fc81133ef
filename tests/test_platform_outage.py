"""A send waits out a platform it cannot reach, uncounted; one alert per outage; only the
platform's refusals count toward TRANSFER_MAX_ATTEMPTS.

- The simulator is stopped (connection refused): a send goes back to the queue without using
  an attempt, however often it is tried and however few attempts are allowed, with a
  `transfer-wait-` schedule after as long as it has waited so far (clamped to the retry bounds,
  and to the end of the wait) and the wait on its page; the sending account raises one alert
  for the whole outage. The simulator comes back on the same port and data folder: the next try
  delivers the file once, and the alert is resolved by that connection.
- A send still unreachable TRANSFER_OUTAGE_WAIT_SECONDS after its first fault fails with the
  give-up message and one transfer-failed alert.
- An upload the live server refuses ("permission denied") is counted, retried with a
  `transfer-retry-` schedule and fails after TRANSFER_MAX_ATTEMPTS, with no outage alert.
- A real worker cluster whose settings would have failed every send within about two seconds
  waits out a 12-second outage and delivers every send exactly once.
"""

import collections
import contextlib
import hashlib
import os
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule, Task

from portal.alerts.models import Alert
from portal.outbox.models import OutgoingMail
from tests.support import engine, private_portal
from tests.support.browser import chromium, log_in, screenshot
from tests.support.engine import RECEIVER, SENDER
from tests.support.sending import DATA, files, page, queue
from tests.support.simulator_fixtures import wait_for
from tests.support.system import child_environment
from tests.support.workers import worker_cluster
from transfers import tasks
from transfers.fetch import fetch_inbox
from transfers.models import ReceivedFile, Route, Transfer
from transfers.queueing import SEND_TASK
from transfers.simulator.registry import Registry
from transfers.simulator.server import Simulator

pytestmark = pytest.mark.django_db(transaction=True)
State = Transfer.State
UNREACHABLE = Alert.Kind.PLATFORM_UNREACHABLE
WAITING = "waiting for the platform"


@pytest.fixture
def setup(settings, ready_route):
    settings.TRANSFER_RETRY_SECONDS = 1
    ready = ready_route()
    return ready.sim, ready.route, ready.sender, ready.receiver


@contextlib.contextmanager
def back_up(sim: Simulator) -> Iterator[Simulator]:
    """The platform back after an outage: a new server on the same port, data folder and host
    key, with the portal's records as its registry."""
    again = Simulator(sim.data_dir, registry=Registry(), port=sim.port, host_key=sim.host_key)
    engine.load_registry(again)  # before it listens: no login meets an empty registry
    again.start()
    try:
        yield again
    finally:
        again.stop()


def next_tries(transfer: Transfer, kind: str):
    return Schedule.objects.filter(func=SEND_TASK, name__startswith=f"{kind}-{transfer.pk}-")


def outage_alerts(account):
    return Alert.objects.filter(
        kind=UNREACHABLE, dedupe_key__startswith=f"unreachable:{account.pk}:"
    )


def send_and_time_next_try(transfer: Transfer) -> tuple[str, timedelta, timedelta]:
    """The send's outcome, and how long after the end and the start of the send its newest
    wait schedule is due: the delay lies between the two."""
    before = timezone.now()
    outcome = tasks.send_transfer(transfer.pk)
    after = timezone.now()
    newest = next_tries(transfer, "transfer-wait").order_by("-id").first()
    return outcome, newest.next_run - after, newest.next_run - before


@pytest.mark.system
def test_a_send_waits_out_a_refused_connection_uncounted_and_delivers_once_it_is_back(
    setup, settings, client_for, staff_a, system_a
):
    sim, route, sender, receiver = setup
    settings.TRANSFER_MAX_ATTEMPTS = 1  # the portal that counted these would fail at once
    Route.objects.filter(pk=route.pk).update(contacts="drift@example.invalid")
    transfer = queue(route, staff_a)
    sim.stop()

    outcome, shortest, longest = send_and_time_next_try(transfer)
    assert outcome == WAITING
    assert shortest <= timedelta(seconds=1) <= longest  # now + TRANSFER_RETRY_SECONDS
    transfer.refresh_from_db()
    assert (transfer.state, transfer.attempts) == (State.QUEUED, 0)
    assert "Connection refused" in transfer.last_error
    since = transfer.waiting_since
    assert since is not None
    assert not next_tries(transfer, "transfer-retry").exists()
    assert 'id="transfer-waiting"' in page(client_for(staff_a), transfer)

    for _try in range(8):
        assert tasks.send_transfer(transfer.pk) == WAITING
    transfer.refresh_from_db()
    assert (transfer.state, transfer.attempts, transfer.waiting_since) == (State.QUEUED, 0, since)
    assert next_tries(transfer, "transfer-wait").count() == 9
    # One alert for the whole outage, for the vendor of the sending IT system.
    alert = outage_alerts(sender).get()
    assert Alert.objects.filter(kind=UNREACHABLE).count() == 1
    assert alert.resolved_at is None
    assert list(alert.concerns.all()) == [system_a.vendor]
    # Mailed once, to who looks after the routes the account carries.
    [mail] = OutgoingMail.objects.filter(subject__contains=str(alert.get_kind_display()))
    assert mail.to == ["drift@example.invalid"]
    assert alert.message in mail.body
    sender.refresh_from_db()
    assert sender.unreachable_since is not None

    with back_up(sim) as again:
        assert tasks.send_transfer(transfer.pk) == "sent"
        assert again.router.wait_idle(10)
        tasks.collect_receipts()
        transfer.refresh_from_db()
        assert (transfer.state, transfer.attempts) == (State.DELIVERED, 1)
        assert transfer.waiting_since is None
        alert.refresh_from_db()
        assert alert.resolved_at is not None and alert.resolved_by is None
        sender.refresh_from_db()
        assert sender.unreachable_since is None
        routed = [o.error for o in again.router.outcomes if o.name == transfer.remote_name]
        assert routed == [None]
        assert fetch_inbox(receiver.pk).received == 1
        received = ReceivedFile.objects.get(remote_name=transfer.remote_name)
        assert received.sha256 == transfer.sha256 == hashlib.sha256(DATA).hexdigest()
        assert files(again.data_dir / SENDER / "OUT") == []
    assert Alert.objects.filter(kind=UNREACHABLE).count() == 1  # coming back raised none


def test_a_send_unreachable_for_the_whole_wait_fails_with_the_reason_and_one_alert(
    setup, settings, staff_a
):
    sim, route, sender, _receiver = setup
    settings.TRANSFER_OUTAGE_WAIT_SECONDS = 3600
    transfer = queue(route, staff_a)
    sim.stop()
    assert tasks.send_transfer(transfer.pk) == WAITING

    # The next try comes after as long as the send has waited, at most
    # TRANSFER_RETRY_MAX_SECONDS, and no later than just after the wait ends.
    for waited, most, delay in ((100, 600, 100), (100, 60, 60), (3550, 600, 51)):
        settings.TRANSFER_RETRY_MAX_SECONDS = most
        started = timezone.now() - timedelta(seconds=waited)
        Transfer.objects.filter(pk=transfer.pk).update(waiting_since=started)
        outcome, shortest, longest = send_and_time_next_try(transfer)
        assert outcome == WAITING
        # A send takes a moment, and the time waited is taken during it.
        slack = timedelta(milliseconds=500)
        assert shortest - slack <= timedelta(seconds=delay) <= longest + slack, (waited, most)

    Transfer.objects.filter(pk=transfer.pk).update(
        waiting_since=timezone.now() - timedelta(seconds=3600)
    )
    waits = next_tries(transfer, "transfer-wait").count()
    assert tasks.send_transfer(transfer.pk) == "failed"
    transfer.refresh_from_db()
    assert (transfer.state, transfer.attempts) == (State.FAILED, 0)  # none reached it
    assert transfer.last_error.startswith(
        "Serviceplatformen did not answer for 1 h 0 min; given up. Last: Cannot connect to "
    )
    assert next_tries(transfer, "transfer-wait").count() == waits  # not tried again
    failed = Alert.objects.filter(kind=Alert.Kind.TRANSFER_FAILED)
    assert [alert.transfer_id for alert in failed] == [transfer.pk]
    assert outage_alerts(sender).count() == 1


def test_an_upload_the_platform_refuses_counts_and_fails_after_the_attempts_without_outage_alert(
    setup, settings, staff_a
):
    sim, route, sender, _receiver = setup
    settings.TRANSFER_MAX_ATTEMPTS = 3
    transfer = queue(route, staff_a)
    # A folder where the data file goes: the live server answers the upload "permission denied".
    sim.folders.ensure_user(SENDER)
    (sim.data_dir / SENDER / "OUT" / transfer.remote_name).mkdir()
    # An outage before: the platform answering, even with a refusal, ends the wait.
    Transfer.objects.filter(pk=transfer.pk).update(waiting_since=timezone.now())

    for attempt in (1, 2):
        assert tasks.send_transfer(transfer.pk) == "retry"
        transfer.refresh_from_db()
        assert (transfer.state, transfer.attempts) == (State.QUEUED, attempt)
        assert transfer.last_error.startswith("SftpRefused: Uploading ")
        assert transfer.waiting_since is None
        assert next_tries(transfer, "transfer-retry").count() == attempt
    assert tasks.send_transfer(transfer.pk) == "failed"
    transfer.refresh_from_db()
    assert (transfer.state, transfer.attempts) == (State.FAILED, 3)
    assert not next_tries(transfer, "transfer-wait").exists()
    assert Alert.objects.filter(kind=Alert.Kind.TRANSFER_FAILED, transfer=transfer).count() == 1
    assert not Alert.objects.filter(kind=UNREACHABLE).exists()
    sender.refresh_from_db()
    assert sender.unreachable_since is None


# -- a worker cluster through an outage -----------------------------------------------------------

SENDS = 6
OUTAGE = timedelta(seconds=12)
# The portal that counted every attempt failed each send after two tries, one second apart.
CLUSTER = {
    "TRANSFER_RETRY_SECONDS": "1",
    "TRANSFER_RETRY_MAX_SECONDS": "2",
    "TRANSFER_MAX_ATTEMPTS": "2",
    "Q_WORKERS": "2",
}


def test_a_worker_cluster_waits_out_an_outage_longer_than_its_attempts_and_delivers_each_once(
    tmp_path, ready_route, staff_a
):
    ready = ready_route()
    sim, route, sender, receiver = ready.sim, ready.route, ready.sender, ready.receiver
    with contextlib.ExitStack() as platform:  # the platform back up, until the cluster stops
        sim.stop()
        ticks = child_environment()
        with (
            worker_cluster(tmp_path / "cluster.log", env=CLUSTER),
            private_portal.ticking(ticks),  # due schedules run every 0.5 s, receipts and fetches
        ):
            payloads = [os.urandom(20_000) for _ in range(SENDS)]
            transfers = [queue(route, staff_a, data) for data in payloads]
            waiting = Transfer.objects.filter(waiting_since__isnull=False)
            failed = Transfer.objects.filter(state=State.FAILED)
            wait_for(lambda: waiting.count() == SENDS or failed.exists(), timeout=60, interval=0.2)
            assert not failed.exists(), [t.last_error for t in failed]
            down_until = min(waiting.values_list("waiting_since", flat=True)) + OUTAGE
            time.sleep(max(0.0, (down_until - timezone.now()).total_seconds()))

            # Tried more often than TRANSFER_MAX_ATTEMPTS allows, none failed, none counted.
            states = set(Transfer.objects.values_list("state", flat=True))
            assert states <= {State.QUEUED, State.SENDING}, states
            assert not Transfer.objects.filter(state=State.QUEUED, attempts__gt=0).exists()
            tries = collections.Counter(t.args[0] for t in Task.objects.filter(func=SEND_TASK))
            assert all(tries[t.pk] > 2 for t in transfers), tries
            assert outage_alerts(sender).filter(resolved_at__isnull=True).count() == 1

            again = platform.enter_context(back_up(sim))
            wait_for(lambda: all_delivered(again), timeout=120, interval=0.5)
            open_alerts = Alert.objects.filter(kind=UNREACHABLE, resolved_at__isnull=True)
            wait_for(lambda: not open_alerts.exists(), timeout=30, interval=0.5)

        assert not sim.router.outcomes  # nothing reached the platform while it was down
        for transfer, data in zip(transfers, payloads, strict=True):
            transfer.refresh_from_db()
            assert (transfer.state, transfer.attempts, transfer.waiting_since) == (
                State.DELIVERED,
                1,
                None,
            )
            routed = [o.error for o in again.router.outcomes if o.name == transfer.remote_name]
            assert routed == [None]
            received = ReceivedFile.objects.get(remote_name=transfer.remote_name)
            assert received.sha256 == transfer.sha256 == hashlib.sha256(data).hexdigest()
        for folder in (f"{SENDER}/OUT", f"{SENDER}/IN", f"{RECEIVER}/IN"):
            assert files(again.data_dir / folder) == [], folder
        # One alert per account for the whole outage (the receiver's from its fetches), resolved.
        assert outage_alerts(sender).count() == outage_alerts(receiver).count() == 1
        assert Alert.objects.filter(kind=UNREACHABLE).count() == 2
        assert not Alert.objects.filter(kind=UNREACHABLE, resolved_at__isnull=True).exists()
        assert not Alert.objects.filter(kind=Alert.Kind.TRANSFER_FAILED).exists()


def all_delivered(platform: Simulator) -> bool:
    return (
        Transfer.objects.filter(state=State.DELIVERED).count() == SENDS
        and ReceivedFile.objects.count() == SENDS
        and not files(platform.data_dir / RECEIVER / "IN")
    )


@pytest.mark.browser
def test_in_the_browser_the_vendor_sees_the_outage_and_the_waiting_send(
    setup, live_server, staff_a
):
    sim, route, _sender, _receiver = setup
    transfer = queue(route, staff_a)
    sim.stop()
    assert tasks.send_transfer(transfer.pk) == WAITING

    with chromium() as browser:
        page = log_in(browser, live_server.url, staff_a.username)
        page.locator(".alert", has_text="Serviceplatformen kan ikke nås").wait_for()
        screenshot(page, "outage-overview")
        page.goto(f"{live_server.url}/transfers/{transfer.pk}/")
        waiting = page.locator("#transfer-waiting")
        assert "Serviceplatformen har ikke svaret siden" in waiting.inner_text()
        screenshot(page, "outage-transfer-waiting")
