"""The Serviceplatform simulator: real SFTP servers and clients, no mocks."""

import dataclasses
import os
import re
import signal
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import paramiko
import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from gdpr.models import InfRef
from portal.accounts.models import Organisation
from portal.itsystems.models import ItSystem
from tests.support.simulator_fixtures import (
    make_user,
    openssh_sftp,
    route,
    running_simulator,
    sftp_client,
    simulator_process,
    wait_for,
    write_registry,
)
from transfers import protocol
from transfers.models import Environment, Route, SftpAccount
from transfers.simulator import ErrorCode, Registry, RegistryError, Simulator

pytestmark = pytest.mark.system

INFREF = "FagsystemdefineredeDataRefGDPR1203_1"
INACTIVE = "FagsystemdefineredeDataRefGDPR77_1"
AARHUS, ODENSE, COPENHAGEN, AALBORG = "55133018", "35209115", "64942212", "29189420"
SENDER_CVR = "39123452"
NO_USER_SYSTEM = uuid.UUID("7e57e57e-0000-4000-8000-000000000001")


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    keys = tmp_path_factory.mktemp("keys")
    return {
        "alfa": make_user("alfa", keys),
        "beta": make_user("beta", keys, kind="rsa"),
        "gamma": make_user("gamma", keys),
        "mallory": make_user("mallory", keys),
    }


@pytest.fixture
def registry_file(tmp_path, people):
    alfa, beta, gamma = people["alfa"], people["beta"], people["gamma"]
    return write_registry(
        tmp_path / "registry.json",
        users=[alfa, beta, gamma],
        infrefs={INFREF: True, INACTIVE: False},
        routes=[
            route(INFREF, alfa, beta, AARHUS),
            route(INFREF, alfa, beta, ODENSE, established=False),
            route(INFREF, alfa, beta, COPENHAGEN),
            route(INFREF, alfa, gamma, COPENHAGEN),
            route(INFREF, alfa, NO_USER_SYSTEM, AALBORG),
            route(INACTIVE, alfa, beta, AARHUS),
        ],
    )


@pytest.fixture
def sim(tmp_path, registry_file):
    with running_simulator(tmp_path / "serviceplatform", registry_file) as simulator:
        yield simulator


@pytest.fixture
def alfa(sim, people):
    with sftp_client(sim.port, people["alfa"], host_key=sim.host_key) as client:
        yield client


def trigger(name, size, *, sender="alfa", cvr=AARHUS, infref=INFREF, **routing):
    """A route-based trigger from alfa (pass sender_it_system to pretend otherwise)."""
    return protocol.build_trigger(
        protocol.Trigger(
            protocol.FileDescriptor(
                file_name=name,
                size=size,
                sender=sender,
                recipients=(protocol.ROUTING_RECIPIENT,),
                senders_file_id=f"id-{name}",
            ),
            protocol.RoutingInfo(
                infref=infref,
                sender_it_system=routing.pop("sender_it_system"),
                sender_authority_cvr=SENDER_CVR,
                transaction_id=uuid.uuid4(),
                sender_timestamp=datetime.now(UTC),
                recipient_authority_cvr=cvr,
                **routing,
            ),
        )
    )


def simple_trigger(name, size, recipients, sender="alfa"):
    return protocol.build_trigger(
        protocol.Trigger(
            protocol.FileDescriptor(name, size, sender, tuple(recipients), f"id-{name}"), None
        )
    )


def put(client: paramiko.SFTPClient, path: str, data: bytes) -> None:
    with client.open(path, "wb") as handle:
        handle.write(data)


def send(client, name, data, trigger_xml):
    put(client, f"OUT/{name}", data)
    put(client, f"OUT/{name}.trigger", trigger_xml)


def inbox(sim: Simulator, user: str) -> Path:
    return sim.data_dir / user / "IN"


def outbox(sim: Simulator, user: str) -> Path:
    return sim.data_dir / user / "OUT"


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder)) if folder.exists() else []


