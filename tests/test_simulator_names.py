"""File names the contract allows, through the simulator: stock clients, routing, the fetch.

KOMBIT's contract types `FileName` as any string of up to 255 characters, and the portal reads
every name `transfers.protocol.file_name_problem` accepts. The simulator serves, routes and
delivers the same names (`safe_file_name` in transfers/simulator/folders.py), as the platform
does: a stock client that sends "Udtræk Aarhus 2024.csv" with its trigger gets SUCCESS, the
receiver's IN holds the file under its own name with metadata naming it (valid against KOMBIT's
XSD, checked with lxml alone), and the portal's fetcher stores it. A name the rule refuses is
refused by the SFTP server itself, and nothing is written for it anywhere.
"""

import io
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from tests.support import engine
from tests.support.simulator_fixtures import (
    ROOT,
    TestUser,
    make_user,
    openssh_sftp,
    route,
    running_simulator,
    sftp_client,
    wait_for,
    write_registry,
)
from transfers import protocol
from transfers.fetch import fetch_inbox
from transfers.models import ReceivedFile
from transfers.simulator import ErrorCode, Simulator
from transfers.simulator.router import PLATFORM_DELAY

pytestmark = pytest.mark.system

NAMES = ["Udtræk Aarhus 2024.csv", "data(1)+v2.csv"]
INFREF = "FagsystemdefineredeDataRefGDPR1203_1"
AARHUS = "55133018"
SENDER_CVR = "39123452"
SCHEMA = ROOT / "transfers" / "contract" / "SFTPTypes.xsd"
RECEIPT_TIMEOUT = 20.0  # the delay before routing, plus a loaded machine
STAND_IN = "stand-in.csv"
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)

# Every kind of name file_name_problem refuses, as the last part of a path in OUT/ or IN/.
UNSAFE = [
    "sub/x.csv",  # a separator: a sub-folder, which does not exist
    "..\\escape.csv",
    "x\x00.csv",
    "..",  # ("." is no file name: OUT/. is OUT itself, as in tests/test_simulator.py)
    "line\nbreak.csv",
    "tab\t.csv",
    "esc\x1b[31m.csv",
    "del\x7f.csv",
    "c1\x85.csv",
    "rapport\u202evsc.exe",
    "da\u200bta.csv",
    "\ufb01le.csv",
    "\uff46ile.csv",
    "e\u0301vil.csv",
    "no\u00a0break.csv",
    "æ" * 128,  # 256 bytes in UTF-8
]
# Of those, the ones a Linux file system holds, put on the disk behind the server's back.
ON_DISK = [n for n in UNSAFE if "/" not in n and "\x00" not in n and n != ".." and len(n) < 128]


def short_id(name: str) -> str:
    """A test id for a name: escaped, and a long one by its length in bytes."""
    return ascii(name) if len(name) <= 40 else f"{name[:6]!a}...{len(name.encode())}-bytes"


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA), PARSER))


@pytest.fixture(scope="module")
def people(tmp_path_factory) -> dict[str, TestUser]:
    keys = tmp_path_factory.mktemp("keys")
    return {"alfa": make_user("alfa", keys), "beta": make_user("beta", keys, kind="rsa")}


@pytest.fixture
def registry_file(tmp_path, people) -> Path:
    alfa, beta = people["alfa"], people["beta"]
    return write_registry(
        tmp_path / "registry.json",
        users=[alfa, beta],
        infrefs={INFREF: True},
        routes=[route(INFREF, alfa, beta, AARHUS)],
    )


@pytest.fixture
def platform(tmp_path, registry_file):
    """The simulator as the platform: routing waits PLATFORM_DELAY, so a stock client may still
    stat what it has just closed."""
    with running_simulator(tmp_path / "sp", registry_file, delay=PLATFORM_DELAY) as sim:
        yield sim


@pytest.fixture
def sim(tmp_path, registry_file):
    """The simulator as tests run it: routing at once."""
    with running_simulator(tmp_path / "sp", registry_file) as simulator:
        yield simulator


