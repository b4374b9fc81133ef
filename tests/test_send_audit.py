"""Every way a file comes in (the send page, the API, a watched folder, the command line) queues
it through `queue_send`, which writes the transfer and its one audit event together: the event
says how the file came, concerns the route's parties, and is not written when nothing is queued.
"""

import contextlib
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from handoff import uploads, watch
from handoff.api import sends
from handoff.models import ApiToken, WatchedFolder
from portal.audit.models import AuditEvent
from tests.support.handoff_setup import bearer, ready_fixture, token_for  # noqa: F401
from transfers import queueing
from transfers.models import Route, Transfer
from transfers.queueing import Channel, queue_send

DATA = b"kommunekode;cpr\r\n751;0101011234\r\n" * 100


@dataclass(frozen=True)
class Expected:
    """What the one event of a send says: who acted, the details beside the checksum, and the
    sentence the audit log reads it as in English."""

    actor: object
    details: dict[str, str]
    sentence: str


def by_page(request, ready) -> Expected:
    client = request.getfixturevalue("client_for")(ready.staff)
    token = client.get(reverse("transfers:send")).context["form"]["form_token"].value()
    client.post(
        reverse("transfers:send"),
        {
            "route": ready.route.pk,
            "form_token": token,
            "data_file": SimpleUploadedFile("borgere.csv", DATA),
        },
    )
    return Expected(ready.staff, {"via": "page"}, "Ada queued borgere.csv for Aarhus Kommune")


def by_api(request, ready) -> Expected:
    plain = token_for(ready.route.sender, ready.staff)
    request.getfixturevalue("client").post(
        f"/api/v1/routes/{ready.route.pk}/transfers",
        {"file": SimpleUploadedFile("borgere.csv", DATA)},
        **bearer(plain),
    )
    fingerprint = ApiToken.objects.get().fingerprint
    return Expected(
        None,
        {"via": "API", "token": fingerprint},
        f"API token {fingerprint} queued borgere.csv for Aarhus Kommune",
    )


def by_folder(request, ready) -> Expected:
    request.getfixturevalue("settings").HANDOFF_FOLDER_ROOT = (
        request.getfixturevalue("tmp_path") / "handoff"
    )
    folder = WatchedFolder.objects.create(
        route=ready.route, path=f"{ready.route.sender.vendor.cvr}/aarhus", settle_seconds=5
    )
    folder.directory.mkdir(parents=True)
    (folder.directory / "borgere.csv").write_bytes(DATA)
    # As the scheduled round reads it: the folder, and its route, as they are now.
    watch.scan(WatchedFolder.objects.get(pk=folder.pk), now=time.time() + 3600)
    return Expected(
        None,
        {"via": "watched folder", "folder": folder.path},
        f"Watched folder {folder.path} queued borgere.csv for Aarhus Kommune",
    )


def _send_file(request, *options: str) -> None:
    path = request.getfixturevalue("tmp_path") / "borgere.csv"
    path.write_bytes(DATA)
    ready = request.getfixturevalue("ready")
    with contextlib.suppress(CommandError):  # a refusal: what it left behind is looked at
        call_command("send_file", "--route", str(ready.route.pk), *options, str(path))


def by_command(request, ready) -> Expected:
    _send_file(request, "--user", ready.staff.username)
    return Expected(
        ready.staff,
        {"via": "command line"},
        "Ada (command line) queued borgere.csv for Aarhus Kommune",
    )


def by_command_as_no_one(request, ready) -> Expected:
    _send_file(request)
    return Expected(
        None, {"via": "command line"}, "The command line queued borgere.csv for Aarhus Kommune"
    )


ENTRY_POINTS: dict[str, Callable[..., Expected]] = {
    "page": by_page,
    "API": by_api,
    "folder": by_folder,
    "command": by_command,
    "command without a user": by_command_as_no_one,
}


def sends_recorded() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=AuditEvent.Action.SEND))