def receipt(sim: Simulator, name: str, user: str = "alfa") -> protocol.Receipt:
    path = inbox(sim, user) / f"{name}.sftpreceipt"
    wait_for(path)
    data = path.read_bytes()
    protocol.validate(data)
    return protocol.parse_receipt(data)


def assert_login_refused(port: int, user) -> None:
    with pytest.raises(paramiko.AuthenticationException), sftp_client(port, user):
        pass


def assert_refused(sim, name, code: ErrorCode) -> protocol.Receipt:
    result = receipt(sim, name)
    assert not result.success
    assert [e.code for e in result.errors] == [int(code)], result.errors
    assert sim.router.wait_idle(5)
    # Nothing reaches any receiver; the data file and the trigger have left OUT.
    for user in ("beta", "gamma"):
        assert listing(inbox(sim, user)) == []
    assert listing(outbox(sim, "alfa")) == []
    return result


# --- the happy paths -------------------------------------------------------------------------


def test_route_based_transfer_is_delivered(sim, alfa, people):
    data = os.urandom(200_000)
    name = "alfa_borgerdata_0001.csv"
    system = people["alfa"].it_system
    send(alfa, name, data, trigger(name, len(data), sender_it_system=system))

    result = receipt(sim, name)
    assert result.success and result.message == "SUCCESS"
    assert result.senders_file_id == f"id-{name}"
    assert (inbox(sim, "beta") / name).read_bytes() == data
    raw = (inbox(sim, "beta") / f"{name}.metadata").read_bytes()
    protocol.validate(raw)
    assert raw.startswith(b"<?xml") and b"<sp:FileMetadata" in raw
    metadata = protocol.parse_metadata(raw)
    assert metadata.file_transfer_uuid == result.file_transfer_uuid
    assert metadata.descriptor.sender == "alfa"
    assert metadata.descriptor.size == len(data) == (inbox(sim, "beta") / name).stat().st_size
    assert metadata.routing.infref == INFREF
    assert metadata.routing.sender_it_system == system
    assert metadata.routing.recipient_authority_cvr == AARHUS
    assert listing(outbox(sim, "alfa")) == []
    assert listing(inbox(sim, "alfa")) == [f"{name}.sftpreceipt"]
    assert listing(inbox(sim, "gamma")) == []

    # The receiver fetches and removes its files; the sender removes its receipt.
    with sftp_client(sim.port, people["beta"], host_key=sim.host_key) as beta:
        assert sorted(beta.listdir("IN")) == [name, f"{name}.metadata"]
        with beta.open(f"IN/{name}", "rb") as handle:
            assert handle.read() == data
        beta.remove(f"IN/{name}")
        beta.remove(f"IN/{name}.metadata")
    alfa.remove(f"IN/{name}.sftpreceipt")
    assert listing(inbox(sim, "beta")) == listing(inbox(sim, "alfa")) == []


def test_recipient_it_system_chooses_between_routes(sim, alfa, people):
    name = "to_gamma.csv"
    xml = trigger(
        name,
        3,
        cvr=COPENHAGEN,
        sender_it_system=people["alfa"].it_system,
        recipient_it_system=people["gamma"].it_system,
    )
    send(alfa, name, b"abc", xml)
    assert receipt(sim, name).success
    assert listing(inbox(sim, "gamma")) == [name, f"{name}.metadata"]
    assert listing(inbox(sim, "beta")) == []


def test_simple_transfer_to_several_users(sim, alfa):
    name = "simple.txt"
    send(alfa, name, b"hello", simple_trigger(name, 5, ["beta", "gamma", "beta"]))
    result = receipt(sim, name)
    assert result.success
    for user in ("beta", "gamma"):
        assert (inbox(sim, user) / name).read_bytes() == b"hello"
        metadata = protocol.parse_metadata((inbox(sim, user) / f"{name}.metadata").read_bytes())
        assert metadata.routing is None and metadata.descriptor.recipients == (
            "beta",
            "gamma",
            "beta",
        )
        assert metadata.file_transfer_uuid == result.file_transfer_uuid


def test_an_empty_file_is_delivered(sim, alfa, people):
    send(alfa, "empty.csv", b"", trigger("empty.csv", 0, sender_it_system=people["alfa"].it_system))
    assert receipt(sim, "empty.csv").success
    assert (inbox(sim, "beta") / "empty.csv").read_bytes() == b""