def valid(schema: etree.XMLSchema, data: bytes) -> etree._Element:
    """The document's root, after lxml has validated it against SFTPTypes.xsd."""
    root = etree.fromstring(data, PARSER)
    assert schema.validate(root), (schema.error_log, data)
    return root


def trigger_for(
    name: str, size: int, sender: str, sender_it_system: uuid.UUID, infref=INFREF, cvr=AARHUS
) -> bytes:
    """A route-based trigger for `name` as a client outside the portal writes it. The portal's
    writer keeps to conservative names, so it writes the trigger for a stand-in and the name
    goes in with lxml."""
    built = protocol.build_trigger(
        protocol.Trigger(
            protocol.FileDescriptor(
                file_name=STAND_IN,
                size=size,
                sender=sender,
                recipients=(protocol.ROUTING_RECIPIENT,),
                senders_file_id=f"id-{name}"[:255],
            ),
            protocol.RoutingInfo(
                infref=infref,
                sender_it_system=sender_it_system,
                sender_authority_cvr=SENDER_CVR,
                transaction_id=uuid.uuid4(),
                sender_timestamp=datetime.now(UTC),
                recipient_authority_cvr=cvr,
            ),
        )
    )
    root = etree.fromstring(built, PARSER)
    root.find("FileDescriptor/FileName").text = name
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder)) if folder.exists() else []


def files_under(directory: Path) -> set[Path]:
    """Every file under `directory` but the simulator's own `.simulator/`."""
    return {
        path.relative_to(directory)
        for path in directory.rglob("*")
        if path.is_file() and ".simulator" not in path.relative_to(directory).parts
    }


def assert_delivered(sim: Simulator, schema: etree.XMLSchema, name: str, data: bytes) -> None:
    """SUCCESS for alfa; beta's IN holds the file under its own name with metadata naming it."""
    receipt_path = sim.data_dir / "alfa" / "IN" / f"{name}.sftpreceipt"
    wait_for(receipt_path, timeout=RECEIPT_TIMEOUT)
    receipt = valid(schema, receipt_path.read_bytes())
    assert receipt.findtext("Receipt/Message") == "SUCCESS", etree.tostring(receipt)
    assert receipt.findtext("SendersFileId") == f"id-{name}"[:255]
    assert name not in listing(sim.data_dir / "alfa" / "OUT")
    assert f"{name}.trigger" not in listing(sim.data_dir / "alfa" / "OUT")

    inbox = sim.data_dir / "beta" / "IN"
    assert (inbox / name).read_bytes() == data
    raw = (inbox / f"{name}.metadata").read_bytes()
    metadata = valid(schema, raw)
    assert etree.QName(metadata).localname == "FileMetadata"
    assert metadata.findtext("FileTransferUUID") == receipt.findtext("FileTransferUUID")
    assert metadata.findtext("FileDescriptor/FileName") == name
    assert metadata.findtext("FileDescriptor/SizeInBytes") == str(len(data))
    assert metadata.findtext("FileDescriptor/Sender") == "alfa"
    assert protocol.parse_metadata(raw).descriptor.file_name == name  # as the portal reads it


def assert_served_to_both(sim: Simulator, people, sent: dict[str, bytes]) -> None:
    """Over SFTP, beta lists and reads each file and its metadata, alfa its receipts."""
    with sftp_client(sim.port, people["beta"], host_key=sim.host_key) as beta:
        expected = {*sent, *(f"{name}.metadata" for name in sent)}
        assert set(beta.listdir("IN")) == expected
        for name, data in sent.items():
            with beta.open(f"IN/{name}", "rb") as handle:
                assert handle.read() == data
            beta.remove(f"IN/{name}")
            beta.remove(f"IN/{name}.metadata")
        assert beta.listdir("IN") == []
    with sftp_client(sim.port, people["alfa"], host_key=sim.host_key) as alfa:
        assert set(alfa.listdir("IN")) == {f"{name}.sftpreceipt" for name in sent}
        assert alfa.listdir("OUT") == []


