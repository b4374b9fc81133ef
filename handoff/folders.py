"""Folders on the portal's host: where they may be, and the lock one round holds on each.

Every drop and delivery folder is a relative path under HANDOFF_FOLDER_ROOT, inside the folder
of the organisation it belongs to (named by its CVR number). A person in the UI names a folder
within their own organisation's, never a place on the host, so no one can point the portal at
/etc or at another vendor's payloads, take a path another vendor needs, or learn theirs.
"""

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

# Segments like SAFE_NAME in transfers.models: no dot first, so no "..", no hidden folders.
_SEGMENT = r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}"
FOLDER_PATH = re.compile(rf"^{_SEGMENT}(/{_SEGMENT}){{0,7}}$")
ARCHIVE, ERROR, PROCESSING = "archive", "error", ".processing"
LOCK_NAME = ".fdd-portal.lock"  # hidden, so never taken as a file to send


def root() -> Path:
    return Path(settings.HANDOFF_FOLDER_ROOT)


def validate_folder_path(value: str) -> None:
    if not FOLDER_PATH.match(value):
        raise ValidationError(
            _(
                "Give a folder under the hand-off root: names of letters A–Z, digits, dot, "
                "underscore and hyphen, separated by /, none starting with a dot."
            ),
            code="invalid",
        )


def organisation_folder(organisation) -> str:
    """The organisation's own folder under the root: its CVR number, which no other has."""
    return organisation.cvr


def directory(path: str) -> Path:
    """The folder on disk; refuses a path that would leave the root (a symlink, say)."""
    validate_folder_path(path)
    base = root().resolve()
    folder = (base / path).resolve()
    if folder != base and base not in folder.parents:
        raise ValidationError(_("The folder lies outside the hand-off root."), code="outside")
    return folder


def overlaps(path: str, other: str) -> bool:
    """One folder is the other or lies inside it: the watcher would read its own output."""
    return path == other or path.startswith(other + "/") or other.startswith(path + "/")


@contextmanager
def exclusive(folder: Path) -> Iterator[bool]:
    """Hold the folder's lock for one round; yields False when another round holds it.

    The schedule and `watch_folders` may run at once; the lock keeps two rounds from taking
    the same file, and lets a round tidy up after one that died without racing a live one.
    """
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


def fsync_directory(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