def test_a_trigger_renamed_into_place_is_routed(sim, alfa, people):
    name = "renamed.csv"
    put(alfa, f"OUT/{name}", b"12345")
    put(alfa, "OUT/upload.tmp", trigger(name, 5, sender_it_system=people["alfa"].it_system))
    alfa.posix_rename("OUT/upload.tmp", f"OUT/{name}.trigger")
    assert receipt(sim, name).success
    assert (inbox(sim, "beta") / name).read_bytes() == b"12345"


def test_a_large_upload_over_gcm(sim, people):
    data = os.urandom(8 * 1024 * 1024 + 17)
    name = "large.bin"
    with sftp_client(sim.port, people["alfa"], host_key=sim.host_key, gcm=True) as client:
        assert client.get_channel().get_transport().remote_cipher == "aes128-gcm@openssh.com"
        with client.open(f"OUT/{name}", "wb") as handle:
            handle.set_pipelined(True)
            handle.write(data)
        put(
            client,
            f"OUT/{name}.trigger",
            trigger(name, len(data), sender_it_system=people["alfa"].it_system),
        )
    assert receipt(sim, name).success
    assert (inbox(sim, "beta") / name).read_bytes() == data


# --- every error code ------------------------------------------------------------------------


def test_100_invalid_trigger(sim, alfa):
    send(alfa, "bad.csv", b"x", b"<not-a-trigger/>")
    result = assert_refused(sim, "bad.csv", ErrorCode.INVALID_TRIGGER)
    assert result.senders_file_id is None
    assert "root element" in result.errors[0].description


def test_100_trigger_with_default_namespace(sim, alfa, people):
    xml = trigger("ns.csv", 1, sender_it_system=people["alfa"].it_system)
    xml = xml.replace(b"xmlns:sp=", b"xmlns=").replace(b"sp:", b"")
    send(alfa, "ns.csv", b"x", xml)
    assert (
        "carry no namespace"
        in assert_refused(sim, "ns.csv", ErrorCode.INVALID_TRIGGER).errors[0].description
    )


def test_101_file_name_mismatch(sim, alfa, people):
    send(alfa, "one.csv", b"x", trigger("two.csv", 1, sender_it_system=people["alfa"].it_system))
    result = assert_refused(sim, "one.csv", ErrorCode.FILE_NAME_MISMATCH)
    assert result.senders_file_id == "id-two.csv"


def test_102_data_file_missing(sim, alfa, people):
    put(
        alfa,
        "OUT/ghost.csv.trigger",
        trigger("ghost.csv", 1, sender_it_system=people["alfa"].it_system),
    )
    assert_refused(sim, "ghost.csv", ErrorCode.DATA_FILE_MISSING)


def test_103_size_mismatch(sim, alfa, people):
    send(
        alfa, "size.csv", b"four", trigger("size.csv", 5, sender_it_system=people["alfa"].it_system)
    )
    result = assert_refused(sim, "size.csv", ErrorCode.SIZE_MISMATCH)
    assert "5" in result.errors[0].description and "4 bytes" in result.errors[0].description


def test_104_sender_is_not_the_logged_in_user(sim, alfa, people):
    xml = trigger("who.csv", 1, sender="beta", sender_it_system=people["alfa"].it_system)
    send(alfa, "who.csv", b"x", xml)
    assert_refused(sim, "who.csv", ErrorCode.SENDER_MISMATCH)


def test_104_sender_it_system_is_not_the_users(sim, alfa, people):
    send(alfa, "sys.csv", b"x", trigger("sys.csv", 1, sender_it_system=people["beta"].it_system))
    assert_refused(sim, "sys.csv", ErrorCode.SENDER_MISMATCH)


@pytest.mark.parametrize("infref", [INACTIVE, "FagsystemdefineredeDataRefGDPR999_1"])
def test_105_unknown_or_inactive_infref(sim, alfa, people, infref):
    xml = trigger("inf.csv", 1, infref=infref, sender_it_system=people["alfa"].it_system)
    send(alfa, "inf.csv", b"x", xml)
    assert_refused(sim, "inf.csv", ErrorCode.UNKNOWN_INFREF)


