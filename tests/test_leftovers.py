"""What a worker that died left half-written is removed once nobody has written to it for
TRANSFER_STALE_SECONDS: a receipt half read (by the scheduled receipts round) and a fetch's
staged download (by the next fetch). What a live worker is writing stays."""

import os
import time
from pathlib import Path

import pytest

from transfers import tasks
from transfers.leftovers import remove_stale

pytestmark = pytest.mark.django_db


def aged(path: Path, seconds: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"<Kvittering")
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_the_receipts_round_removes_receipts_half_read_by_a_worker_that_died(settings, tmp_path):
    settings.TRANSFER_DATA_DIR = tmp_path
    settings.TRANSFER_STALE_SECONDS = 60
    folder = tmp_path / "receipts"
    dead = aged(folder / ".dead.part", 61)
    live = aged(folder / ".live.part", 5)
    recorded = aged(folder / "a_FDD_1.csv.sftpreceipt", 3600)  # removed once the server's is

    tasks.collect_receipts()

    assert not dead.exists()
    assert live.exists() and recorded.exists()


def test_only_files_with_the_suffix_are_looked_at(settings, tmp_path):
    settings.TRANSFER_STALE_SECONDS = 60
    staged = aged(tmp_path / "0a1b.part", 61)
    other = aged(tmp_path / "notes.txt", 61)

    remove_stale(tmp_path, suffix=".part", left_by="a test")

    assert not staged.exists() and other.exists()
    remove_stale(tmp_path / "missing", left_by="a test")  # no folder yet: nothing to do
