"""Watched folders: complete files are queued once and archived; the rest are left or refused.
Delivery folders: received files written whole, under their name, and no longer new."""

import os
import time
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse
from django.utils import translation
from django_q.models import Schedule

from handoff import delivery, folders, watch
from handoff.models import DeliveryFolder, FolderDelivery, FolderPickup, WatchedFolder
from portal.audit.models import AuditEvent
from tests.support.handoff_setup import ready_fixture, received_file  # noqa: F401
from transfers.models import ReceivedFile, Route, Transfer

DATA = b"kommunekode;cpr\r\n751;0101011234\r\n" * 50
LATER = 3600  # seconds: a "now" by which every file written in the test has settled


@pytest.fixture(autouse=True)
def root(settings, tmp_path) -> Path:
    settings.HANDOFF_FOLDER_ROOT = tmp_path / "handoff"
    return settings.HANDOFF_FOLDER_ROOT


@pytest.fixture
def folder(ready) -> WatchedFolder:
    watched = WatchedFolder.objects.create(
        route=ready.route, path=f"{ready.route.sender.vendor.cvr}/aarhus", settle_seconds=5
    )
    watched.directory.mkdir(parents=True)
    return watched


def drop(folder: WatchedFolder, name: str, data: bytes = DATA) -> Path:
    path = folder.directory / name
    path.write_bytes(data)
    return path


def scan(folder: WatchedFolder, after: float = LATER) -> watch.RoundResult:
    return watch.scan(WatchedFolder.objects.get(pk=folder.pk), now=time.time() + after)


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_a_complete_file_is_queued_and_archived_with_its_transfer_id(folder):
    drop(folder, "borgere.csv")
    result = scan(folder)
    assert (result.queued, result.refused, result.waiting) == (1, 0, 0)
    transfer = Transfer.objects.get()
    assert (transfer.original_name, transfer.route) == ("borgere.csv", folder.route)
    assert Path(transfer.payload).read_bytes() == DATA
    assert names(folder.directory / "archive") == [f"{transfer.pk}-borgere.csv"]
    assert not (folder.directory / "borgere.csv").exists()
    assert names(folder.directory / ".processing") == []
    pickup = FolderPickup.objects.get()
    assert (pickup.outcome, pickup.transfer) == (FolderPickup.Outcome.QUEUED, transfer)
    event = AuditEvent.objects.get(action=AuditEvent.Action.SEND)
    assert event.details == {
        "sha256": transfer.sha256,
        "via": "watched folder",
        "folder": folder.path,
    }
    # A second round finds nothing more to do.
    assert scan(folder).queued == 0 and Transfer.objects.count() == 1


@pytest.mark.parametrize("name", [".borgere.csv", "borgere.csv.tmp", "borgere.csv.part", "B.PART"])
def test_hidden_and_temporary_names_are_never_taken(folder, name):
    drop(folder, name)
    assert scan(folder).queued == 0
    assert (folder.directory / name).exists() and Transfer.objects.count() == 0


def test_a_half_written_file_is_not_taken(folder):
    path = folder.directory / "borgere.csv"
    with path.open("wb") as writer:
        writer.write(DATA[:100])
        writer.flush()
        # Looked at while the writer is busy: it changed a moment ago.
        result = scan(folder, after=0)
        assert (result.queued, result.waiting) == (0, 1)
        assert path.exists()
        writer.write(DATA[100:])
    assert scan(folder, after=2).waiting == 1  # not yet still for 5 seconds
    assert scan(folder).queued == 1
    assert Path(Transfer.objects.get().payload).read_bytes() == DATA


def test_a_file_written_under_a_temporary_name_and_renamed_is_taken_at_once(folder):
    WatchedFolder.objects.filter(pk=folder.pk).update(settle_seconds=0)
    partial = drop(folder, "borgere.csv.part", DATA[:10])
    assert scan(folder, after=0).queued == 0
    partial.write_bytes(DATA)
    partial.rename(folder.directory / "borgere.csv")
    assert scan(folder, after=0).queued == 1