@pytest.mark.parametrize(
    ("cvr", "recipient"),
    [("12345678", None), (ODENSE, None), (AARHUS, "gamma")],  # none, not established, wrong system
)
def test_106_no_route(sim, alfa, people, cvr, recipient):
    extra = {"recipient_it_system": people[recipient].it_system} if recipient else {}
    xml = trigger("route.csv", 1, cvr=cvr, sender_it_system=people["alfa"].it_system, **extra)
    send(alfa, "route.csv", b"x", xml)
    assert_refused(sim, "route.csv", ErrorCode.NO_ROUTE)


def test_107_ambiguous_route(sim, alfa, people):
    xml = trigger("amb.csv", 1, cvr=COPENHAGEN, sender_it_system=people["alfa"].it_system)
    send(alfa, "amb.csv", b"x", xml)
    assert_refused(sim, "amb.csv", ErrorCode.AMBIGUOUS_ROUTE)


def test_108_trigger_while_the_data_file_is_still_open(sim, alfa, people):
    handle = alfa.open("OUT/open.csv", "wb")
    handle.write(b"partial")
    handle.flush()
    put(
        alfa,
        "OUT/open.csv.trigger",
        trigger("open.csv", 7, sender_it_system=people["alfa"].it_system),
    )
    result = receipt(sim, "open.csv")
    assert [e.code for e in result.errors] == [ErrorCode.NAME_IN_PROCESS]
    handle.close()
    assert sim.router.wait_idle(5)
    assert listing(outbox(sim, "alfa")) == [] and listing(inbox(sim, "beta")) == []


def test_109_name_still_waiting_in_the_receivers_in(sim, alfa, people):
    system = people["alfa"].it_system
    send(alfa, "twice.csv", b"first", trigger("twice.csv", 5, sender_it_system=system))
    assert receipt(sim, "twice.csv").success
    alfa.remove("IN/twice.csv.sftpreceipt")
    send(alfa, "twice.csv", b"again", trigger("twice.csv", 5, sender_it_system=system))
    result = receipt(sim, "twice.csv")
    assert [e.code for e in result.errors] == [ErrorCode.NAME_TAKEN]
    assert (inbox(sim, "beta") / "twice.csv").read_bytes() == b"first"  # untouched
    assert listing(outbox(sim, "alfa")) == []


def test_110_unknown_recipient(sim, alfa, people):
    send(alfa, "nobody.csv", b"x", simple_trigger("nobody.csv", 1, ["beta", "nobody"]))
    assert_refused(sim, "nobody.csv", ErrorCode.UNKNOWN_RECIPIENT)
    xml = trigger("nouser.csv", 1, cvr=AALBORG, sender_it_system=people["alfa"].it_system)
    send(alfa, "nouser.csv", b"x", xml)
    assert_refused(sim, "nouser.csv", ErrorCode.UNKNOWN_RECIPIENT)


# --- names in process ------------------------------------------------------------------------


def test_a_name_in_process_cannot_be_touched(tmp_path, registry_file, people):
    with (
        running_simulator(tmp_path / "sp", registry_file, delay=1.5) as sim,
        sftp_client(sim.port, people["alfa"], host_key=sim.host_key) as alfa,
    ):
        name = "busy.csv"
        send(alfa, name, b"data", trigger(name, 4, sender_it_system=people["alfa"].it_system))
        assert sim.router.is_busy("alfa", name)
        for attempt in (
            lambda: alfa.open(f"OUT/{name}", "wb"),
            lambda: alfa.open(f"OUT/{name}", "ab"),
            lambda: alfa.open(f"OUT/{name}.trigger", "wb"),
            lambda: alfa.remove(f"OUT/{name}"),
            lambda: alfa.remove(f"OUT/{name}.trigger"),
            lambda: alfa.rename(f"OUT/{name}", "OUT/other.csv"),
        ):
            with pytest.raises(PermissionError):
                attempt()
        # Reading it, and uploading other names, is fine meanwhile.
        with alfa.open(f"OUT/{name}", "rb") as handle:
            assert handle.read() == b"data"
        put(alfa, "OUT/other.csv", b"x")
        assert not (inbox(sim, "alfa") / f"{name}.sftpreceipt").exists()
        assert receipt(sim, name).success
        put(alfa, f"OUT/{name}", b"next")  # free again once routed
        alfa.remove(f"OUT/{name}")