def outgoing() -> set[Path]:
    folder = Path(settings.TRANSFER_DATA_DIR) / "outgoing"
    return set(folder.iterdir()) if folder.exists() else set()


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_each_way_in_writes_one_event_with_its_channel_for_the_routes_parties(
    request, ready, client_for, entry
):
    expected = ENTRY_POINTS[entry](request, ready)
    transfer = Transfer.objects.get()
    (event,) = sends_recorded()
    assert (event.object_type, event.object_id) == ("transfers.Transfer", str(transfer.pk))
    assert event.actor == expected.actor
    assert transfer.created_by == expected.actor
    assert event.details == {"sha256": transfer.sha256, **expected.details}
    assert set(event.concerns.all()) == set(ready.route.parties())
    # The log reads it as it read the events each way in wrote for itself.
    client = client_for(ready.staff)
    client.cookies["django_language"] = "en"
    (entry_shown,) = client.get(reverse("audit:log"), {"action": "send"}).context["entries"]
    assert entry_shown.sentence == expected.sentence
    assert [label for label, _value in entry_shown.technical] == ["SHA-256"]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_blocked_route_queues_nothing_and_records_nothing(request, ready, entry):
    Route.objects.filter(pk=ready.route.pk).update(state=Route.State.SUSPENDED)
    before = outgoing()
    ENTRY_POINTS[entry](request, ready)
    assert Transfer.objects.count() == 0
    assert sends_recorded() == []
    assert outgoing() == before


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_an_oversized_file_queues_nothing_and_records_nothing(request, ready, entry, monkeypatch):
    limit = len(DATA) - 1
    # Each way in measures the file where it first can: the upload, the folder, the copy.
    for module in (queueing, uploads, sends, watch):
        monkeypatch.setattr(module, "MAX_FILE_BYTES", limit)
    before = outgoing()
    ENTRY_POINTS[entry](request, ready)
    assert Transfer.objects.count() == 0
    assert sends_recorded() == []
    assert outgoing() == before


def test_a_split_file_records_one_event_per_transfer_for_its_own_route(ready, tmp_path):
    path = tmp_path / "borgere.csv"
    path.write_bytes(b"kommunekode;cpr\r\n751;0101011234\r\n461;0202021234\r\n")
    call_command(
        "send_file", "--route", str(ready.route.pk), "--split-csv", "kommunekode", str(path)
    )
    events = {event.object_id: event for event in sends_recorded()}
    transfers = Transfer.objects.order_by("pk")
    assert set(events) == {str(transfer.pk) for transfer in transfers} and len(events) == 2
    for transfer in transfers:
        event = events[str(transfer.pk)]
        assert event.details == {"sha256": transfer.sha256, "via": "command line"}
        assert set(event.concerns.all()) == set(transfer.route.parties())


def test_no_transfer_stays_when_its_event_cannot_be_written(ready, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("the audit log is out of reach")

    monkeypatch.setattr(queueing, "record_many", refuse)
    before = outgoing()
    with pytest.raises(RuntimeError):
        queue_send(ready.route, io.BytesIO(DATA), original_name="a.csv", channel=Channel.COMMAND)
    assert Transfer.objects.count() == 0
    assert outgoing() == before


def test_an_api_send_reads_the_route_and_its_account_once(client, ready, monkeypatch):
    read = {"account": 0, "blockers": 0}
    sender_account, route_blockers = queueing.sender_account, queueing.route_blockers

    def counted_account(route):
        read["account"] += 1
        return sender_account(route)

    def counted_blockers(route, **kwargs):
        read["blockers"] += 1
        return route_blockers(route, **kwargs)

    monkeypatch.setattr(queueing, "sender_account", counted_account)
    monkeypatch.setattr(queueing, "route_blockers", counted_blockers)
    response = client.post(
        f"/api/v1/routes/{ready.route.pk}/transfers",
        {"file": SimpleUploadedFile("borgere.csv", DATA)},
        **bearer(token_for(ready.route.sender, ready.staff)),
    )
    assert response.status_code == 201, response.content
    assert read == {"account": 1, "blockers": 1}