# --- stock clients ---------------------------------------------------------------------------


def test_paramiko_put_at_its_defaults(platform, people, schema, tmp_path):
    alfa = people["alfa"]
    sent = {}
    with sftp_client(platform.port, alfa, host_key=platform.host_key) as client:
        for name in NAMES:
            data = os.urandom(64 * 1024 + 3)
            trigger = trigger_for(name, len(data), alfa.username, alfa.it_system)
            assert etree.QName(valid(schema, trigger)).localname == "Trigger"
            (tmp_path / name).write_bytes(data)
            (tmp_path / f"{name}.trigger").write_bytes(trigger)
            # confirm=True, the default: each put stats the file by name after closing it.
            assert client.put(str(tmp_path / name), f"OUT/{name}").st_size == len(data)
            uploaded = client.put(str(tmp_path / f"{name}.trigger"), f"OUT/{name}.trigger")
            assert uploaded.st_size == len(trigger)
            sent[name] = data
    for name, data in sent.items():
        assert_delivered(platform, schema, name, data)
    assert_served_to_both(platform, people, sent)


def test_openssh_sftp_batch(platform, people, schema, tmp_path):
    alfa, beta = people["alfa"], people["beta"]
    sent = {}
    for name in NAMES:
        data = os.urandom(32 * 1024 + 1)
        trigger = trigger_for(name, len(data), alfa.username, alfa.it_system)
        valid(schema, trigger)
        (tmp_path / name).write_bytes(data)
        (tmp_path / f"{name}.trigger").write_bytes(trigger)
        sent[name] = data
    batch = "cd OUT\n" + "".join(f'put "{name}"\nput "{name}.trigger"\n' for name in NAMES)
    uploaded = openssh_sftp(platform.port, alfa, batch, tmp_path)
    assert uploaded.returncode == 0, uploaded.stderr
    for name, data in sent.items():
        assert_delivered(platform, schema, name, data)

    # The receiver's stock client lists and fetches them under their own names too.
    fetched_dir = tmp_path / "beta"
    fetched_dir.mkdir()
    batch = "ls -1 IN\n" + "".join(
        f'get "IN/{name}" "{name}"\nget "IN/{name}.metadata" "{name}.metadata"\n' for name in NAMES
    )
    fetched = openssh_sftp(platform.port, beta, batch, fetched_dir)
    assert fetched.returncode == 0, fetched.stderr
    for name, data in sent.items():
        assert name in fetched.stdout
        assert (fetched_dir / name).read_bytes() == data
        metadata = valid(schema, (fetched_dir / f"{name}.metadata").read_bytes())
        assert metadata.findtext("FileDescriptor/FileName") == name


# --- routing: more names, and where a name ends ----------------------------------------------

ROUTED = [
    ".leading dot.csv",  # served, as it always was: nothing of the simulator's is in IN or OUT
    "semi;colon & 'quotes' 100%.csv",
    '<angle> "brackets".csv',
    "דוח.csv",
    " spaces around ",
    "Ærø rapport",
    "æ" * 119 + "a.csv",  # 243 bytes: its receipt, `<name>.sftpreceipt`, has the 255 allowed
]


@pytest.mark.parametrize("name", ROUTED, ids=short_id)
def test_any_name_the_reading_rule_accepts_is_routed(sim, people, schema, name):
    assert protocol.file_name_problem(name) is None
    alfa = people["alfa"]
    data = f"{name}\r\n".encode()
    with sftp_client(sim.port, alfa, host_key=sim.host_key) as client:
        with client.open(f"OUT/{name}", "wb") as handle:
            handle.write(data)
        assert client.listdir("OUT") == [name]
        with client.open(f"OUT/{name}.trigger", "wb") as handle:
            handle.write(trigger_for(name, len(data), alfa.username, alfa.it_system))
    assert_delivered(sim, schema, name, data)
    assert_served_to_both(sim, people, {name: data})