def test_a_file_still_growing_when_claimed_goes_back(folder, monkeypatch):
    path = drop(folder, "borgere.csv", DATA[:10])
    real_rename = os.rename

    def rename_while_written(source, target):
        real_rename(source, target)
        if Path(target).parent.name == folders.PROCESSING:
            with open(target, "ab") as writer:  # the writer goes on through its open handle
                writer.write(b"more")
            os.utime(target, ns=(time.time_ns(), time.time_ns() + 10**9))

    monkeypatch.setattr(os, "rename", rename_while_written)
    assert scan(folder).queued == 0
    assert path.exists() and Transfer.objects.count() == 0


def test_a_file_for_a_blocked_route_goes_to_error_with_the_reason(folder):
    Route.objects.filter(pk=folder.route_id).update(state=Route.State.SUSPENDED)
    drop(folder, "borgere.csv")
    with translation.override("en"):
        assert scan(folder).refused == 1
    error = folder.directory / "error"
    assert names(error) == ["borgere.csv", "borgere.csv.reason.txt"]
    assert (error / "borgere.csv").read_bytes() == DATA
    assert "not established" in (error / "borgere.csv.reason.txt").read_text()
    assert FolderPickup.objects.get().outcome == FolderPickup.Outcome.REFUSED
    assert Transfer.objects.count() == 0

    # The same name refused again keeps the first for whoever looks into it.
    drop(folder, "borgere.csv")
    assert scan(folder).refused == 1
    assert len(names(error)) == 4


def test_empty_files_and_names_outside_the_pattern_are_refused(folder):
    WatchedFolder.objects.filter(pk=folder.pk).update(name_pattern="*.csv")
    drop(folder, "tom.csv", b"")
    drop(folder, "notes.txt")
    with translation.override("en"):
        assert scan(folder).refused == 2
    error = folder.directory / "error"
    assert "empty" in (error / "tom.csv.reason.txt").read_text()
    assert "*.csv" in (error / "notes.txt.reason.txt").read_text()


