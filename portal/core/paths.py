"""The folders the portal writes to: made where missing, and proved writable, at start.

A fresh clone has no data folder, a production host may give the portal's user no right to one,
a disk may be full or mounted read-only. Each would otherwise surface later as a failure far from
its cause (SQLite's "unable to open database file", a send that cannot stage its file), so every
process checks its folders as it starts and stops with one message naming the folder.
"""

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Written and synced by the probe: enough to meet a full disk, not enough to matter.
PROBE_BYTES = 4096


@dataclass(frozen=True)
class Folder:
    path: Path
    purpose: str
    setting: str  # the environment variable that moves it


def folders() -> list[Folder]:
    """Every folder this configuration writes to."""
    found = [
        Folder(Path(settings.DATA_DIR), "data", "PORTAL_DATA_DIR"),
        Folder(Path(settings.TRANSFER_DATA_DIR), "transfer files", "PORTAL_DATA_DIR"),
        Folder(Path(settings.MEDIA_ROOT), "uploaded documents", "PORTAL_DATA_DIR"),
        Folder(Path(settings.HANDOFF_FOLDER_ROOT), "hand-off folders", "HANDOFF_FOLDER_ROOT"),
        Folder(Path(settings.SIMULATOR_DATA_DIR), "simulator", "SIMULATOR_DATA_DIR"),
    ]
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        found.append(Folder(Path(database["NAME"]).parent, "database", "DATABASE_URL"))
    cache = settings.CACHES["default"]
    if cache["BACKEND"].endswith("FileBasedCache"):
        found.append(Folder(Path(cache["LOCATION"]), "cache", "REDIS_URL"))
    if settings.EMAIL_BACKEND == "portal.outbox.backends.OutboxFolderBackend":
        found.append(Folder(Path(settings.EMAIL_FILE_PATH), "outbox", "EMAIL_BACKEND"))
    return found


def prepare() -> None:
    """Make each folder where missing and write a file into it; ImproperlyConfigured if not."""
    for folder in folders():
        try:
            folder.path.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder.path, prefix=".fdd-write-probe-") as probe:
                probe.write(bytes(PROBE_BYTES))
                probe.flush()
                os.fsync(probe.fileno())
        except OSError as error:
            raise ImproperlyConfigured(
                f"The portal cannot write to its {folder.purpose} folder {folder.path}: "
                f"{error.strerror or error}. Make it writable for the user the portal runs "
                f"as, or set {folder.setting} to another place."
            ) from None
