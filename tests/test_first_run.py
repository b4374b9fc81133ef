"""The first run: the portal makes every folder it writes to, or stops naming the one it cannot.

A fresh clone's `make run` stopped at `migrate` with SQLite's "unable to open database file":
nothing made the data folder. Each case runs `manage.py` in its own process, as `make run` and
a production host do.
"""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.disks import small_disk
from tests.support.system import ROOT

pytestmark = pytest.mark.system

FOLDERS = ["cache", "handoff", "media", "outbox", "serviceplatform", "transfers"]


def manage(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "HANDOFF_FOLDER_ROOT", "SIMULATOR_DATA_DIR"}
    }
    environment |= {
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DEBUG": "true",
        "PORTAL_DATA_DIR": str(data_dir),
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def refusal(result: subprocess.CompletedProcess) -> str:
    """The one line the portal stops with: no traceback around it."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("FDD portal:")]
    return line


def test_a_fresh_data_folder_is_made_whole_and_migrated(tmp_path):
    data = tmp_path / "not" / "there" / "yet"
    result = manage(data, "migrate", "--no-input", "-v0")
    assert result.returncode == 0, result.stderr
    assert (data / "portal.sqlite3").is_file()
    assert sorted(p.name for p in data.iterdir() if p.is_dir()) == FOLDERS
    assert not [p for p in data.rglob(".fdd-write-probe-*")]  # the probes leave nothing


def test_a_data_folder_that_cannot_be_made_is_named(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    line = refusal(manage(tmp_path / "a-file" / "data", "migrate", "--no-input"))
    assert str(tmp_path / "a-file" / "data") in line
    assert "data folder" in line and "PORTAL_DATA_DIR" in line


def test_a_read_only_data_folder_is_named_and_left_as_it_was(tmp_path):
    data = tmp_path / "data"
    with small_disk(data, "64k"):
        (data / "portal.sqlite3").write_bytes(b"kept")
        subprocess.run(["mount", "-o", "remount,ro", str(data)], check=True)
        line = refusal(manage(data, "migrate", "--no-input"))
        assert f"folder {data}: Read-only file system" in line
        assert (data / "portal.sqlite3").read_bytes() == b"kept"


def test_a_full_disk_is_named(tmp_path):
    data = tmp_path / "data"
    with small_disk(data, "64k"):
        for folder in FOLDERS:
            (data / folder).mkdir()
        with contextlib.suppress(OSError), (data / "filler").open("wb") as filler:
            while True:
                filler.write(bytes(4096))
                filler.flush()
                os.fsync(filler.fileno())
        line = refusal(manage(data, "check"))
        assert f"{data}: No space left on device" in line