def test_a_broken_session_does_not_route_a_half_written_trigger(sim, people):
    with sftp_client(sim.port, people["alfa"], host_key=sim.host_key) as client:
        put(client, "OUT/cut.csv", b"x")
        handle = client.open("OUT/cut.csv.trigger", "wb")
        handle.write(b"<sp:Trigger")
        handle.flush()
        client.get_channel().get_transport().close()  # the connection drops, handle still open
    wait_for(lambda: not sim.router._writers, timeout=5)
    assert sim.router.wait_idle(5)
    assert not (inbox(sim, "alfa") / "cut.csv.sftpreceipt").exists()
    assert sorted(listing(outbox(sim, "alfa"))) == ["cut.csv", "cut.csv.trigger"]
    # A retry overwrites both and is routed.
    with sftp_client(sim.port, people["alfa"], host_key=sim.host_key) as client:
        send(
            client,
            "cut.csv",
            b"y",
            trigger("cut.csv", 1, sender_it_system=people["alfa"].it_system),
        )
    assert receipt(sim, "cut.csv").success


def test_triggers_left_by_a_stopped_simulator_are_routed_at_start(tmp_path, registry_file, people):
    data_dir = tmp_path / "sp"
    out = data_dir / "alfa" / "OUT"
    out.mkdir(parents=True)
    (out / "left.csv").write_bytes(b"abc")
    (out / "left.csv.trigger").write_bytes(
        trigger("left.csv", 3, sender_it_system=people["alfa"].it_system)
    )
    with running_simulator(data_dir, registry_file) as sim:
        assert receipt(sim, "left.csv").success


def test_unread_files_are_cleaned_up(tmp_path, registry_file, people):
    with (
        running_simulator(tmp_path / "sp", registry_file, cleanup_after=0.5) as sim,
        sftp_client(sim.port, people["alfa"], host_key=sim.host_key) as alfa,
    ):
        send(
            alfa, "old.csv", b"x", trigger("old.csv", 1, sender_it_system=people["alfa"].it_system)
        )
        wait_for(inbox(sim, "beta") / "old.csv.metadata")
        wait_for(lambda: listing(inbox(sim, "beta")) == [], timeout=5)
        wait_for(lambda: listing(inbox(sim, "alfa")) == [], timeout=5)


# --- the folders are a jail ------------------------------------------------------------------


def test_paths_outside_the_users_folders_are_refused(sim, alfa):
    put(alfa, "OUT/mine.csv", b"x")
    (sim.data_dir / "beta" / "IN").mkdir(parents=True, exist_ok=True)
    (sim.data_dir / "beta" / "IN" / "theirs.csv").write_bytes(b"secret")
    for path in (
        "../beta/IN/theirs.csv",
        "/../beta/IN/theirs.csv",
        "OUT/../../beta/IN/theirs.csv",
        "/OUT/../IN/../../beta/IN/theirs.csv",
        "OUT/..",
        "../../../../etc/passwd",
    ):
        with pytest.raises(PermissionError):
            alfa.open(path, "rb")
        with pytest.raises(PermissionError):
            alfa.stat(path)
    for path in ("/etc/passwd", "beta/IN/theirs.csv", "OUT/sub/file"):
        with pytest.raises(FileNotFoundError):
            alfa.open(path, "rb")
    for path in ("..", "/..", "OUT/../.."):
        with pytest.raises(PermissionError):
            alfa.listdir(path)
    assert alfa.normalize("../../..") == "/"
    assert sorted(alfa.listdir("/")) == ["IN", "OUT"]
    assert alfa.listdir("OUT") == ["mine.csv"]
    with pytest.raises(PermissionError):
        alfa.open("IN/upload.csv", "wb")  # IN is read-only
    with pytest.raises(PermissionError):
        alfa.open("OUT/tab\t.csv", "wb")  # unsafe names: tests/test_simulator_names.py
    with pytest.raises(PermissionError):
        alfa.mkdir("OUT/sub")
    with pytest.raises(OSError):
        alfa.mkdir("OUT")  # exists
    with pytest.raises(PermissionError):
        alfa.rmdir("OUT")
    with pytest.raises(PermissionError):
        alfa.symlink("/etc/passwd", "OUT/passwd")
    with pytest.raises(PermissionError):
        alfa.rename("OUT/mine.csv", "IN/mine.csv")
    with pytest.raises(OSError):
        alfa.open("OUT/mine.csv", "x")  # exclusive create of an existing name
    assert (sim.data_dir / "beta" / "IN" / "theirs.csv").read_bytes() == b"secret"


