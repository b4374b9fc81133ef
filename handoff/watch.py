"""Drop folders: a complete file is queued on the folder's route, then archived; a file that
cannot be queued goes to error/ with the reason beside it.

A round holds the folder's lock (`folders.exclusive`) and claims each file by renaming it into
`.processing/` under a unique name, recorded with the transfer in one transaction. A round that
died half-way is finished by the next: a claimed file with a record is archived, one without
goes back to be taken again. So a file is queued once, whatever stops when.
"""

import fnmatch
import logging
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from handoff import folders, uploads
from handoff.models import FolderPickup, WatchedFolder
from transfers.queueing import MAX_FILE_BYTES, Channel, queue_send

log = logging.getLogger(__name__)
# Never taken: hidden files and the names writers use while a file is incomplete.
HIDDEN_PREFIX = "."
TEMPORARY_SUFFIXES = (".tmp", ".part")
REASON_SUFFIX = ".reason.txt"


@dataclass
class RoundResult:
    queued: int = 0
    refused: int = 0
    waiting: int = 0
    busy: bool = False  # another round held the folder's lock

    def add(self, other: "RoundResult") -> None:
        self.queued += other.queued
        self.refused += other.refused
        self.waiting += other.waiting


def never_taken(name: str) -> bool:
    return name.startswith(HIDDEN_PREFIX) or name.lower().endswith(TEMPORARY_SUFFIXES)


def is_settled(stat: os.stat_result, settle_seconds: int, now: float) -> bool:
    """Unchanged for `settle_seconds`. The change time counts too: a file copied with its old
    modification time (cp -p, rsync) or renamed into the folder has just arrived."""
    return now - max(stat.st_mtime, stat.st_ctime) >= settle_seconds


def name_problem(folder: WatchedFolder, name: str) -> str:
    """Why a name cannot travel as a transfer's file name, or ''."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return _("The file name is not valid UTF-8.")
    if len(name) > 255 or any(not character.isprintable() for character in name):
        return _("The file name is longer than 255 characters or holds control characters.")
    if folder.name_pattern and not fnmatch.fnmatchcase(name, folder.name_pattern):
        return _("The file name does not match %(pattern)s.") % {"pattern": folder.name_pattern}
    return ""


def scan(folder: WatchedFolder, *, now: float | None = None) -> RoundResult:
    """One round over one drop folder."""
    drop = folder.directory
    for sub in (folders.ARCHIVE, folders.ERROR, folders.PROCESSING):
        (drop / sub).mkdir(parents=True, exist_ok=True)
    result = RoundResult()
    with folders.exclusive(drop) as held:
        if not held:
            result.busy = True
            return result
        _finish_claims(folder, drop)
        now = time.time() if now is None else now
        with os.scandir(drop) as entries:
            candidates = sorted(
                (entry.name, entry.stat(follow_symlinks=False))
                for entry in entries
                # Only regular files: a symlink could point the portal at any file on the host.
                if entry.is_file(follow_symlinks=False) and not never_taken(entry.name)
            )
        for name, stat in candidates:
            if not is_settled(stat, folder.settle_seconds, now):
                result.waiting += 1
                continue
            outcome = _take(folder, drop, name, stat)
            if outcome:
                setattr(result, outcome, getattr(result, outcome) + 1)
    return result


def _take(folder: WatchedFolder, drop: Path, name: str, seen: os.stat_result) -> str:
    claimed_as = f"{uuid.uuid4().hex}-{name}"
    claimed = drop / folders.PROCESSING / claimed_as
    try:
        os.rename(drop / name, claimed)
    except FileNotFoundError:
        return ""  # gone meanwhile
    now = os.stat(claimed)
    if (now.st_size, now.st_mtime_ns) != (seen.st_size, seen.st_mtime_ns):
        # Written to since it was looked at: a writer still has it open. Back, for later.
        os.rename(claimed, drop / name)
        return "waiting"
    problem = name_problem(folder, name)
    if not problem and now.st_size == 0:
        problem = _("The file is empty.")
    if not problem and now.st_size > MAX_FILE_BYTES:
        problem = _("The file is larger than %(limit)s GB, which KOMBIT advises against.") % {
            "limit": MAX_FILE_BYTES // 10**9
        }
    if problem:
        return _refuse(folder, drop, name, claimed, claimed_as, problem)
    staged = uploads.stage(claimed)
    try:
        with transaction.atomic():
            transfer = queue_send(
                folder.route,
                staged,
                original_name=name,
                channel=Channel.FOLDER,
                folder=folder.path,
            )
            FolderPickup.objects.create(
                folder=folder,
                name=name,
                claimed_as=claimed_as,
                outcome=FolderPickup.Outcome.QUEUED,
                transfer=transfer,
            )
    except ValidationError as error:
        return _refuse(folder, drop, name, claimed, claimed_as, " ".join(error.messages))
    finally:
        staged.close()
    _move(claimed, drop / folders.ARCHIVE / f"{transfer.pk}-{name}")
    log.info("queued %s from %s as transfer %s", name, folder.path, transfer.pk)
    return "queued"


def _refuse(
    folder: WatchedFolder, drop: Path, name: str, claimed: Path, claimed_as: str, reason: str
) -> str:
    error_dir = drop / folders.ERROR
    target = error_dir / name
    if target.exists() or (error_dir / (name + REASON_SUFFIX)).exists():
        # An earlier file of the same name is still there for someone to look at.
        target = error_dir / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{name}"
    _write_atomically(target.with_name(target.name + REASON_SUFFIX), reason + "\n")
    _move(claimed, target)
    FolderPickup.objects.create(
        folder=folder,
        name=name,
        claimed_as=claimed_as,
        outcome=FolderPickup.Outcome.REFUSED,
        reason=reason,
    )
    log.warning("refused %s from %s: %s", name, folder.path, reason)
    return "refused"


def _finish_claims(folder: WatchedFolder, drop: Path) -> None:
    """Files a round that died left in .processing/: archive the queued, put back the rest."""
    processing = drop / folders.PROCESSING
    for claimed in processing.iterdir():
        if not claimed.is_file():
            continue
        pickup = FolderPickup.objects.filter(folder=folder, claimed_as=claimed.name).first()
        if pickup is None:
            original = claimed.name.partition("-")[2]
            if original and not (drop / original).exists():
                _move(claimed, drop / original)
        elif pickup.transfer_id:
            _move(claimed, drop / folders.ARCHIVE / f"{pickup.transfer_id}-{pickup.name}")
        else:
            _move(claimed, drop / folders.ERROR / pickup.name)


def _move(source: Path, target: Path) -> None:
    os.replace(source, target)
    folders.fsync_directory(target.parent)


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def scan_all() -> RoundResult:
    """One round over every folder in use; a folder that fails is logged and the rest go on."""
    total = RoundResult()
    for folder in WatchedFolder.objects.filter(enabled=True).select_related(
        "route__sender__vendor", "route__receiver__vendor", "route__municipality"
    ):
        try:
            total.add(scan(folder))
        except (OSError, ValidationError):
            log.exception("watched folder %s", folder.path)
    return total