def test_a_trigger_is_refused_when_its_receipt_name_would_not_fit(sim, people):
    """`<name>.sftpreceipt` is 12 bytes longer than `<name>`: a data file of 244 bytes may be
    uploaded, but its trigger is refused at once, since the router could never answer it."""
    alfa = people["alfa"]
    name = "æ" * 120 + ".csv"
    assert len(name.encode()) == 244 and protocol.file_name_problem(name) is None
    with sftp_client(sim.port, alfa, host_key=sim.host_key) as client:
        with client.open(f"OUT/{name}", "wb") as handle:
            handle.write(b"x")
        with client.open("OUT/upload.tmp", "wb") as handle:
            handle.write(trigger_for(name, 1, alfa.username, alfa.it_system))
        with pytest.raises(PermissionError):
            client.open(f"OUT/{name}.trigger", "wb")
        with pytest.raises(PermissionError):
            client.posix_rename("OUT/upload.tmp", f"OUT/{name}.trigger")
        assert sorted(client.listdir("OUT")) == sorted([name, "upload.tmp"])
    assert sim.router.wait_idle(5)
    assert listing(sim.data_dir / "alfa" / "IN") == []


# --- what stays refused ----------------------------------------------------------------------


def expected_refusal(name: str) -> type[OSError]:
    # "sub/x.csv" is a path into a sub-folder, which does not exist; the rest is refused.
    return FileNotFoundError if "/" in name else PermissionError


@pytest.mark.parametrize("name", UNSAFE, ids=short_id)
def test_unsafe_names_are_refused_and_never_written(sim, people, tmp_path, name):
    assert protocol.file_name_problem(name) is not None
    refused = expected_refusal(name)
    with sftp_client(sim.port, people["alfa"], host_key=sim.host_key) as client:
        with client.open("OUT/good.csv", "wb") as handle:
            handle.write(b"good")
        before = files_under(sim.data_dir)
        for attempt in (
            lambda: client.open(f"OUT/{name}", "wb"),
            lambda: client.open(f"OUT/{name}", "ab"),
            lambda: client.putfo(io.BytesIO(b"x"), f"OUT/{name}", confirm=False),
            lambda: client.open(f"OUT/{name}.trigger", "wb"),
            lambda: client.rename("OUT/good.csv", f"OUT/{name}"),
            lambda: client.posix_rename("OUT/good.csv", f"OUT/{name}.trigger"),
            lambda: client.open(f"IN/{name}", "rb"),
            lambda: client.stat(f"OUT/{name}"),
            lambda: client.remove(f"OUT/{name}"),
        ):
            with pytest.raises(refused):
                attempt()
        assert client.listdir("OUT") == ["good.csv"]
    assert sim.router.wait_idle(5)
    assert files_under(sim.data_dir) == before == {Path("alfa/OUT/good.csv")}
    assert not list(tmp_path.rglob("escape.csv"))


def test_unsafe_names_on_the_disk_are_neither_listed_nor_served(sim, people):
    inbox, outbox = sim.data_dir / "alfa" / "IN", sim.data_dir / "alfa" / "OUT"
    inbox.mkdir(parents=True)
    outbox.mkdir(parents=True)
    for folder in (inbox, outbox):
        for name in ON_DISK:
            (folder / name).write_bytes(b"hidden")
        (folder / "Udtræk Aarhus 2024.csv").write_bytes(b"shown")
        with open(os.fsencode(folder) + b"/latin1-\xe6.csv", "wb") as handle:  # not UTF-8
            handle.write(b"hidden")
    with sftp_client(sim.port, people["alfa"], host_key=sim.host_key) as client:
        for folder in ("IN", "OUT"):
            assert client.listdir(folder) == ["Udtræk Aarhus 2024.csv"]
            for name in ON_DISK:
                with pytest.raises(PermissionError):
                    client.open(f"{folder}/{name}", "rb")
                with pytest.raises(PermissionError):
                    client.stat(f"{folder}/{name}")
        with client.open("IN/Udtræk Aarhus 2024.csv", "rb") as handle:
            assert handle.read() == b"shown"