def test_symbolic_links_are_never_followed(sim, alfa, people, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"secret")
    out, inn = outbox(sim, "alfa"), inbox(sim, "alfa")
    (out / "link.csv").symlink_to(secret)
    (inn / "link.csv").symlink_to(secret)
    (out / "dangling.csv").symlink_to(tmp_path / "new-file")
    for path in ("OUT/link.csv", "IN/link.csv"):
        with pytest.raises(PermissionError):
            alfa.open(path, "rb")
        with pytest.raises(PermissionError):
            alfa.stat(path)
    for mode in ("wb", "ab", "r+"):
        with pytest.raises(PermissionError):
            alfa.open("OUT/link.csv", mode)
    with pytest.raises(PermissionError):
        alfa.open("OUT/dangling.csv", "wb")  # O_NOFOLLOW: never creates the link's target
    assert not (tmp_path / "new-file").exists()
    assert "link.csv" not in alfa.listdir("OUT") and "link.csv" not in alfa.listdir("IN")
    with pytest.raises(PermissionError):
        alfa.remove("OUT/link.csv")
    # A trigger for a linked "data file" does not deliver what the link points at.
    (out / "dangling.csv").unlink()
    put(
        alfa,
        "OUT/link.csv.trigger",
        trigger("link.csv", 6, sender_it_system=people["alfa"].it_system),
    )
    assert_refused(sim, "link.csv", ErrorCode.DATA_FILE_MISSING)
    assert secret.read_bytes() == b"secret"


