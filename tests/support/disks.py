"""A disk that runs full: a small tmpfs mounted for the test, and grown when an operator makes
room. Mounting needs root (the suite runs as root in CI); where it is not allowed the test is
skipped."""

import contextlib
import subprocess
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_disk(path: Path, size: str):
    """A tmpfs of `size` mounted at `path` for the test (the suite runs as root in CI); skipped
    where mounting is not allowed. tmpfs rather than RLIMIT_FSIZE: the limit is on the file
    system, so every writer sees ENOSPC as on a real full disk, not EFBIG per file and process."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], timeout=30, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], timeout=30, check=False)


def grow(path: Path, size: str) -> None:
    """An operator makes room: the file system grows, nothing on it is touched."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True, timeout=30)
