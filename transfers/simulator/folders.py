"""The simulator's data folder: `<data-dir>/<user>/IN` and `OUT`, and its own `.simulator/`.

Two kinds of names. A file in `IN/` or `OUT/` may have any name the platform's contract allows
(`FileName` is xs:string up to 255 characters) that is safe as one path component: the names
`transfers.protocol.file_name_problem` accepts (`safe_file_name`), so "Udtræk Aarhus 2024.csv"
and "data(1)+v2.csv" are served. User names and InfRefs are the platform's own identifiers and
stay conservative: `[A-Za-z0-9._-]{1,255}`, not `.` or `..` (`conservative_name`), and a user
name never starts with a dot (`safe_user`).

Every file the simulator writes for a client (metadata, receipts) is written under
`.simulator/tmp/` first and renamed into place, and every data file is moved by a rename: the
data folder is one file system, so a client never sees half a file. Nothing here follows a
symbolic link: directories are checked with lstat, files are opened with O_NOFOLLOW.
"""

import contextlib
import os
import re
import stat
import uuid
from pathlib import Path

from transfers import protocol

IN = "IN"
OUT = "OUT"
INTERNAL = ".simulator"
_CONSERVATIVE = re.compile(r"[A-Za-z0-9._-]{1,255}")


def conservative_name(name: str) -> bool:
    """A user name or InfRef the simulator accepts: `[A-Za-z0-9._-]{1,255}`, not `.` or `..`."""
    return isinstance(name, str) and bool(_CONSERVATIVE.fullmatch(name)) and name not in (".", "..")


def safe_user(name: str) -> bool:
    """A user name: a conservative name that does not start with a dot. User folders sit in the
    data folder beside the simulator's own `.simulator/`, so no user may be called that."""
    return conservative_name(name) and not name.startswith(".")


def safe_file_name(name: str) -> bool:
    """A file name served in `IN/` and `OUT/`: one that the platform's contract allows and that
    is safe as one path component, by the portal's own reading rule
    (`transfers.protocol.file_name_problem`: not empty, `.` or `..`; no `/`, `\\`, NUL or other
    control character; no invisible format or direction character; not a look-alike that NFKC
    changes; at most 255 bytes in UTF-8).

    A leading dot is allowed, as it always was in the simulator: the simulator keeps nothing of
    its own in a user's `IN/` or `OUT/` (its temporary files are under `<data-dir>/.simulator/`,
    beside the user folders, which is why user names may not start with a dot), so such a name
    hides nothing of the simulator's and clashes with nothing."""
    return protocol.file_name_problem(name) is None


class UnsafeFolder(OSError):
    """A folder that should be a plain directory is a symbolic link or something else."""


def _ensure_dir(path: Path) -> None:
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeFolder(f"{path} is not a plain directory (a symbolic link?)")


class Folders:
    def __init__(self, data_dir: str | os.PathLike):
        self.root = Path(data_dir).resolve()
        _ensure_dir(self.root)
        self.internal = self.root / INTERNAL
        _ensure_dir(self.internal)
        self.tmp = self.internal / "tmp"
        _ensure_dir(self.tmp)
        for leftover in os.listdir(self.tmp):
            with contextlib.suppress(OSError):
                os.unlink(self.tmp / leftover)

    def user_root(self, username: str) -> Path:
        if not safe_user(username):
            raise ValueError(f"not a valid SFTP user name: {username!r}")
        return self.root / username

    def ensure_user(self, username: str) -> Path:
        """Create (or check) `<user>/`, `IN/` and `OUT/`; return the user's root."""
        root = self.user_root(username)
        _ensure_dir(root)
        _ensure_dir(root / IN)
        _ensure_dir(root / OUT)
        return root

    def inbox(self, username: str) -> Path:
        return self.user_root(username) / IN

    def outbox(self, username: str) -> Path:
        return self.user_root(username) / OUT

    def usernames(self) -> list[str]:
        """The users that have a folder (plain directories only)."""
        names = []
        for entry in os.scandir(self.root):
            if safe_user(entry.name) and entry.is_dir(follow_symlinks=False):
                names.append(entry.name)
        return sorted(names)

    def write_atomic(self, folder: Path, name: str, data: bytes) -> Path:
        """Write `folder/name` through a temporary file and a rename (replacing any old one)."""
        temporary = self.tmp / f"{uuid.uuid4().hex}.part"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)  # a full disk leaves no half-written file behind
            raise
        finally:
            os.close(fd)
        target = folder / name
        try:
            os.rename(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        return target


def regular_file(path: Path) -> os.stat_result | None:
    """lstat of a regular file, or None when it is missing or anything else (a link, a folder)."""
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return info if stat.S_ISREG(info.st_mode) else None


def read_small(path: Path, limit: int) -> bytes | None:
    """At most `limit + 1` bytes of a regular file (never through a link); None if not there."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:  # ELOOP: a symbolic link
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks, remaining = [], limit + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def remove_file(path: Path) -> bool:
    """Remove a regular file (or a symbolic link itself, never its target); True if removed."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(info.st_mode):
        return False
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
