"""Strict in what we write, tolerant in what we read: metadata and receipts in every form the
contract allows are read; only what transfers.protocol.READING_RULES refuses is not.

Both directions, first on the reader alone, then through a real SFTP fetch: each accepted form is
put in a receiving account's IN/ and fetched, then must be received, stored under a safe name of
the portal's, shown on the received list and the municipal review, and downloaded under its own
name with its own bytes. Each refused form is quarantined, its bytes kept on the server, and
nothing is written outside the portal's folders. Forms whose file name is outside
`[A-Za-z0-9._-]` are served by OpenSSH's sshd, which lists whatever names its file system holds,
as in tests/test_hostile_names.py; the simulator serves the names the reader accepts and refuses
the rest itself (tests/test_simulator_names.py, where the portal fetches such names from it).
"""

import dataclasses
import hashlib
import io
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote
from xml.sax.saxutils import escape as xml_escape

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils.html import escape as html_escape
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.support import engine
from tests.support.clients import english
from tests.support.sshd import running_sshd
from transfers import protocol, sessions, tasks
from transfers.downloads import content_disposition
from transfers.fetch import fetch_inbox
from transfers.models import ReceivedFile, Transfer
from transfers.protocol import NAMESPACE, ProtocolError
from transfers.queueing import queue_send

SENDER_SYSTEM = uuid.UUID("6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b")
RECEIVER_SYSTEM = uuid.UUID("0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d")
CVR = "55133018"
INFREF = "FagsystemdefineredeDataRefGDPR4242_1"
# Character references keep CR, LF and tab as they are; the parser would normalise them.
_XML_TEXT = {"\r": "&#13;", "\n": "&#10;", "\t": "&#9;"}


@dataclasses.dataclass(frozen=True)
class Form:
    """One way of writing a file's metadata."""

    name: str
    root: str = "FileMetadata"
    prefix: str = "sp"  # "" for the contract's namespace as the default one
    id_case: str | None = "lower"  # "upper", or None: no FileTransferUUID (a Trigger root)
    sender: str = "alfa_omsorg"
    file_transfer_uuid: uuid.UUID = dataclasses.field(default_factory=uuid.uuid4)
    infref: str = INFREF

    @property
    def data(self) -> bytes:
        return f"{self.name}\r\n751;0101011234;Åse\r\n".encode() * 3


def metadata_xml(
    form: Form,
    size: int | None = None,
    *,
    sender_system: uuid.UUID = SENDER_SYSTEM,
    receiver_system: uuid.UUID = RECEIVER_SYSTEM,
    file_transfer_uuid: str | None = None,
    route_parameters: str = "",
) -> bytes:
    """Metadata as another system may write it: built from text, not by transfers.protocol."""
    if file_transfer_uuid is None and form.id_case is not None:
        text = str(form.file_transfer_uuid)
        file_transfer_uuid = text.upper() if form.id_case == "upper" else text
    # Below the root the elements carry no namespace: with a default one, they say so.
    plain = "" if form.prefix else ' xmlns=""'
    root = f"{form.prefix}:{form.root}" if form.prefix else form.root
    declaration = f"xmlns:{form.prefix}" if form.prefix else "xmlns"
    uuid_element = (
        ""
        if file_transfer_uuid is None
        else f"<FileTransferUUID{plain}>{xml_escape(file_transfer_uuid)}</FileTransferUUID>"
    )
    size = len(form.data) if size is None else size
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<{root} {declaration}="{NAMESPACE}">
  {uuid_element}
  <FileDescriptor{plain}>
    <FileName>{xml_escape(form.name, _XML_TEXT)}</FileName>
    <SizeInBytes>{size}</SizeInBytes>
    <Sender>{xml_escape(form.sender, _XML_TEXT)}</Sender>
    <Recipients>ROUTING_V1_0_0</Recipients>
  </FileDescriptor>
  <FileContentDescriptor{plain}>
    <SFTPDynamicRoutingInfo>
      <InfRef>{xml_escape(form.infref, _XML_TEXT)}</InfRef>
      <SenderIt-system>{sender_system}</SenderIt-system>
      <SenderAuthority>urn:oio:cvr-nr:{CVR}</SenderAuthority>
      <TransactionId>{uuid.uuid4()}</TransactionId>
      <SenderTimestamp>2026-12-06T12:00:00.250+01:00</SenderTimestamp>
      <RecipientIt-system>{receiver_system}</RecipientIt-system>
      <RecipientAuthority>urn:oio:cvr-nr:{CVR}</RecipientAuthority>{route_parameters}
    </SFTPDynamicRoutingInfo>
  </FileContentDescriptor>
