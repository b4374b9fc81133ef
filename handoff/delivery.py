"""Delivery folders: each new file a receiving IT system got is written to its folder.

Written under a hidden temporary name and renamed, so a program watching the folder never sees
half a file; recorded, and acknowledged (it leaves the "new" list) only once it is in place.
"""

import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.db import IntegrityError, transaction
from django.utils import timezone

from handoff import folders
from handoff.models import DeliveryFolder, FolderDelivery
from transfers.models import ReceivedFile
from transfers.queueing import CHUNK

log = logging.getLogger(__name__)


@dataclass
class DeliveryResult:
    delivered: int = 0
    missing: int = 0  # recorded, but the stored copy is gone
    busy: bool = False


def waiting(folder: DeliveryFolder):
    """Received files of the folder's IT system that are new and not yet written out."""
    return (
        ReceivedFile.objects.filter(
            account__it_system_id=folder.it_system_id,
            state=ReceivedFile.State.RECEIVED,
            acknowledged_at__isnull=True,
            folder_delivery__isnull=True,
            file_deleted_at__isnull=True,
        )
        .exclude(stored_path="")
        .order_by("pk")
    )


def delivered_name(received: ReceivedFile) -> str:
    """The platform's name for the file; never one that is hidden or leaves the folder."""
    name = Path(received.remote_name).name
    return name if name and not name.startswith(".") else f"received-{received.pk}"


def deliver(folder: DeliveryFolder) -> DeliveryResult:
    target_dir = folder.directory
    target_dir.mkdir(parents=True, exist_ok=True)
    result = DeliveryResult()
    with folders.exclusive(target_dir) as held:
        if not held:
            result.busy = True
            return result
        for received in waiting(folder):
            source = Path(received.stored_path)
            if not source.is_file():
                log.warning("received file %s: %s is gone", received.pk, source)
                result.missing += 1
                continue
            target = target_dir / delivered_name(received)
            _copy_atomically(source, target)
            try:
                with transaction.atomic():
                    FolderDelivery.objects.create(
                        received_file=received, folder=folder, path=str(target)
                    )
                    ReceivedFile.objects.filter(
                        pk=received.pk, acknowledged_at__isnull=True
                    ).update(acknowledged_at=timezone.now())
            except IntegrityError:
                continue  # written and recorded by another round: the same bytes, same name
            result.delivered += 1
    return result


def _copy_atomically(source: Path, target: Path) -> None:
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with source.open("rb") as data, partial.open("wb") as out:
            shutil.copyfileobj(data, out, CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    folders.fsync_directory(target.parent)


def deliver_all() -> DeliveryResult:
    total = DeliveryResult()
    for folder in DeliveryFolder.objects.filter(enabled=True):
        try:
            one = deliver(folder)
        except OSError:
            log.exception("delivery folder %s", folder.path)
            continue
        total.delivered += one.delivered
        total.missing += one.missing
    return total
