"""Partial files a worker that died left behind: a fetch's staged download, a receipt half read.

A live worker writes its partial file all the time and renames it once whole, so one that nobody
has written to for TRANSFER_STALE_SECONDS belongs to a worker that stopped."""

import contextlib
import logging
import os
import time
from pathlib import Path

from django.conf import settings

log = logging.getLogger(__name__)


def remove_stale(folder: Path, *, suffix: str = "", left_by: str) -> None:
    """Remove the files in `folder` (ending in `suffix`) that nobody has written to for
    TRANSFER_STALE_SECONDS; `left_by` says whose they were, for the log."""
    limit = time.time() - settings.TRANSFER_STALE_SECONDS
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return
    for entry in entries:
        if not entry.name.endswith(suffix):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < limit:
                os.unlink(entry.path)
                log.info("removed %s, left by %s", entry.path, left_by)
