"""Data minimisation: file contents go after the retention period; records and audit trail stay."""

import hashlib
import io
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from portal.audit.models import AuditEvent
from transfers import tasks
from transfers.fetch import fetch_inbox
from transfers.models import ReceivedFile, Transfer
from transfers.queueing import queue_send
from transfers.retention import delete_expired_files

DATA = b"kommunekode;cpr\r\n751;0101011234\r\n" * 100


@pytest.fixture
def delivered(ready_route, staff_a):
    """A transfer sent, delivered and fetched for real, and one still waiting in the queue."""
    ready = ready_route()
    sent = queue_send(ready.route, io.BytesIO(DATA), original_name="borgere.csv", user=staff_a)
    assert tasks.send_transfer(sent.pk) == "sent"
    fetch_inbox(ready.receiver.pk)
    waiting = queue_send(ready.route, io.BytesIO(DATA), original_name="igen.csv", user=staff_a)
    return sent, waiting, ReceivedFile.objects.get()


def age(days: int, transfer: Transfer, received: ReceivedFile, waiting: Transfer) -> None:
    then = timezone.now() - timedelta(days=days)
    Transfer.objects.filter(pk=transfer.pk).update(finished_at=then)
    Transfer.objects.filter(pk=waiting.pk).update(queued_at=then)
    ReceivedFile.objects.filter(pk=received.pk).update(received_at=then)


def test_files_inside_the_retention_period_stay(settings, delivered):
    sent, waiting, received = delivered
    settings.TRANSFER_PAYLOAD_RETENTION_DAYS = settings.RECEIVED_FILE_RETENTION_DAYS = 30
    age(29, sent, received, waiting)
    deleted = delete_expired_files()
    assert (deleted.payloads, deleted.received_files) == (0, 0)
    assert Path(sent.payload).is_file() and Path(received.stored_path).is_file()


def test_expired_files_go_and_the_records_checksums_and_audit_trail_stay(
    settings, delivered, client_for, staff_a, architect
):
    sent, waiting, received = delivered
    settings.TRANSFER_PAYLOAD_RETENTION_DAYS = settings.RECEIVED_FILE_RETENTION_DAYS = 30
    age(31, sent, received, waiting)
    audit_before = AuditEvent.objects.exclude(action=AuditEvent.Action.LOGIN).count()

    deleted = delete_expired_files()

    assert (deleted.payloads, deleted.received_files, deleted.bytes) == (1, 1, 2 * len(DATA))
    assert not Path(sent.payload).exists()
    assert not Path(received.stored_path).exists()
    # A transfer that is not final keeps its copy, however old: it still has to be sent.
    assert Path(waiting.payload).is_file()

    sent.refresh_from_db()
    received.refresh_from_db()
    digest = hashlib.sha256(DATA).hexdigest()
    assert (sent.sha256, sent.size, sent.state) == (digest, len(DATA), Transfer.State.DELIVERED)
    assert sent.trigger_xml and sent.receipt_xml and sent.payload_deleted_at
    assert (received.sha256, received.size) == (digest, len(DATA))
    assert received.metadata_xml and received.file_deleted_at
    events = AuditEvent.objects.filter(action=AuditEvent.Action.RETENTION_DELETED)
    assert AuditEvent.objects.exclude(action=AuditEvent.Action.LOGIN).count() == audit_before + 2
    assert {(e.object_type, e.details["sha256"]) for e in events} == {
        ("transfers.Transfer", digest),
        ("transfers.ReceivedFile", digest),
    }

    vendor = client_for(staff_a)
    page = vendor.get(reverse("transfers:detail", args=[sent.pk])).content.decode()
    assert "efter opbevaringsperioden" in page and digest in page
    assert vendor.get(reverse("transfers:download", args=[sent.pk])).status_code == 404
    reader = client_for(architect)
    listing = reader.get(reverse("transfers:received")).content.decode()
    assert "slettet efter opbevaringsperioden" in listing
    assert reverse("transfers:received_download", args=[received.pk]) not in listing

    again = delete_expired_files()
    assert (again.payloads, again.received_files) == (0, 0)
    assert AuditEvent.objects.exclude(action=AuditEvent.Action.LOGIN).count() == audit_before + 2


@pytest.mark.django_db
def test_the_deletion_runs_daily_on_the_queue():
    schedule = Schedule.objects.get(func="transfers.retention.delete_expired_files")
    assert (schedule.schedule_type, schedule.repeats) == (Schedule.DAILY, -1)
