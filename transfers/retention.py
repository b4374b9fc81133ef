"""Data minimisation: file contents go after their retention period, the records stay.

A sent file's local copy is deleted once its transfer is final (delivered, failed or cancelled)
and `TRANSFER_PAYLOAD_RETENTION_DAYS` have passed; a received file once
`RECEIVED_FILE_RETENTION_DAYS` have passed since it was fetched. The transfer and received-file
records keep their names, sizes, SHA-256 checksums, trigger, receipt and metadata, and each
deletion is written to the audit log.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal.audit.log import record
from portal.audit.models import AuditEvent
from transfers.models import ReceivedFile, Transfer

log = logging.getLogger(__name__)
BATCH = 500


@dataclass
class Deleted:
    payloads: int = 0
    received_files: int = 0
    bytes: int = 0


def _delete(path: str) -> int:
    """Remove one file; its size, or 0 if it was already gone."""
    target = Path(path)
    try:
        size = target.stat().st_size
        target.unlink()
    except FileNotFoundError:
        return 0
    return size


def delete_expired_files() -> Deleted:
    """Scheduled daily: delete the file contents whose retention period is over."""
    now = timezone.now()
    deleted = Deleted()
    payload_cutoff = now - timedelta(days=settings.TRANSFER_PAYLOAD_RETENTION_DAYS)
    expired_transfers = Transfer.objects.filter(
        state__in=Transfer.State.FINAL,
        finished_at__lt=payload_cutoff,
        payload_deleted_at__isnull=True,
    ).select_related("route__sender__vendor", "route__receiver__vendor", "route__municipality")
    while batch := list(expired_transfers[:BATCH]):
        for transfer in batch:
            with transaction.atomic():
                # The record says "deleted" only once the file is gone; a crash in between
                # leaves a file the next run deletes.
                deleted.bytes += _delete(transfer.payload)
                Transfer.objects.filter(pk=transfer.pk).update(payload_deleted_at=now)
                record(
                    None,
                    AuditEvent.Action.RETENTION_DELETED,
                    transfer,
                    concerns=transfer.route.parties(),
                    sha256=transfer.sha256,
                    days=settings.TRANSFER_PAYLOAD_RETENTION_DAYS,
                )
            deleted.payloads += 1

    received_cutoff = now - timedelta(days=settings.RECEIVED_FILE_RETENTION_DAYS)
    expired_received = (
        ReceivedFile.objects.filter(
            state=ReceivedFile.State.RECEIVED,
            received_at__lt=received_cutoff,
            file_deleted_at__isnull=True,
        )
        .exclude(stored_path="")
        .select_related("account__it_system__vendor", "route__municipality")
    )
    while batch := list(expired_received[:BATCH]):
        for received in batch:
            with transaction.atomic():
                deleted.bytes += _delete(received.stored_path)
                ReceivedFile.objects.filter(pk=received.pk).update(file_deleted_at=now)
                concerns = [received.account.it_system.vendor]
                if received.route_id:
                    concerns.append(received.route.municipality)
                record(
                    None,
                    AuditEvent.Action.RETENTION_DELETED,
                    received,
                    concerns=concerns,
                    sha256=received.sha256,
                    days=settings.RECEIVED_FILE_RETENTION_DAYS,
                )
            deleted.received_files += 1
    if deleted.payloads or deleted.received_files:
        log.info(
            "retention: deleted %s local copies and %s received files (%s bytes)",
            deleted.payloads,
            deleted.received_files,
            deleted.bytes,
        )
    return deleted
