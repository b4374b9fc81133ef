"""Stock SFTP clients against the simulator run as the platform (issue 17, point 2).

The simulator runs as `manage.py serviceplatform` with its default delay before routing, the way
an operator runs it. Each client sends a data file and its trigger the way it does by default:
OpenSSH's `sftp` in batch mode (`put`, `put -p`), paramiko's `put()`/`putfo()` (which stat the
file after closing it), a client that set-stats the times by name after closing, and the portal's
own `SftpSession`. Each upload's receipt is SUCCESS and the file reaches the receiver's IN once,
with its metadata. Triggers, metadata and receipts are checked against KOMBIT's XSD with lxml
alone, not through the portal's reader.
"""

import io
import os
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import paramiko
import pytest
from lxml import etree

from tests.support.simulator_fixtures import (
    ROOT,
    SimulatorProcess,
    TestUser,
    make_user,
    openssh_sftp,
    route,
    sftp_client,
    simulator_process,
    wait_for,
    write_registry,
)
from transfers import protocol
from transfers.sftp import SftpSession
from transfers.simulator.router import PLATFORM_DELAY

pytestmark = pytest.mark.system

INFREF = "FagsystemdefineredeDataRefGDPR1203_1"
AARHUS = "55133018"
SENDER_CVR = "39123452"
SCHEMA = ROOT / "transfers" / "contract" / "SFTPTypes.xsd"
RECEIPT_TIMEOUT = 20.0  # the delay, plus a loaded machine
# The simulator's routing lines are how "delivered once" is counted: INFO, one line each.
LOGGING = {"LOG_LEVEL": "INFO", "LOG_FORMAT": "text"}
A_PAST_TIME = datetime(2021, 3, 1, 12, 0, tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class Platform:
    process: SimulatorProcess
    data_dir: Path
    host_key: paramiko.PKey
    sender: TestUser
    receiver: TestUser

    @property
    def port(self) -> int:
        return self.process.port

    def pinned_host_key(self) -> str:
        return f"{self.host_key.get_name()} {self.host_key.get_base64()}"


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes
    trigger: bytes

    def write_to(self, folder: Path) -> Path:
        """The data file and the trigger as local files, as a client sends them."""
        (folder / self.name).write_bytes(self.data)
        (folder / f"{self.name}.trigger").write_bytes(self.trigger)
        return folder / self.name


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(SCHEMA), parser))


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Platform:
    """One simulator process for the module, at the command's defaults; each test its own name."""
    work = tmp_path_factory.mktemp("platform")
    sender = make_user("alfa", work / "keys")
    receiver = make_user("beta", work / "keys", kind="rsa")
    registry = write_registry(
        work / "registry.json",
        users=[sender, receiver],
        infrefs={INFREF: True},
        routes=[route(INFREF, sender, receiver, AARHUS)],
    )
    data_dir = work / "serviceplatform"
    with simulator_process(data_dir, registry, env=LOGGING) as process:
        host_key = paramiko.PKey.from_path(data_dir / ".simulator" / "ssh_host_ed25519_key")
        yield Platform(process, data_dir, host_key, sender, receiver)


