"""Hostile remote file names: never a path on this disk, never a path on the server, never lost.

OpenSSH's sshd serves the receiving inbox here, since it lists whatever names its file system
holds; the simulator refuses such names itself (tests/test_simulator.py).
"""

import io
import time
from pathlib import Path

import pytest
from django.conf import settings

from tests.support import engine
from tests.support.sending import metadata_for
from transfers import protocol
from transfers.fetch import fetch_inbox
from transfers.models import ReceivedFile
from transfers.queueing import queue_send

# Names with spaces, ";" or letters outside ASCII ("évil.csv") are received now, stored under a
# name of the portal's (tests/test_protocol_reading.py); these stay refused.
HOSTILE_ON_DISK = [
    "ﬁle.csv",  # a ligature that looks like "file.csv"
    "ｆile.csv",  # a full-width look-alike
    "e\u0301vil.csv",  # a decomposed "é": looks like "évil.csv", is another name
    "line\nbreak.csv",  # would forge lines in a log
    "rapport\u202evsc.exe",  # a right-to-left override: shown as "rapportexe.csv"
]


def files_under(directory: Path) -> set[Path]:
    return (
        {path for path in directory.rglob("*") if path.is_file()} if directory.exists() else set()
    )


@pytest.mark.system
def test_names_the_protocol_does_not_allow_are_quarantined_and_left_on_the_server(
    receiving_on_sshd,
):
    folder, receiver, _route = receiving_on_sshd
    for name in HOSTILE_ON_DISK:
        (folder / name).write_bytes(b"data")
        (folder / f"{name}.metadata").write_bytes(b"<x/>")
    stored_before = files_under(Path(settings.TRANSFER_DATA_DIR))

    result = fetch_inbox(receiver.pk)

    assert (result.received, result.quarantined) == (0, len(HOSTILE_ON_DISK))
    assert files_under(Path(settings.TRANSFER_DATA_DIR)) == stored_before
    recorded = set(ReceivedFile.objects.values_list("remote_name", flat=True))
    assert recorded == {repr(name) for name in HOSTILE_ON_DISK}
    assert all("\n" not in name for name in recorded)
    assert {r.reason.split(": it ")[0] for r in ReceivedFile.objects.all()} == {
        "the file name is not one the protocol allows"
    }
    assert len(list(folder.iterdir())) == 2 * len(HOSTILE_ON_DISK)  # for a person to look at
    fetch_inbox(receiver.pk)
    assert ReceivedFile.objects.count() == len(HOSTILE_ON_DISK)  # recorded once, not per fetch


@pytest.mark.system
@pytest.mark.parametrize(
    "name",
    [
        *("../../../escape.csv", "/etc/passwd", "IN/../x.csv", "nul\x00byte.csv", "x" * 256),
        *("", ".", "..", "æ" * 128, "a/b.csv"),
    ],
)
def test_names_no_file_system_holds_are_refused_before_any_path_is_made(receiving_on_sshd, name):
    """A server may list any string; the fetch refuses it before it builds a local path."""
    _folder, receiver, _route = receiving_on_sshd
    from transfers.fetch import _screen

    stored_before = files_under(Path(settings.TRANSFER_DATA_DIR))
    listed = {name: (10, time.time()), f"{name}.metadata": (300, time.time())}
    assert _screen(receiver, name, listed) == "quarantined"
    assert files_under(Path(settings.TRANSFER_DATA_DIR)) == stored_before
    assert ReceivedFile.objects.get().remote_name == protocol.printable(name)


@pytest.mark.system
def test_the_longest_allowed_name_is_stored_within_the_local_name_limit(receiving_on_sshd):
    folder, receiver, route = receiving_on_sshd
    name = "a" * 242 + ".csv"  # with ".metadata", the longest name a file system holds
    (folder / name).write_bytes(b"data")
    (folder / f"{name}.metadata").write_bytes(metadata_for(route, name, 4))

    assert fetch_inbox(receiver.pk).received == 1
    received = ReceivedFile.objects.get()
    assert received.remote_name == name
    assert Path(received.stored_path).read_bytes() == b"data"
    assert len(Path(received.stored_path).name) <= 255
    assert list(folder.iterdir()) == []


def test_an_uploaded_file_name_is_only_a_label(staff_a, operator, system_a, system_b, aarhus):
    """The name a user's browser sends is kept for display; the remote name is the portal's."""
    route = engine.ready_route(
        staff=staff_a,
        operator=operator,
        sender=system_a,
        receiver=system_b,
        municipalities=[aarhus],
        receiver_account=False,
        host_key="ssh-ed25519 AAAA",
    ).route
    transfer = queue_send(
        route, io.BytesIO(b"a;b\r\n"), original_name="../../etc/ﬁle\x00.csv", user=staff_a
    )
    assert protocol.is_file_name(transfer.remote_name)
    assert Path(transfer.payload).parent == Path(settings.TRANSFER_DATA_DIR) / "outgoing"
    assert transfer.original_name == "ﬁle.csv"
