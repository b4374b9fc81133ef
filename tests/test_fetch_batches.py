"""A full inbox fetched in batches (transfers.fetch with transfers.sftp_batch) from a real
OpenSSH sshd: more pairs than one batch holds, among them what must not be received, each
outcome as when the files were fetched one by one; a full disk stores what fits.
"""

import dataclasses
import hashlib
import io
import os
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from tests.support.sending import metadata_for
from transfers import fetch, protocol, states
from transfers.fetch import fetch_inbox
from transfers.models import ReceivedFile, Route, Transfer
from transfers.queueing import queue_send

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]


def deliver(folder: Path, route, name: str, data: bytes) -> None:
    """What the platform puts in IN/: the data file, then its metadata."""
    (folder / name).write_bytes(data)
    (folder / f"{name}.metadata").write_bytes(metadata_for(route, name, len(data)))


def test_more_pairs_than_a_batch_each_with_its_own_outcome(receiving_on_sshd, monkeypatch):
    folder, receiver, route = receiving_on_sshd
    monkeypatch.setattr(fetch, "PAIRS_AT_ONCE", 16)
    sent = {f"alfa_omsorg_FDD_{i:03}.csv": os.urandom(i * 997) for i in range(50)}
    for name, data in sent.items():
        deliver(folder, route, name, data)
    # Not to be received: metadata that does not parse, a size the metadata contradicts, a
    # data file whose metadata may still be coming.
    (folder / "broken.csv").write_bytes(b"x")
    (folder / "broken.csv.metadata").write_bytes(b"<FileMetadata>")
    deliver(folder, route, "liar.csv", b"1234")
    (folder / "liar.csv").write_bytes(b"123")
    (folder / "early.csv").write_bytes(b"soon")

    result = fetch_inbox(receiver.pk)

    assert (result.received, result.quarantined, result.waiting, result.gone) == (50, 2, 1, 0)
    for name, data in sent.items():
        record = ReceivedFile.objects.get(remote_name=name, state=ReceivedFile.State.RECEIVED)
        assert Path(record.stored_path).read_bytes() == data
        assert (record.size, record.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    reasons = dict(
        ReceivedFile.objects.filter(state="quarantined").values_list("remote_name", "reason")
    )
    assert reasons["broken.csv"].startswith("the metadata is not valid")
    assert reasons["liar.csv"] == "the file is 3 bytes but the metadata says 4"
    # Only the received pairs left the server; nothing half-stored is left here.
    assert sorted(p.name for p in folder.iterdir()) == [
        "broken.csv",
        "broken.csv.metadata",
        "early.csv",
        "liar.csv",
        "liar.csv.metadata",
    ]
    staging = Path(settings.TRANSFER_DATA_DIR) / "received" / receiver.username / ".incoming"
    assert list(staging.iterdir()) == []

    # Again: nothing is received twice, and what waits still waits.
    again = fetch_inbox(receiver.pk)
    assert (again.received, again.waiting) == (0, 1)
    assert ReceivedFile.objects.filter(state="received").count() == 50


def test_a_pair_recorded_by_an_earlier_fetch_is_only_removed(receiving_on_sshd):
    """A fetch that stopped after recording, before removing: the next one finds the record by
    the platform's id and removes the pair without storing the file again."""
    folder, receiver, route = receiving_on_sshd
    deliver(folder, route, "once.csv", b"kommunekode;navn\r\n751;A\r\n")
    metadata = (folder / "once.csv.metadata").read_bytes()
    assert fetch_inbox(receiver.pk).received == 1
    deliver(folder, route, "once.csv", b"kommunekode;navn\r\n751;A\r\n")
    (folder / "once.csv.metadata").write_bytes(metadata)  # the same platform id
    assert fetch_inbox(receiver.pk).received == 1
    assert ReceivedFile.objects.count() == 1
    assert list(folder.iterdir()) == []
    # Its bytes were read beside the metadata, before the record was found: not kept.
    staging = Path(settings.TRANSFER_DATA_DIR) / "received" / receiver.username / ".incoming"
    assert list(staging.iterdir()) == []


def test_a_file_a_concurrent_fetch_recorded_first_is_kept_once_and_the_rest_recorded(
    receiving_on_sshd, monkeypatch
):
    """Two fetches of one inbox may store the same file: the one that records it second keeps
    the first's record and still records the other files of its batch."""
    folder, receiver, route = receiving_on_sshd
    for name in ("a.csv", "b.csv", "c.csv"):
        deliver(folder, route, name, f"751;{name}\r\n".encode())
    recorded = fetch._record

    def beaten_to_b(records):
        [b] = [record for record in records if record.remote_name == "b.csv"]
        # The concurrent fetch's record, just before this one's.
        ReceivedFile.objects.create(
            account=b.account,
            remote_name=b.remote_name,
            state=b.state,
            stored_path=b.stored_path,
            size=b.size,
            sha256=b.sha256,
            file_transfer_uuid=b.file_transfer_uuid,
            route=b.route,
        )
        recorded(records)

    monkeypatch.setattr(fetch, "_record", beaten_to_b)

    assert fetch_inbox(receiver.pk).received == 3

    assert sorted(ReceivedFile.objects.values_list("remote_name", flat=True)) == [
        "a.csv",
        "b.csv",
        "c.csv",
    ]
    assert list(folder.iterdir()) == []


def test_a_data_file_whose_metadata_never_came_is_quarantined_after_the_grace(receiving_on_sshd):
    folder, receiver, _route = receiving_on_sshd
    (folder / "alone.csv").write_bytes(b"data")
    assert fetch_inbox(receiver.pk).waiting == 1
    old = time.time() - fetch.METADATA_GRACE_SECONDS - 5
    os.utime(folder / "alone.csv", (old, old))
    assert fetch_inbox(receiver.pk).quarantined == 1
    assert ReceivedFile.objects.get().reason == "the data file arrived without its metadata file"
    assert (folder / "alone.csv").exists()  # for a person to look at


def test_each_pair_is_checked_against_its_own_route_within_one_batch(receiving_on_sshd, odense):
    """The routes a batch's metadata names are read together: each pair still meets only its
    own route, its own sender and its own name, and one refusal holds back only its own pair."""
    folder, receiver, route = receiving_on_sshd
    suspended = Route.objects.create(
        environment=route.environment,
        infref=route.infref,
        sender=route.sender,
        receiver=route.receiver,
        municipality=odense,
        integration=route.integration,
        state=Route.State.SUSPENDED,
    )

    def deliver_as(name: str, data: bytes, **changes) -> None:
        metadata = protocol.parse_metadata(metadata_for(route, name, len(data)))
        descriptor = dataclasses.replace(metadata.descriptor, **changes.pop("descriptor", {}))
        routing = dataclasses.replace(metadata.routing, **changes)
        (folder / name).write_bytes(data)
        (folder / f"{name}.metadata").write_bytes(
            protocol.build_metadata(
                dataclasses.replace(metadata, descriptor=descriptor, routing=routing)
            )
        )

    for number in range(3):
        deliver(folder, route, f"good_{number}.csv", b"kommunekode;navn\r\n751;A\r\n")
    deliver_as("unknown_infref.csv", b"x", infref="INF-9999")
    deliver_as("suspended.csv", b"x", recipient_authority_cvr=odense.cvr)
    deliver_as("other_user.csv", b"x", descriptor={"sender": "someone_else"})
    deliver_as("renamed.csv", b"x", descriptor={"file_name": "other.csv"})

    result = fetch_inbox(receiver.pk)

    assert (result.received, result.quarantined) == (3, 4)
    received = ReceivedFile.objects.filter(state=ReceivedFile.State.RECEIVED)
    assert sorted(received.values_list("remote_name", flat=True)) == [
        "good_0.csv",
        "good_1.csv",
        "good_2.csv",
    ]
    assert set(received.values_list("route", flat=True)) == {route.pk}
    reasons = dict(
        ReceivedFile.objects.filter(state="quarantined").values_list("remote_name", "reason")
    )
    assert reasons["unknown_infref.csv"].startswith("no route for InfRef 'INF-9999' from IT system")
    assert reasons["suspended.csv"] == f"the route is {suspended.state}, not established"
    assert reasons["other_user.csv"] == (
        "the metadata names the sender 'someone_else', but the route's sending IT system is "
        "the SFTP user 'alfa_omsorg'"
    )
    assert reasons["renamed.csv"] == "the metadata names 'other.csv', not 'renamed.csv'"


def test_pairs_that_arrive_while_a_fetch_works_are_fetched_by_the_same_run(
    receiving_on_sshd, monkeypatch
):
    """As a batch of sends is routed, files keep arriving: the run lists again while it finds
    names it has not seen, and a file that waited for its metadata is taken once it is there."""
    folder, receiver, route = receiving_on_sshd
    deliver(folder, route, "first.csv", b"1")
    (folder / "late.csv").write_bytes(b"22")  # its metadata is still coming
    fetched_pairs = fetch._fetch_pairs
    rounds = []

    def while_fetching(session, account, names, listed):
        rounds.append(sorted(names))
        if len(rounds) == 1:
            deliver(folder, route, "second.csv", b"333")
            (folder / "late.csv.metadata").write_bytes(metadata_for(route, "late.csv", 2))
        return fetched_pairs(session, account, names, listed)

    monkeypatch.setattr(fetch, "_fetch_pairs", while_fetching)

    result = fetch_inbox(receiver.pk)

    assert rounds == [["first.csv"], ["late.csv", "second.csv"]]
    # late.csv waited for its metadata at the first look: it counts as received alone.
    assert (result.received, result.quarantined, result.waiting) == (3, 0, 0)
    assert sorted(
        ReceivedFile.objects.filter(state="received").values_list("remote_name", flat=True)
    ) == ["first.csv", "late.csv", "second.csv"]
    assert list(folder.iterdir()) == []


def test_a_fetch_stops_following_when_a_listing_shows_nothing_new(receiving_on_sshd, monkeypatch):
    """What stays in the inbox (a quarantined pair, a file waiting for its metadata) is looked
    at once a run: it does not keep the run listing."""
    folder, receiver, _route = receiving_on_sshd
    (folder / "broken.csv").write_bytes(b"x")
    (folder / "broken.csv.metadata").write_bytes(b"<FileMetadata>")
    (folder / "early.csv").write_bytes(b"soon")
    listings = []
    listed_by = fetch.SftpSession.list_entries

    def counted(session, path):
        listings.append(path)
        return listed_by(session, path)

    monkeypatch.setattr(fetch.SftpSession, "list_entries", counted)

    result = fetch_inbox(receiver.pk)

    assert (result.quarantined, result.waiting) == (1, 1)
    assert listings == ["IN", "IN"]


def test_a_fetch_waits_for_the_files_of_sends_on_their_way_to_the_inbox(
    receiving_on_sshd, monkeypatch
):
    """Where the portal sends to the inbox too, a run goes on listing while those sends are
    going and just after their triggers are written: a platform that routes at once puts the
    files in a moment later, and they are fetched by the run already going."""
    folder, receiver, route = receiving_on_sshd
    monkeypatch.setattr(fetch, "EXPECTING_SECONDS", 0.5)
    transfer = queue_send(route, io.BytesIO(b"751;x\r\n"), original_name="a.csv")
    states.move(transfer.pk, Transfer.State.QUEUED, Transfer.State.SENDING)
    states.move(transfer.pk, Transfer.State.SENDING, Transfer.State.SENT, sent_at=timezone.now())
    routed = threading.Timer(0.2, deliver, (folder, route, "routed.csv", b"751;x\r\n"))
    routed.start()

    started = time.monotonic()
    result = fetch_inbox(receiver.pk)

    routed.join()
    assert result.received == 1
    assert ReceivedFile.objects.get().remote_name == "routed.csv"
    assert list(folder.iterdir()) == []
    # It stopped once the trigger was no longer fresh, not at the end of FOLLOW_SECONDS.
    assert time.monotonic() - started < fetch.FOLLOW_SECONDS / 2


def test_a_send_that_stalls_does_not_keep_a_fetch_listing(receiving_on_sshd, monkeypatch):
    """A send to the inbox that hangs (a stalled connection, a large file) keeps a run listing
    for EXPECTING_SECONDS after its last new name, not until the end of FOLLOW_SECONDS: the
    worker is free for other tasks, and the send's delivery queues a fetch of its own."""
    _folder, receiver, route = receiving_on_sshd
    monkeypatch.setattr(fetch, "EXPECTING_SECONDS", 0.3)
    transfer = queue_send(route, io.BytesIO(b"751;x\r\n"), original_name="a.csv")
    states.move(transfer.pk, Transfer.State.QUEUED, Transfer.State.SENDING)

    started = time.monotonic()
    result = fetch_inbox(receiver.pk)

    assert result.received == 0
    assert time.monotonic() - started < fetch.FOLLOW_SECONDS / 2