</{root}>
""".encode()


# --- the reader alone: what it reads -----------------------------------------------------------

DANISH = Form("Udtræk Aarhus 2024.csv")
NAMES_READ = [
    "Udtræk Aarhus 2024.csv",
    "data(1)+v2.csv",
    "évil.csv",
    "sp ace.csv",
    "semi;colon.csv",
    'rapport "endelig" 100%.csv',
    " leading and trailing space ",
    "Ærø rapport",
    "C:drive:colon.csv",
    "דוח.csv",  # a right-to-left script is text, not an override
    "a" * 255,
    "æ" * 127,  # 254 bytes in UTF-8
]


@pytest.mark.parametrize("name", NAMES_READ)
def test_a_name_the_contract_allows_is_read(name):
    metadata = protocol.parse_metadata(metadata_xml(dataclasses.replace(DANISH, name=name)))
    assert metadata.descriptor.file_name == name
    assert protocol.file_name_problem(name) is None


@pytest.mark.parametrize(
    "form",
    [
        Form("x.csv"),
        Form("x.csv", root="Trigger"),
        Form("x.csv", root="Trigger", id_case=None),
        Form("x.csv", prefix="kombit"),
        Form("x.csv", prefix="ns0", root="Trigger"),
        Form("x.csv", prefix=""),
        Form("x.csv", prefix="", root="Trigger", id_case="upper"),
        Form("x.csv", id_case="upper"),
    ],
    ids=lambda form: f"{form.root}-{form.prefix or 'default'}-{form.id_case}",
)
def test_both_roots_any_prefix_and_either_case_are_read(form):
    metadata = protocol.parse_metadata(metadata_xml(form))
    expected = None if form.id_case is None else form.file_transfer_uuid
    assert metadata.file_transfer_uuid == expected
    assert metadata.descriptor.file_name == "x.csv"
    assert metadata.routing.sender_it_system == SENDER_SYSTEM
    assert metadata.routing.sender_timestamp.microsecond == 250000


def test_the_id_is_read_with_whitespace_around_it_and_kept_lower_case():
    text = f"\n  {str(DANISH.file_transfer_uuid).upper()}\t\n"
    metadata = protocol.parse_metadata(metadata_xml(DANISH, file_transfer_uuid=text))
    assert str(metadata.file_transfer_uuid) == str(DANISH.file_transfer_uuid).lower()


@pytest.mark.parametrize(
    "sender",
    ["Alfa Omsorg <ÆØÅ> & \"Co\"; 'x'", "line\nbreak", "\u202egpj.exe", "", "x" * 255, "ﬁ"],
)
def test_a_sender_is_any_string_the_contract_allows(sender):
    metadata = protocol.parse_metadata(metadata_xml(dataclasses.replace(DANISH, sender=sender)))
    assert metadata.descriptor.sender == sender


def test_an_infref_is_any_string_and_an_unreadable_route_date_is_no_date():
    odd = dataclasses.replace(DANISH, infref="Ref <med> mellemrum & æ")
    assert protocol.parse_metadata(metadata_xml(odd)).routing.infref == odd.infref
    parameters = (
        "<RouteParameterList><RouteParameter><RouteSelectionValueDate>2026-13-01"
        "</RouteSelectionValueDate></RouteParameter></RouteParameterList>"
    )
    data = metadata_xml(DANISH, route_parameters=parameters)
    protocol.validate(data)  # the XSD skips a route parameter's content
    assert protocol.parse_metadata(data).routing.route_date is None
    good = parameters.replace("2026-13-01", "2026-12-01")
    assert protocol.parse_metadata(metadata_xml(DANISH, route_parameters=good)).routing.route_date


@pytest.mark.parametrize("case", [str.lower, str.upper])
def test_a_receipt_is_read_with_its_id_in_either_case(case):
    platform_id = uuid.uuid4()
    data = protocol.build_receipt(protocol.Receipt(platform_id, "sid", True))
    data = data.replace(str(platform_id).encode(), case(str(platform_id)).encode())
    assert protocol.parse_receipt(data).file_transfer_uuid == platform_id


# --- the reader alone: what it refuses ---------------------------------------------------------

# (name, the FileName rule's problem): every FileName rule of the table refuses one at least.
NAMES_REFUSED = [
    ("", "is empty, '.' or '..'"),
    (".", "is empty, '.' or '..'"),
    ("..", "is empty, '.' or '..'"),
    ("../../escape.csv", "holds a path separator (/ or \\)"),
    ("IN/x.csv", "holds a path separator (/ or \\)"),
    ("C:\\temp\\x.csv", "holds a path separator (/ or \\)"),
    ("line\nbreak.csv", "holds a control character (C0, DEL or C1)"),
    ("cr\r.csv", "holds a control character (C0, DEL or C1)"),
    ("tab\t.csv", "holds a control character (C0, DEL or C1)"),
    ("del\x7f.csv", "holds a control character (C0, DEL or C1)"),
    ("c1\x85.csv", "holds a control character (C0, DEL or C1)"),
    ("\u202egpj.exe", "holds an invisible format, direction or line-separator character"),
    ("x\u2066y.csv", "holds an invisible format, direction or line-separator character"),
    ("da\u200bta.csv", "holds an invisible format, direction or line-separator character"),
    ("soft\u00adhyphen.csv", "holds an invisible format, direction or line-separator character"),
    ("a\u2028b.csv", "holds an invisible format, direction or line-separator character"),
    ("\ufb01le.csv", "is a look-alike of another name (Unicode NFKC changes it)"),
    ("\uff46ile.csv", "is a look-alike of another name (Unicode NFKC changes it)"),
    ("e\u0301vil.csv", "is a look-alike of another name (Unicode NFKC changes it)"),
    ("no\u00a0break.csv", "is a look-alike of another name (Unicode NFKC changes it)"),
    ("æ" * 128, "is longer than 255 bytes in UTF-8"),
]


@pytest.mark.parametrize(("name", "problem"), NAMES_REFUSED)
def test_a_name_unsafe_as_one_path_component_is_refused(name, problem):
    assert protocol.file_name_problem(name) == problem
    with pytest.raises(ProtocolError, match=re.escape(f"FileName {problem}")):
        protocol.parse_metadata(metadata_xml(dataclasses.replace(DANISH, name=name)))


def test_every_rule_of_the_table_says_why_and_is_exercised():
    for rule in protocol.READING_RULES:
        assert rule.why.startswith(("contract:", "security:")), rule
    file_name_rules = {r.problem for r in protocol.READING_RULES if r.element == "FileName"}
    assert file_name_rules == {problem for _name, problem in NAMES_REFUSED}
    assert all(protocol.file_name_problem(name) is None for name in NAMES_READ)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"file_transfer_uuid": "not-a-uuid"}, "FileTransferUUID is not a UUID"),
        ({"file_transfer_uuid": "{" + str(uuid.uuid4()) + "}"}, "FileTransferUUID is not a UUID"),
        ({"sender_system": str(SENDER_SYSTEM).upper()}, "SenderIt-system is a UUID in upper case"),
    ],
)
def test_what_the_contract_or_the_table_refuses_is_refused(change, message):
    with pytest.raises(ProtocolError, match=re.escape(message)):
        protocol.parse_metadata(metadata_xml(DANISH, **change))
    with pytest.raises(ProtocolError, match="Sender is longer than 255 characters"):
        protocol.parse_metadata(metadata_xml(dataclasses.replace(DANISH, sender="x" * 256)))


def test_a_trigger_root_holds_one_id_and_only_first_and_a_metadata_root_needs_it():
    data = metadata_xml(dataclasses.replace(DANISH, root="Trigger"))
    element = re.search(rb"<FileTransferUUID>.*</FileTransferUUID>", data).group()
    with pytest.raises(ProtocolError, match="more than one FileTransferUUID"):
        protocol.parse_metadata(data.replace(element, element * 2))
    moved = data.replace(element, b"").replace(b"</FileDescriptor>", b"</FileDescriptor>" + element)
    with pytest.raises(ProtocolError, match="out of order"):
        protocol.parse_metadata(moved)
    with pytest.raises(ProtocolError, match="FileMetadata has no FileTransferUUID"):
        protocol.parse_metadata(metadata_xml(dataclasses.replace(DANISH, id_case=None)))
    bad_receipt = protocol.build_receipt(protocol.Receipt(uuid.uuid4(), None, True))
    bad_receipt = re.sub(rb"<FileTransferUUID>[^<]*<", b"<FileTransferUUID>x<", bad_receipt)
    with pytest.raises(ProtocolError, match="FileTransferUUID is not a UUID"):
        protocol.parse_receipt(bad_receipt)


def test_the_portal_writes_conservative_names_and_reads_any_the_rules_accept():
    """A name that metadata may carry is refused in a trigger the portal writes, and read in a
    trigger the platform (the simulator) reads and echoes into metadata."""
    descriptor = protocol.FileDescriptor(
        file_name=DANISH.name, size=1, sender="alfa", recipients=(protocol.ROUTING_RECIPIENT,)
    )
    routing = protocol.parse_metadata(metadata_xml(DANISH)).routing
    with pytest.raises(ProtocolError, match="file_name must be"):
        protocol.build_trigger(protocol.Trigger(descriptor, routing))
    echoed = protocol.build_metadata(protocol.Metadata(uuid.uuid4(), descriptor, routing))
    assert protocol.parse_metadata(echoed).descriptor.file_name == DANISH.name
    trigger = metadata_xml(dataclasses.replace(DANISH, root="Trigger", id_case=None))
    assert protocol.parse_trigger(trigger).descriptor.file_name == DANISH.name
    unsafe = dataclasses.replace(descriptor, file_name="a/b.csv")
    with pytest.raises(ProtocolError, match="file_name holds a path separator"):
        protocol.build_metadata(protocol.Metadata(uuid.uuid4(), unsafe, routing))


# Characters XML 1.0 can carry: no C0 control but tab, LF and CR, no surrogate, no U+FFFE/U+FFFF.
XML_CHARACTERS = st.characters(
    codec="utf-8",
    exclude_categories=["Cs"],
    exclude_characters=[chr(c) for c in range(0x20) if chr(c) not in "\t\n\r"]
    + ["\ufffe", "\uffff"],
)


@hypothesis_settings(max_examples=300, deadline=None, database=None)
@given(st.text(XML_CHARACTERS, max_size=40))
def test_a_name_is_read_exactly_when_no_rule_refuses_it(name):
    problem = protocol.file_name_problem(name)
    try:
        metadata = protocol.parse_metadata(metadata_xml(dataclasses.replace(DANISH, name=name)))
    except ProtocolError as error:
        assert problem is not None and f"FileName {problem}" in str(error)
    else:
        assert problem is None and metadata.descriptor.file_name == name


@hypothesis_settings(max_examples=200, deadline=None, database=None)
@given(st.text("abcxyzæøåÆØÅéü 0123456789()[]{}+-_.,;:'&=!#$%@~^`", min_size=1, max_size=120))
def test_names_of_letters_digits_spaces_and_punctuation_are_read(name):
    if name in (".", ".."):
        return
    metadata = protocol.parse_metadata(metadata_xml(dataclasses.replace(DANISH, name=name)))
    assert metadata.descriptor.file_name == name


# --- through a real SFTP fetch -----------------------------------------------------------------


@dataclasses.dataclass
class Inbox:
    folder: Path
    receiver: object
    route: object

    def put(self, form: Form, metadata: bytes | None = None) -> None:
        (self.folder / form.name).write_bytes(form.data)
        (self.folder / f"{form.name}.metadata").write_bytes(metadata or self.metadata(form))

    def metadata(self, form: Form, **changes) -> bytes:
        return metadata_xml(
            form,
            sender_system=self.route.sender.uuid,
            receiver_system=self.route.receiver.uuid,
            **changes,
        )

    def contents(self) -> dict[str, bytes]:
        return {path.name: path.read_bytes() for path in self.folder.iterdir()}


@pytest.fixture
def route(staff_a, operator, system_a, system_b, aarhus):
    """An established route whose sending IT system has no SFTP account in the portal, so the
    metadata's Sender is not held to one of the portal's user names."""
    integration = engine.ready_integration(
        staff=staff_a,
        operator=operator,
        sender=system_a,
        receiver=system_b,
        municipalities=[aarhus],
    )
    route = engine.routes_for(integration, [aarhus])["751"]
    assert route.municipality.cvr == CVR and route.infref.name == INFREF
    return route


@pytest.fixture
def simulator_inbox(tmp_path, route, system_b):
    with engine.simulator(tmp_path) as sim:
        receiver = engine.account(system_b, "beta_journal", sim)
        engine.load_registry(sim)
        folder = sim.data_dir / "beta_journal" / "IN"
        folder.mkdir(parents=True, exist_ok=True)
        yield Inbox(folder, receiver, route)


@pytest.fixture
def sshd_inbox(route, system_b):
    with running_sshd() as sshd:
        folder = sshd.root / "IN"
        folder.mkdir()
        receiver = engine.account(
            system_b, sshd.username, None, port=sshd.port, host_key=sshd.host_key
        )
        sshd.authorize(receiver.public_key)
        try:
            yield Inbox(folder, receiver, route)
        finally:
            sessions.drop_all_sessions()


SIMULATOR_FORMS = [
    Form("fdd_file_metadata.csv"),
    Form("fdd_trigger_root.csv", root="Trigger", prefix="kombit"),
    Form("fdd_trigger_root_no_id.csv", root="Trigger", id_case=None),
    Form("fdd_default_namespace.csv", prefix=""),
    Form("fdd_upper_case_id.csv", prefix="ns0", id_case="upper"),
    Form("fdd_sender.csv", sender="Alfa Omsorg <ÆØÅ> & \"Co\"; 'x'"),
    Form("fdd_override_sender.csv", root="Trigger", id_case="upper", sender="\u202egpj.exe"),
]
SSHD_FORMS = [
    Form("Udtræk Aarhus 2024.csv"),
    Form("data(1)+v2.csv", prefix="kombit"),
    Form("évil.csv", root="Trigger"),
    Form("sp ace.csv", root="Trigger", id_case=None),
    Form("semi;colon.csv", id_case="upper"),
    Form('rapport "endelig" 100%.csv', prefix=""),
    Form("Ærø rapport", sender="Ærø Kommune's system"),
    Form("Sønderborg (2).XLSX", root="Trigger", prefix="t", id_case="upper"),
    Form("æ" * 121 + ".csv"),  # with ".metadata", the longest name a file system holds
]


@pytest.mark.system
def test_every_form_the_reader_accepts_is_received_from_the_simulator(
    simulator_inbox, client_for, staff_b, architect
):
    assert_received(simulator_inbox, SIMULATOR_FORMS, client_for, staff_b, architect)


@pytest.mark.system
def test_every_name_the_reader_accepts_is_received_over_openssh(
    sshd_inbox, client_for, staff_b, architect
):
    assert_received(sshd_inbox, SSHD_FORMS, client_for, staff_b, architect)


def assert_received(inbox: Inbox, forms: list[Form], client_for, staff_b, architect) -> None:
    for form in forms:
        inbox.put(form)
    result = fetch_inbox(inbox.receiver.pk)
    reasons = dict(ReceivedFile.objects.values_list("remote_name", "reason"))
    assert (result.received, result.quarantined) == (len(forms), 0), reasons
    assert inbox.contents() == {}  # each pair removed once stored
    for form in forms:
        assert_stored(inbox, form, ReceivedFile.objects.get(remote_name=form.name))
    # One test client: each page is asked for as the user logged in just before it.
    listing = english(client_for(staff_b)).get(reverse("transfers:received")).content.decode()
    review = english(client_for(architect)).get(reverse("review:overview")).content.decode()
    assert_shown(forms, listing, review)
    for form in forms:
        assert_downloaded(client_for(staff_b), form)


def assert_stored(inbox: Inbox, form: Form, received: ReceivedFile) -> None:
    assert received.state == ReceivedFile.State.RECEIVED
    assert (received.sender_username, received.route) == (form.sender, inbox.route)
    if form.id_case is not None:
        assert received.file_transfer_uuid == form.file_transfer_uuid
    stored = Path(received.stored_path)
    assert stored.parent == Path(settings.TRANSFER_DATA_DIR) / "received" / inbox.receiver.username
    assert protocol.is_file_name(stored.name), stored.name
    platform_id = str(received.file_transfer_uuid)  # lower-case, whatever the metadata said
    if protocol.is_file_name(form.name):
        assert stored.name == f"{platform_id}-{form.name}"
    else:
        assert stored.name == platform_id + Path(form.name).suffix, form.name
    assert stored.read_bytes() == form.data
    assert received.sha256 == hashlib.sha256(form.data).hexdigest()
    assert received.size == len(form.data)


def assert_shown(forms: list[Form], listing: str, review: str) -> None:
    """Each name on the receiving vendor's list and the municipality's review, escaped and
    isolated, with its download; each Sender on the list."""
    for form in forms:
        received = ReceivedFile.objects.get(remote_name=form.name)
        download = reverse("transfers:received_download", args=[received.pk])
        shown = f"<bdi>{html_escape(form.name)}</bdi>"
        assert shown in listing and download in listing, form.name
        assert shown in review and download in review, form.name
        assert f'<bdi class="break-anywhere">{html_escape(form.sender)}</bdi>' in listing


def offered_name(disposition: str) -> tuple[str, str]:
    """(filename, filename* decoded, or "") of an attachment's Content-Disposition."""
    match = re.fullmatch(
        r"attachment; filename=\"([^\"\\]*)\"(?:; filename\*=UTF-8''(\S+))?", disposition
    )
    assert match, disposition
    plain, extended = match.groups()
    return plain, unquote(extended, errors="strict") if extended else ""