def test_a_linked_user_folder_is_refused(sim, people, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = sim.data_dir / "gamma"
    root.mkdir()
    (root / "IN").mkdir()
    (root / "OUT").symlink_to(elsewhere)
    gamma = sftp_client(sim.port, people["gamma"], host_key=sim.host_key, timeout=5)
    with pytest.raises((paramiko.SSHException, EOFError, OSError)), gamma as client:
        client.open("OUT/x.csv", "wb").close()
    assert list(elsewhere.iterdir()) == []


# --- logins ----------------------------------------------------------------------------------


def test_unknown_keys_and_users_are_refused(sim, people):
    assert_login_refused(sim.port, people["mallory"])
    impostor = dataclasses.replace(people["alfa"], key=people["beta"].key)  # alfa's name only
    assert_login_refused(sim.port, impostor)
    transport = paramiko.Transport(("127.0.0.1", sim.port))
    try:
        transport.connect()
        with pytest.raises(paramiko.BadAuthenticationType) as caught:
            transport.auth_password("alfa", "password")
        assert caught.value.allowed_types == ["publickey"]
    finally:
        transport.close()


def test_the_host_key_is_ed25519_and_kept(tmp_path, registry_file):
    with running_simulator(tmp_path / "sp", registry_file) as first:
        key, fingerprint = first.host_key, first.fingerprint
    assert key.get_name() == "ssh-ed25519"
    assert fingerprint.startswith("SHA256:")
    with running_simulator(tmp_path / "sp", registry_file) as second:
        assert second.fingerprint == fingerprint


def test_the_registry_file_is_reread_when_it_changes(sim, people, tmp_path, registry_file):
    assert_login_refused(sim.port, people["mallory"])
    write_registry(registry_file, users=[people["alfa"], people["mallory"]])
    with sftp_client(sim.port, people["mallory"], host_key=sim.host_key) as client:
        assert sorted(client.listdir("/")) == ["IN", "OUT"]
    registry_file.write_text("{ broken")  # a broken edit keeps the last good registry
    with sftp_client(sim.port, people["mallory"], host_key=sim.host_key):
        pass


def test_registry_file_errors_say_what_is_wrong(tmp_path, people):
    path = tmp_path / "r.json"
    cases = [
        ("[]", "JSON object"),
        ('{"users": [{"username": "../x", "it_system": "x", "public_keys": []}]}', "username"),
        (
            '{"users": [{"username": "a", "it_system": "x", "public_keys": ["ssh-ed25519 !!"]}]}',
            "base64",
        ),
        ('{"infrefs": {"X": "yes"}}', "true (active) or false"),
        ('{"routes": [{"infref": "X"}]}', "lacks"),
        ('{"extra": 1}', "unknown keys"),
        ("{", "not JSON"),
    ]
    for text, message in cases:
        path.write_text(text)
        with pytest.raises(RegistryError, match=re.escape(message)):
            Registry.from_file(path)


# --- other clients and ways to run it --------------------------------------------------------


def test_openssh_sftp_client(sim, people, tmp_path):
    work = tmp_path / "client"
    work.mkdir()
    data = os.urandom(300_000)
    (work / "openssh.csv").write_bytes(data)
    (work / "openssh.csv.trigger").write_bytes(
        trigger("openssh.csv", len(data), sender_it_system=people["alfa"].it_system)
    )
    sent = openssh_sftp(
        sim.port,
        people["alfa"],
        "cd OUT\nput openssh.csv\nput openssh.csv.trigger\nls -l\n",
        work,
    )
    assert sent.returncode == 0, sent.stderr
    assert receipt(sim, "openssh.csv").success
    fetched = openssh_sftp(
        sim.port,
        people["beta"],
        "get IN/openssh.csv got.csv\nget IN/openssh.csv.metadata got.metadata\n"
        "rm IN/openssh.csv\nrm IN/openssh.csv.metadata\n",
        work,
    )
    assert fetched.returncode == 0, fetched.stderr
    assert (work / "got.csv").read_bytes() == data
    assert protocol.parse_metadata((work / "got.metadata").read_bytes()).descriptor.sender == "alfa"
    assert listing(inbox(sim, "beta")) == []
    refused = openssh_sftp(sim.port, people["alfa"], "put got.csv IN/x.csv\n", work)
    assert refused.returncode != 0


def test_management_command(tmp_path, registry_file, people):
    data_dir = tmp_path / "sp"
    with simulator_process(data_dir, registry_file, "--delay", "0.2") as proc:
        first = proc.fingerprint
        host_key = paramiko.PKey.from_path(data_dir / ".simulator" / "ssh_host_ed25519_key")
        with sftp_client(proc.port, people["alfa"], host_key=host_key) as alfa:
            xml = trigger("cmd.csv", 3, sender_it_system=people["alfa"].it_system)
            send(alfa, "cmd.csv", b"abc", xml)
            wait_for(data_dir / "alfa" / "IN" / "cmd.csv.sftpreceipt")
        assert (data_dir / "beta" / "IN" / "cmd.csv").read_bytes() == b"abc"
        proc.process.send_signal(signal.SIGTERM)
        assert proc.process.wait(timeout=10) == 0
    assert any("stopped" in line for line in proc.output)
    with simulator_process(data_dir, registry_file) as again:
        assert again.fingerprint == first


def test_management_command_refuses_a_bad_registry(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"users": 1}')
    with pytest.raises(RuntimeError, match="is a list"), simulator_process(tmp_path / "sp", bad):
        pass


# --- the portal's database as the registry ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_registry_from_the_database(tmp_path, people, aarhus):
    vendor = Organisation.objects.create(kind="vendor", name="Alfa Software A/S", cvr="39123452")
    sender = ItSystem.objects.create(
        uuid=people["alfa"].it_system, name="Alfa", vendor=vendor, is_sender=True
    )
    receiver = ItSystem.objects.create(
        uuid=people["beta"].it_system, name="Beta", vendor=vendor, is_receiver=True
    )
    third = ItSystem.objects.create(
        uuid=people["gamma"].it_system, name="Gamma", vendor=vendor, is_receiver=True
    )
    operator = get_user_model().objects.create_user("op", "op@example.invalid", "x")
    infref = InfRef.objects.create(
        name=INFREF,
        it_system=sender,
        assigned_by=operator,
        created_on_serviceplatform_at=timezone.now(),
    )

    def account(system, user, environment=Environment.SIMULATOR):
        return SftpAccount.objects.create(
            it_system=system,
            environment=environment,
            username=user.username,
            host="127.0.0.1",
            public_key=user.public_line,
        )

    account(sender, people["alfa"])
    account(receiver, people["beta"])
    account(third, people["gamma"], environment=Environment.EXTERNAL_TEST)  # not the simulator's
    the_route = Route.objects.create(
        environment=Environment.SIMULATOR,
        infref=infref,
        sender=sender,
        receiver=receiver,
        municipality=aarhus,
        state=Route.State.ESTABLISHED,
    )
    loaded = Registry.from_database()
    assert [u.username for u in loaded.users] == ["alfa", "beta"]
    assert loaded.infref_active(INFREF) is True
    assert loaded.matching_routes(INFREF, sender.uuid, aarhus.cvr)[0].receiver_it_system == (
        receiver.uuid
    )

    with running_simulator(tmp_path / "sp", None) as sim:
        system = people["alfa"].it_system
        with sftp_client(sim.port, people["alfa"], host_key=sim.host_key) as alfa:
            send(
                alfa, "db.csv", b"db", trigger("db.csv", 2, cvr=aarhus.cvr, sender_it_system=system)
            )
            assert receipt(sim, "db.csv").success
            assert (inbox(sim, "beta") / "db.csv").read_bytes() == b"db"
            for name in ("db.csv", "db.csv.metadata"):
                (inbox(sim, "beta") / name).unlink()

            # Changes in the portal take effect without a restart, within a second.
            the_route.state = Route.State.SUSPENDED
            the_route.save()
            time.sleep(1.1)
            send(
                alfa,
                "db2.csv",
                b"db",
                trigger("db2.csv", 2, cvr=aarhus.cvr, sender_it_system=system),
            )
            assert_refused(sim, "db2.csv", ErrorCode.NO_ROUTE)

            InfRef.objects.filter(pk=infref.pk).update(created_on_serviceplatform_at=None)
            time.sleep(1.1)
            send(
                alfa,
                "db3.csv",
                b"db",
                trigger("db3.csv", 2, cvr=aarhus.cvr, sender_it_system=system),
            )
            assert_refused(sim, "db3.csv", ErrorCode.UNKNOWN_INFREF)

        assert_login_refused(sim.port, people["gamma"])
        SftpAccount.objects.filter(username="gamma").update(environment=Environment.SIMULATOR)
        time.sleep(1.1)
        with sftp_client(sim.port, people["gamma"], host_key=sim.host_key) as gamma:
            assert sorted(gamma.listdir("/")) == ["IN", "OUT"]


def test_concurrent_sessions_each_get_their_receipts(sim, people):
    system = people["alfa"].it_system
    errors = []

    def upload(worker: int) -> None:
        try:
            with sftp_client(sim.port, people["alfa"], host_key=sim.host_key) as client:
                for n in range(10):
                    name = f"w{worker}_{n}.csv"
                    body = f"{worker}:{n}".encode()
                    send(client, name, body, trigger(name, len(body), sender_it_system=system))
        except Exception as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=upload, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sim.router.wait_idle(10)
    names = {f"w{w}_{n}.csv" for w in range(4) for n in range(10)}
    assert set(listing(inbox(sim, "beta"))) == names | {f"{n}.metadata" for n in names}
    assert all(receipt(sim, name).success for name in names)
    assert listing(outbox(sim, "alfa")) == []