def valid(schema: etree.XMLSchema, data: bytes) -> etree._Element:
    """The document's root, after lxml has validated it against SFTPTypes.xsd."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(data, parser)
    assert schema.validate(root), (schema.error_log, data)
    return root


def upload_for(client: str, schema: etree.XMLSchema, platform: Platform) -> Upload:
    """A route-based send from alfa to Aarhus under a name of its own, its trigger XSD-valid."""
    name = f"alfa_{client}_{uuid.uuid4().hex}.csv"
    data = os.urandom(256 * 1024 + 7)
    trigger = protocol.build_trigger(
        protocol.Trigger(
            protocol.FileDescriptor(
                file_name=name,
                size=len(data),
                sender=platform.sender.username,
                recipients=(protocol.ROUTING_RECIPIENT,),
                senders_file_id=f"id-{name}",
            ),
            protocol.RoutingInfo(
                infref=INFREF,
                sender_it_system=platform.sender.it_system,
                sender_authority_cvr=SENDER_CVR,
                transaction_id=uuid.uuid4(),
                sender_timestamp=datetime.now(UTC),
                recipient_authority_cvr=AARHUS,
            ),
        )
    )
    root = valid(schema, trigger)
    assert etree.QName(root).localname == "Trigger"
    return Upload(name, data, trigger)


def log_lines(platform: Platform, text: str) -> list[str]:
    return [line for line in list(platform.process.output) if text in line]


def assert_delivered_once(platform: Platform, schema: etree.XMLSchema, upload: Upload) -> str:
    """SUCCESS for the sender, the file and its metadata in the receiver's IN, routed once;
    returns the FileTransferUUID."""
    name = upload.name
    receipt_path = platform.data_dir / "alfa" / "IN" / f"{name}.sftpreceipt"
    wait_for(receipt_path, timeout=RECEIPT_TIMEOUT)
    routed = f"Routed {name} from alfa to beta"
    wait_for(lambda: log_lines(platform, routed), timeout=5)

    out = platform.data_dir / "alfa" / "OUT"
    assert not (out / name).exists() and not (out / f"{name}.trigger").exists()
    receipt = valid(schema, receipt_path.read_bytes())  # read after OUT is empty: the last word
    assert etree.QName(receipt).localname == "TechnicalReceipt"
    assert receipt.findtext("Receipt/Message") == "SUCCESS", etree.tostring(receipt)
    assert receipt.findtext("SendersFileId") == f"id-{name}"
    transfer_uuid = receipt.findtext("FileTransferUUID")

    inbox = platform.data_dir / "beta" / "IN"
    assert (inbox / name).read_bytes() == upload.data
    metadata = valid(schema, (inbox / f"{name}.metadata").read_bytes())
    assert metadata.findtext("FileTransferUUID") == transfer_uuid
    assert metadata.findtext("FileDescriptor/FileName") == name
    assert metadata.findtext("FileDescriptor/SizeInBytes") == str(len(upload.data))
    assert metadata.findtext("FileDescriptor/Sender") == "alfa"
    assert len(log_lines(platform, routed)) == 1
    assert log_lines(platform, name) == log_lines(platform, routed)  # nothing refused, no retry
    return transfer_uuid


def test_the_command_waits_before_routing_by_default(platform):
    assert 0.5 <= PLATFORM_DELAY <= 5
    said = re.compile(rf"delay\s+{re.escape(str(PLATFORM_DELAY))} s before routing")
    # The fixture is handed over at the fingerprint line; the delay is printed a little later.
    wait_for(lambda: any(said.search(line) for line in list(platform.process.output)))


@pytest.mark.parametrize("put", ["put", "put -p"])
def test_openssh_sftp_batch(platform, schema, tmp_path, put):
    upload = upload_for("openssh", schema, platform)
    data_file = upload.write_to(tmp_path)
    for path in (data_file, tmp_path / f"{upload.name}.trigger"):
        os.utime(path, (A_PAST_TIME, A_PAST_TIME))  # what `put -p` sends along
    batch = f"cd OUT\n{put} {upload.name}\n{put} {upload.name}.trigger\n"
    sent = openssh_sftp(platform.port, platform.sender, batch, tmp_path)
    assert sent.returncode == 0, sent.stderr
    assert_delivered_once(platform, schema, upload)


def test_paramiko_put_with_its_defaults(platform, schema, tmp_path):
    upload = upload_for("paramiko", schema, platform)
    data_file = upload.write_to(tmp_path)
    with sftp_client(platform.port, platform.sender, host_key=platform.host_key) as client:
        # confirm=True: each stats the file by name after closing it.
        sent = client.put(str(data_file), f"OUT/{upload.name}")
        triggered = client.putfo(io.BytesIO(upload.trigger), f"OUT/{upload.name}.trigger")
    assert sent.st_size == len(upload.data)
    assert triggered.st_size == len(upload.trigger)
    assert_delivered_once(platform, schema, upload)


def test_a_client_that_sets_the_times_by_name_after_closing(platform, schema):
    upload = upload_for("setstat", schema, platform)
    paths = (f"OUT/{upload.name}", f"OUT/{upload.name}.trigger")
    with sftp_client(platform.port, platform.sender, host_key=platform.host_key) as client:
        for path, content in zip(paths, (upload.data, upload.trigger), strict=True):
            with client.open(path, "wb") as handle:
                handle.write(content)
        # As clients that preserve times do: after both are closed, by name, then read back.
        for path in paths:
            client.utime(path, (A_PAST_TIME, A_PAST_TIME))
            client.chmod(path, 0o640)
            assert client.stat(path).st_mtime == int(A_PAST_TIME)
    assert_delivered_once(platform, schema, upload)

    # The receiver's set-stat is answered too, but IN's times are the clean-up's, not its own.
    delivered = f"IN/{upload.name}"
    with sftp_client(platform.port, platform.receiver, host_key=platform.host_key) as client:
        before = client.stat(delivered).st_mtime
        client.utime(delivered, (A_PAST_TIME, A_PAST_TIME))
        assert client.stat(delivered).st_mtime == before != int(A_PAST_TIME)


def session_of(platform: Platform, user: TestUser) -> SftpSession:
    return SftpSession(
        host="127.0.0.1",
        port=platform.port,
        username=user.username,
        private_key=user.key_path.read_bytes(),
        host_key=platform.pinned_host_key(),
        timeout=10,
    )


def test_the_portals_own_session(platform, schema, tmp_path):
    upload = upload_for("portal", schema, platform)
    data_file = upload.write_to(tmp_path)
    receipt_name = f"{upload.name}.sftpreceipt"
    with session_of(platform, platform.sender) as sender:
        sender.put_file(data_file, f"OUT/{upload.name}")
        sender.put_bytes(upload.trigger, f"OUT/{upload.name}.trigger")
        wait_for(lambda: receipt_name in sender.listdir("IN"), timeout=RECEIPT_TIMEOUT)
        transfer_uuid = assert_delivered_once(platform, schema, upload)
        sender.get_file(f"IN/{receipt_name}", tmp_path / "receipt.xml")
        sender.remove(f"IN/{receipt_name}")
    receipt = valid(schema, (tmp_path / "receipt.xml").read_bytes())
    assert receipt.findtext("FileTransferUUID") == transfer_uuid

    with session_of(platform, platform.receiver) as receiver:
        assert {upload.name, f"{upload.name}.metadata"} <= set(receiver.listdir("IN"))
        receiver.get_file(f"IN/{upload.name}", tmp_path / "fetched.csv")
        receiver.get_file(f"IN/{upload.name}.metadata", tmp_path / "fetched.metadata")
        receiver.remove(f"IN/{upload.name}")
        receiver.remove(f"IN/{upload.name}.metadata")
    assert (tmp_path / "fetched.csv").read_bytes() == upload.data
    metadata = valid(schema, (tmp_path / "fetched.metadata").read_bytes())
    assert metadata.findtext("FileTransferUUID") == transfer_uuid


def test_a_full_inbox_is_listed_whole_by_stock_clients_in_a_few_replies(platform, tmp_path):
    """About a hundred names a READDIR reply, as OpenSSH's sftp-server sends: every name
    reaches OpenSSH's `sftp` and paramiko, and 250 of them take three replies, not sixteen."""
    inbox = platform.data_dir / "beta" / "IN"
    inbox.mkdir(parents=True, exist_ok=True)
    names = {f"beta_listing_{number:03}.csv" for number in range(250)}
    for name in names:
        (inbox / name).write_bytes(b"x")
    try:
        listed = openssh_sftp(platform.port, platform.receiver, "ls -1 IN\n", tmp_path)
        assert listed.returncode == 0, listed.stderr
        assert names <= {line.strip().removeprefix("IN/") for line in listed.stdout.split()}
        with sftp_client(platform.port, platform.receiver, host_key=platform.host_key) as client:
            assert names <= set(client.listdir("IN"))
            _kind, reply = client._request(paramiko.sftp.CMD_OPENDIR, "IN")
            handle, replies = reply.get_binary(), 0
            try:
                while True:
                    kind, reply = client._request(paramiko.sftp.CMD_READDIR, handle)
                    if kind != paramiko.sftp.CMD_NAME:
                        break
                    replies += 1
            except EOFError:
                pass
            client._request(paramiko.sftp.CMD_CLOSE, handle)
        assert replies == 3
    finally:
        for name in names:
            (inbox / name).unlink(missing_ok=True)