def test_a_symlink_is_never_followed(folder, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_bytes(DATA)
    (folder.directory / "link.csv").symlink_to(secret)
    assert scan(folder).queued == 0 and Transfer.objects.count() == 0


def test_a_round_that_died_is_finished_by_the_next(folder):
    processing = folder.directory / folders.PROCESSING
    processing.mkdir(parents=True, exist_ok=True)
    # Claimed, never queued: it goes back and is taken.
    (processing / "aaaa-borgere.csv").write_bytes(DATA)
    assert scan(folder).queued == 1
    transfer = Transfer.objects.get()
    # Claimed and queued, but not yet archived: archived, not queued again.
    (processing / "bbbb-igen.csv").write_bytes(DATA)
    FolderPickup.objects.create(
        folder=folder,
        name="igen.csv",
        claimed_as="bbbb-igen.csv",
        outcome=FolderPickup.Outcome.QUEUED,
        transfer=transfer,
    )
    assert scan(folder).queued == 0
    assert f"{transfer.pk}-igen.csv" in names(folder.directory / "archive")
    assert Transfer.objects.count() == 1


def test_a_round_skips_a_folder_another_round_holds(folder):
    drop(folder, "borgere.csv")
    with folders.exclusive(folder.directory) as held:
        assert held
        assert scan(folder).busy
    assert scan(folder).queued == 1


@pytest.mark.parametrize("path", ["../etc", "/etc", ".hidden", "a//b", "a/../b", "a/.b", ""])
def test_a_folder_must_lie_under_the_root(ready, path):
    with pytest.raises(ValidationError):
        WatchedFolder(route=ready.route, path=path).full_clean()


def test_folders_may_not_nest(ready, vendor_a, vendor_b, system_b):
    own = vendor_a.cvr
    WatchedFolder.objects.create(route=ready.routes["751"], path=f"{own}/alfa")
    for path in (f"{own}/alfa", f"{own}/alfa/inbox"):
        with pytest.raises(ValidationError, match=f"{own}/alfa"):
            WatchedFolder(route=ready.routes["461"], path=f"{path}").full_clean()
    WatchedFolder(route=ready.routes["461"], path=f"{own}/beta").full_clean()
    DeliveryFolder(it_system=system_b, path=f"{vendor_b.cvr}/in").full_clean()


def test_a_folder_lies_in_its_organisations_own_folder(ready, vendor_a, vendor_b, system_b):
    for path in ("alfa/aarhus", f"{vendor_b.cvr}/aarhus"):
        with pytest.raises(ValidationError, match=f"{vendor_a.cvr}/"):
            WatchedFolder(route=ready.route, path=path).full_clean()
    with pytest.raises(ValidationError, match=f"{vendor_b.cvr}/"):
        DeliveryFolder(it_system=system_b, path=f"{vendor_a.cvr}/in").full_clean()


def test_another_vendors_folders_are_neither_named_nor_in_the_way(
    client_for, ready, staff_b, system_b, vendor_b
):
    """The probe: a delivery folder `nordlys-secret` was refused by naming another vendor's
    `nordlys-secret/omsorg-drop`, and taking a parent blocked every folder below it."""
    WatchedFolder.objects.create(route=ready.route, path="nordlys-secret/omsorg-drop")
    client = client_for(staff_b)
    for path in ("nordlys-secret", "nordlys-secret/omsorg-drop/x", "nordlys-secret/omsorg-drop"):
        response = client.post(reverse("handoff:delivery_save", args=[system_b.pk]), {"path": path})
        assert response.status_code == 302, response.text
        assert DeliveryFolder.objects.get().path == f"{vendor_b.cvr}/{path}"
        assert "omsorg-drop" not in client.get(response["Location"]).text.replace(path, "")


def test_a_symlink_out_of_the_root_is_refused(ready, root, tmp_path):
    root.mkdir(parents=True, exist_ok=True)
    (root / "out").symlink_to(tmp_path)
    with pytest.raises(ValidationError):
        folders.directory("out")


def test_received_files_are_written_whole_and_leave_the_new_list(ready, system_b, tmp_path):
    target = DeliveryFolder.objects.create(it_system=system_b, path=f"{system_b.vendor.cvr}/in")
    first = received_file(ready.receiver, ready.route, tmp_path, DATA, "x_FDD_1.csv")
    assert delivery.deliver_all().delivered == 1
    written = target.directory / "x_FDD_1.csv"
    assert written.read_bytes() == DATA
    assert names(target.directory) == [folders.LOCK_NAME, "x_FDD_1.csv"]  # no temporary left
    first.refresh_from_db()
    assert first.acknowledged_at is not None
    assert FolderDelivery.objects.get().path == str(written)
    assert delivery.deliver_all().delivered == 0
    # A file already acknowledged (taken through the API) is not written again.
    second = received_file(ready.receiver, ready.route, tmp_path, b"y", "x_FDD_2.csv")
    ReceivedFile.objects.filter(pk=second.pk).update(acknowledged_at=first.acknowledged_at)
    assert delivery.deliver_all().delivered == 0


def test_the_schedule_and_the_command_run_a_round(folder, capsys):
    assert Schedule.objects.filter(func="handoff.tasks.watch_all", minutes=1).exists()
    WatchedFolder.objects.filter(pk=folder.pk).update(settle_seconds=0)
    drop(folder, "borgere.csv")
    os.utime(folder.directory / "borgere.csv", (time.time() - 60, time.time() - 60))
    call_command("watch_folders", "--once")
    assert "queued 1" in capsys.readouterr().out
    assert Transfer.objects.count() == 1


def test_staff_set_up_a_watched_folder_for_their_route(
    client_for, ready, staff_b, system_a, vendor_a
):
    client = client_for(ready.staff)
    page = client.get(reverse("handoff:folders", args=[system_a.pk]))
    assert page.status_code == 200
    response = client.post(
        reverse("handoff:watched_new", args=[system_a.pk]),
        {"route": ready.route.pk, "path": "alfa/aarhus", "settle_seconds": 10, "enabled": "on"},
    )
    assert response.status_code == 302, response.content.decode()
    folder = WatchedFolder.objects.get()
    assert folder.changed_by == ready.staff and folder.directory.is_dir()
    assert folder.path == f"{vendor_a.cvr}/alfa/aarhus"
    refused = client.post(
        reverse("handoff:watched_new", args=[system_a.pk]),
        {"route": ready.routes["461"].pk, "path": "../x", "settle_seconds": 10},
    )
    assert refused.status_code == 200 and WatchedFolder.objects.count() == 1
    assert (
        client_for(staff_b).get(reverse("handoff:folders", args=[system_a.pk])).status_code == 404
    )