def assert_downloaded(client, form: Form) -> None:
    received = ReceivedFile.objects.get(remote_name=form.name)
    response = client.get(reverse("transfers:received_download", args=[received.pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == form.data
    disposition = response["Content-Disposition"]
    assert disposition.isascii() and disposition.isprintable(), disposition
    plain, extended = offered_name(disposition)
    assert (extended or plain) == form.name
    if protocol.is_file_name(form.name):
        assert (plain, extended) == (form.name, "")
    else:
        assert len(plain) == len(form.name) and not set(plain) & set('"\\%;,')


def test_the_download_header_for_quotes_semicolons_percent_and_non_ascii():
    assert content_disposition("borgere.csv") == 'attachment; filename="borgere.csv"'
    assert content_disposition("sp ace (1).csv") == 'attachment; filename="sp ace (1).csv"'
    assert content_disposition('a"b;c,d%41.csv') == (
        "attachment; filename=\"a_b_c_d_41.csv\"; filename*=UTF-8''a%22b%3Bc%2Cd%2541.csv"
    )
    assert content_disposition("Udtræk Aarhus.csv") == (
        "attachment; filename=\"Udtr_k Aarhus.csv\"; filename*=UTF-8''Udtr%C3%A6k%20Aarhus.csv"
    )


# --- refused through a real SFTP fetch ---------------------------------------------------------


def files_under(directory: Path) -> dict[Path, bytes]:
    if not directory.exists():
        return {}
    return {path: path.read_bytes() for path in directory.rglob("*") if path.is_file()}


def assert_quarantined_and_kept(inbox: Inbox, expected: dict[str, str]) -> None:
    """Fetch once: each name quarantined with its reason, every byte left on the server, and
    nothing new in the portal's folders nor where a name would lead outside them."""
    on_server = inbox.contents()
    stored_before = files_under(Path(settings.TRANSFER_DATA_DIR))
    result = fetch_inbox(inbox.receiver.pk)
    assert (result.received, result.quarantined) == (0, len(expected))
    reasons = dict(ReceivedFile.objects.values_list("remote_name", "reason"))
    assert set(reasons) == set(expected)
    for name, reason in expected.items():
        assert reason in reasons[name], (name, reasons[name])
    assert set(ReceivedFile.objects.values_list("state", flat=True)) == {"quarantined"}
    assert inbox.contents() == on_server
    assert files_under(Path(settings.TRANSFER_DATA_DIR)) == stored_before
    for folder in (Path(settings.TRANSFER_DATA_DIR).parent, inbox.folder.parent):
        assert not (folder / "escape.csv").exists()  # where "../escape.csv" would lead
    fetch_inbox(inbox.receiver.pk)
    assert ReceivedFile.objects.count() == len(expected)  # recorded once, not per fetch


@pytest.mark.system
def test_metadata_the_reader_refuses_is_quarantined_from_the_simulator(simulator_inbox):
    inbox = simulator_inbox

    def naming(listed: str, form: Form, **changes) -> bytes:
        """Metadata of the file listed as `listed`, written as `form` says."""
        return inbox.metadata(form, size=len(Form(listed).data), **changes)

    danish = "Ærø".encode()
    cases = {
        "fdd_path.csv": (naming("fdd_path.csv", Form("../escape.csv")), "FileName holds a path"),
        "fdd_ligature.csv": (naming("fdd_ligature.csv", Form("\ufb01le.csv")), "look-alike"),
        "fdd_tab.csv": (naming("fdd_tab.csv", Form("fdd\ttab.csv")), "a control character"),
        "fdd_rlo.csv": (naming("fdd_rlo.csv", Form("fdd\u202ecsv.exe")), "FileName holds an"),
        "fdd_long.csv": (naming("fdd_long.csv", Form("æ" * 128)), "longer than 255 bytes"),
        "fdd_id.csv": (
            naming("fdd_id.csv", Form("fdd_id.csv"), file_transfer_uuid="not-a-uuid"),
            "FileTransferUUID is not a UUID",
        ),
        "fdd_sender.csv": (
            naming("fdd_sender.csv", Form("fdd_sender.csv", sender="x" * 256)),
            "Sender is longer than 255 characters",
        ),
        "fdd_doctype.csv": (
            b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<t>&x;</t>",
            "DOCTYPE",
        ),
        "fdd_latin1.csv": (
            naming("fdd_latin1.csv", Form("fdd_latin1.csv", sender="Ærø")).replace(
                danish, "Ærø".encode("latin-1")
            ),
            "not valid UTF-8",
        ),
        "fdd_oversize.csv": (b"<a>" + b" " * protocol.MAX_XML_BYTES + b"</a>", "too large"),
    }
    for name, (metadata, _reason) in cases.items():
        inbox.put(Form(name), metadata)
    assert_quarantined_and_kept(inbox, {name: reason for name, (_, reason) in cases.items()})


# Names a file system holds but the reader refuses, each with metadata that names it exactly: only
# the name's rule keeps it out.
UNSAFE_LISTED = [
    "C:\\temp\\escape.csv",
    "line\nbreak.csv",
    "tab\t.csv",
    "esc\x1b[31m.csv",
    "del\x7f.csv",
    "c1\x85.csv",
    "rapport\u202evsc.exe",
    "da\u200bta.csv",
    "a\u2028b.csv",
    "\ufb01le.csv",
    "\uff46ile.csv",
    "e\u0301vil.csv",
    "no\u00a0break.csv",
]


@pytest.mark.system
def test_names_the_reader_refuses_are_quarantined_over_openssh(sshd_inbox):
    for name in UNSAFE_LISTED:
        sshd_inbox.put(Form(name))
    expected = {
        protocol.printable(name): (
            f"the file name is not one the protocol allows: it {protocol.file_name_problem(name)}"
        )
        for name in UNSAFE_LISTED
    }
    assert all(protocol.file_name_problem(name) for name in UNSAFE_LISTED)
    assert_quarantined_and_kept(sshd_inbox, expected)


# --- receipts through a real SFTP session --------------------------------------------------------


@pytest.mark.system
@pytest.mark.parametrize("case", [str.upper, str.lower])
def test_a_receipt_whose_id_is_in_either_case_delivers_the_send(tmp_path, route, system_a, case):
    with engine.simulator(tmp_path) as sim:
        sender = engine.account(system_a, "alfa_omsorg", sim)
        engine.load_registry(sim)
        transfer = queue_send(route, io.BytesIO(b"a;b\r\n"), original_name="x.csv")
        Transfer.objects.filter(pk=transfer.pk).update(
            state=Transfer.State.SENT, sent_at=datetime.now(UTC)
        )
        platform_id = uuid.uuid4()
        receipt = protocol.build_receipt(
            protocol.Receipt(platform_id, str(transfer.senders_file_id), True)
        ).replace(str(platform_id).encode(), case(str(platform_id)).encode())
        folder = sim.data_dir / "alfa_omsorg" / "IN"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{transfer.remote_name}.sftpreceipt").write_bytes(receipt)

        assert tasks.collect_account_receipts(sender.pk) == 1
    transfer.refresh_from_db()
    assert transfer.state == Transfer.State.DELIVERED
    assert transfer.file_transfer_uuid == platform_id
    assert transfer.receipt_xml.encode() == receipt