@pytest.mark.parametrize(
    ("file_name", "problem"),
    [
        ("../escape.csv", "holds a path separator"),
        ("\ufb01le.csv", "is a look-alike"),
        ("line\nbreak.csv", "holds a control character"),
        ("rapport\u202evsc.exe", "holds an invisible"),
        ("æ" * 128, "is longer than 255 bytes"),
    ],
    ids=short_id,
)
def test_a_trigger_naming_an_unsafe_file_is_refused_with_100(
    sim, people, schema, tmp_path, file_name, problem
):
    """The trigger's own name is fine; the FileName inside it is not: 100, nothing delivered."""
    alfa = people["alfa"]
    with sftp_client(sim.port, alfa, host_key=sim.host_key) as client:
        with client.open("OUT/good.csv", "wb") as handle:
            handle.write(b"x")
        with client.open("OUT/good.csv.trigger", "wb") as handle:
            handle.write(trigger_for(file_name, 1, alfa.username, alfa.it_system))
    receipt_path = sim.data_dir / "alfa" / "IN" / "good.csv.sftpreceipt"
    wait_for(receipt_path)
    assert sim.router.wait_idle(5)
    raw = receipt_path.read_bytes()
    valid(schema, raw)
    receipt = protocol.parse_receipt(raw)
    assert not receipt.success
    [error] = receipt.errors
    assert error.code == ErrorCode.INVALID_TRIGGER
    assert f"FileName {problem}" in error.description
    assert files_under(sim.data_dir) == {Path("alfa/IN/good.csv.sftpreceipt")}
    assert not list(tmp_path.rglob("escape.csv"))


# --- the portal's fetch ----------------------------------------------------------------------


def test_the_portals_fetch_stores_such_names_from_the_simulator(
    tmp_path, staff_a, operator, system_a, system_b, aarhus
):
    """Sent by a stock client, routed by the simulator, fetched by `fetch_inbox`: received under
    their own names (stored here under names of the portal's), nothing quarantined."""
    sender = make_user("alfa_omsorg", tmp_path / "keys", it_system=system_a.uuid)
    with engine.simulator(tmp_path, delay=PLATFORM_DELAY) as sim:
        # The sender's account in the portal holds the stock client's key, so the fetch holds
        # the metadata's Sender to it.
        ready = engine.ready_route(
            staff=staff_a,
            operator=operator,
            sender=system_a,
            receiver=system_b,
            municipalities=[aarhus],
            sim=sim,
            usernames=(sender.username, engine.RECEIVER),
            sender_public_key=sender.public_line,
        )
        the_route, receiver = ready.route, ready.receiver
        sent = {}
        with sftp_client(sim.port, sender, host_key=sim.host_key) as client:
            for name in NAMES:
                data = f"{name}\r\n751;0101011234;Åse\r\n".encode()
                trigger = trigger_for(
                    name,
                    len(data),
                    sender.username,
                    system_a.uuid,
                    infref=the_route.infref.name,
                    cvr=aarhus.cvr,
                )
                client.putfo(io.BytesIO(data), f"OUT/{name}")
                client.putfo(io.BytesIO(trigger), f"OUT/{name}.trigger")
                sent[name] = data
        for name in NAMES:
            wait_for(sim.data_dir / sender.username / "IN" / f"{name}.sftpreceipt", RECEIPT_TIMEOUT)
            assert (sim.data_dir / "beta_journal" / "IN" / name).read_bytes() == sent[name]

        result = fetch_inbox(receiver.pk)
        reasons = dict(ReceivedFile.objects.values_list("remote_name", "reason"))
        assert (result.received, result.quarantined) == (len(NAMES), 0), reasons
        for name, data in sent.items():
            received = ReceivedFile.objects.get(remote_name=name)
            assert received.state == ReceivedFile.State.RECEIVED
            assert (received.route, received.sender_username) == (the_route, sender.username)
            assert Path(received.stored_path).read_bytes() == data
            assert protocol.is_file_name(Path(received.stored_path).name)
        assert listing(sim.data_dir / "beta_journal" / "IN") == []  # fetched, then removed
