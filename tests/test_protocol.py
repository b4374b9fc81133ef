"""The trigger, metadata and receipt XML: round trips, the contract, and hostile input."""

import dataclasses
import re
import socket
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from transfers import protocol
from transfers.protocol import (
    MAX_XML_BYTES,
    NAMESPACE,
    ROUTING_RECIPIENT,
    FileDescriptor,
    Metadata,
    ProtocolError,
    Receipt,
    ReceiptError,
    RoutingInfo,
    Trigger,
)

SENDER_SYSTEM = uuid.UUID("6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b")
RECEIVER_SYSTEM = uuid.UUID("0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d")
INFREF = "FagsystemdefineredeDataRefGDPR1203_1"


def routing(**changes) -> RoutingInfo:
    info = RoutingInfo(
        infref=INFREF,
        sender_it_system=SENDER_SYSTEM,
        sender_authority_cvr="29189897",
        transaction_id=uuid.UUID("d92cd175-f850-47c0-9974-9e0e06e575a7"),
        sender_timestamp=datetime(2026, 11, 28, 13, 22, 5, 123000, tzinfo=UTC),
        recipient_authority_cvr="29189897",
        recipient_it_system=RECEIVER_SYSTEM,
        route_date=date(2026, 12, 1),
    )
    return dataclasses.replace(info, **changes)


def descriptor(**changes) -> FileDescriptor:
    value = FileDescriptor(
        file_name="alfa_borgerdata_8b0e.csv",
        size=123456,
        sender="alfa",
        recipients=(ROUTING_RECIPIENT,),
        senders_file_id="b7d0c8de-8d6e-4d8c-9a53-0f4d3d1e2a11",
    )
    return dataclasses.replace(value, **changes)


TRIGGER = Trigger(descriptor(), routing())
SIMPLE = Trigger(descriptor(recipients=("beta", "gamma"), senders_file_id=None), None)
METADATA = Metadata(uuid.UUID("9a47dfeb-d5b2-432d-a27d-966c20ab9715"), descriptor(), routing())
SUCCESS = Receipt(METADATA.file_transfer_uuid, "sid-1", True, "SUCCESS")
FAILURE = Receipt(
    METADATA.file_transfer_uuid,
    None,
    False,
    errors=(
        ReceiptError(103, "Size mismatch", "SizeInBytes is 5 but OUT/x has 4 bytes"),
        ReceiptError(-7, "Other", 'æøå <&> "quoted"'),
    ),
)


# --- round trips and the contract -----------------------------------------------------------


@pytest.mark.parametrize(
    "trigger",
    [
        TRIGGER,
        SIMPLE,
        Trigger(descriptor(), routing(recipient_it_system=None, route_date=None)),
        Trigger(
            descriptor(size=0),
            routing(sender_timestamp=datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=2)))),
        ),
        Trigger(descriptor(size=(1 << 64) - 1, file_name="a" * 255), routing()),
    ],
)
def test_trigger_round_trip(trigger):
    data = protocol.build_trigger(trigger)
    protocol.validate(data)
    assert protocol.parse_trigger(data) == trigger
    assert protocol.route_based(trigger) is (trigger.routing is not None)


@pytest.mark.parametrize(
    "metadata",
    [METADATA, Metadata(uuid.uuid4(), SIMPLE.descriptor, None)],
)
def test_metadata_round_trip(metadata):
    data = protocol.build_metadata(metadata)
    protocol.validate(data)
    assert protocol.parse_metadata(data) == metadata


@pytest.mark.parametrize(
    "receipt",
    [
        SUCCESS,
        Receipt(uuid.uuid4(), None, True),  # message defaults to SUCCESS when written
        FAILURE,
        Receipt(uuid.uuid4(), "x", False, message="COULD NOT DELIVER"),
    ],
)
def test_receipt_round_trip(receipt):
    data = protocol.build_receipt(receipt)
    protocol.validate(data)
    parsed = protocol.parse_receipt(data)
    assert parsed.success is receipt.success
    assert parsed.errors == receipt.errors
    assert parsed.file_transfer_uuid == receipt.file_transfer_uuid
    assert parsed.senders_file_id == receipt.senders_file_id
    assert parsed.message == (receipt.message or ("SUCCESS" if receipt.success else None))


def test_written_form_follows_the_rules():
    text = protocol.build_trigger(TRIGGER).decode()
    root = etree.fromstring(text.encode())
    assert root.prefix == "sp" and root.nsmap == {"sp": NAMESPACE}
    assert 'xmlns="' not in text  # no default namespace
    for element in root.iter():
        if element is not root and element.tag != f"{{{NAMESPACE}}}RouteSelectionValueDate":
            assert etree.QName(element).namespace is None, element.tag
    assert "<SenderAuthority>urn:oio:cvr-nr:29189897</SenderAuthority>" in text
    assert str(SENDER_SYSTEM) in text and str(SENDER_SYSTEM).upper() not in text
    stamp = root.findtext("FileContentDescriptor/SFTPDynamicRoutingInfo/SenderTimestamp")
    assert datetime.fromisoformat(stamp).utcoffset() is not None


def test_metadata_accepts_a_trigger_root_and_a_missing_content_descriptor():
    as_trigger = protocol.parse_metadata(protocol.build_trigger(TRIGGER))
    assert as_trigger.file_transfer_uuid is None
    assert as_trigger.descriptor == TRIGGER.descriptor and as_trigger.routing == TRIGGER.routing
    data = protocol.build_metadata(METADATA)
    root = etree.fromstring(data)
    root.remove(root.find("FileContentDescriptor"))
    bare = protocol.parse_metadata(etree.tostring(root))
    assert bare.routing is None and bare.file_transfer_uuid == METADATA.file_transfer_uuid


def test_any_prefix_is_read():
    data = (
        protocol.build_trigger(TRIGGER)
        .replace(b"sp:", b"kombit:")
        .replace(b"xmlns:sp=", b"xmlns:kombit=")
    )
    assert protocol.parse_trigger(data) == TRIGGER


def test_foreign_content_is_refused():
    data = protocol.build_metadata(Metadata(uuid.uuid4(), SIMPLE.descriptor, None))
    data = data.replace(
        b"<FileContentDescriptor/>",
        b'<FileContentDescriptor><x:Other xmlns:x="urn:other">1</x:Other></FileContentDescriptor>',
    )
    with pytest.raises(ProtocolError, match="strict wildcard"):
        protocol.parse_metadata(data)


# --- what building refuses -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        (Trigger(descriptor(file_name="../etc/passwd"), routing()), "file_name must be"),
        (Trigger(descriptor(file_name=".."), routing()), "file_name must be"),
        (Trigger(descriptor(size=-1), routing()), "size must be between"),
        (Trigger(descriptor(size=True), routing()), "size must be an int"),
        (Trigger(descriptor(recipients=ROUTING_RECIPIENT), routing()), "tuple of names"),
        (Trigger(descriptor(recipients=()), None), "at least one"),
        (Trigger(descriptor(recipients=("beta",)), routing()), "single recipient"),
        (Trigger(descriptor(), None), "needs SFTPDynamicRoutingInfo"),
        (Trigger(descriptor(senders_file_id="x" * 256), routing()), "at most 255"),
        (
            Trigger(descriptor(), routing(recipient_authority_cvr="urn:oio:cvr-nr:29189897")),
            "8 digits",
        ),
        (Trigger(descriptor(), routing(sender_timestamp=datetime(2026, 1, 1))), "time zone"),
        (Trigger(descriptor(), routing(transaction_id=str(uuid.uuid4()))), "uuid.UUID"),
        (Trigger(descriptor(), routing(route_date=datetime(2026, 1, 1))), "route_date"),
        (Trigger(descriptor(senders_file_id="bell\x07"), routing()), "cannot be written"),
    ],
)
def test_build_trigger_refuses(trigger, message):
    with pytest.raises(ProtocolError, match=re.escape(message)):
        protocol.build_trigger(trigger)


def test_build_receipt_refuses_contradictions():
    with pytest.raises(ProtocolError, match="no errors"):
        protocol.build_receipt(dataclasses.replace(FAILURE, success=True))
    with pytest.raises(ProtocolError, match="neither"):
        protocol.build_receipt(Receipt(uuid.uuid4(), None, False))
    with pytest.raises(ProtocolError, match="32-bit"):
        protocol.build_receipt(
            Receipt(uuid.uuid4(), None, False, errors=(ReceiptError(1 << 31, "a", "b"),))
        )


# --- the documented pitfalls -----------------------------------------------------------------


def test_default_namespace_on_the_root_is_invalid():
    data = protocol.build_trigger(TRIGGER)
    data = data.replace(b"xmlns:sp=", b"xmlns=").replace(b"sp:", b"")
    with pytest.raises(ProtocolError) as caught:
        protocol.validate(data)
    assert "FileDescriptor" in str(caught.value)
    with pytest.raises(ProtocolError, match="carry no namespace"):
        protocol.parse_trigger(data)


def test_upper_case_uuid_is_invalid_where_the_contract_says_so():
    data = protocol.build_trigger(TRIGGER)
    upper = data.replace(str(SENDER_SYSTEM).encode(), str(SENDER_SYSTEM).upper().encode())
    with pytest.raises(ProtocolError, match="SenderIt-system"):
        protocol.validate(upper)
    with pytest.raises(ProtocolError, match="upper case"):
        protocol.parse_trigger(upper)
    # FileTransferUUID is an xs:string: read in either case (tests/test_protocol_reading.py).
    receipt = protocol.build_receipt(SUCCESS)
    upper = receipt.replace(
        str(SUCCESS.file_transfer_uuid).encode(), str(SUCCESS.file_transfer_uuid).upper().encode()
    )
    protocol.validate(upper)
    assert protocol.parse_receipt(upper).file_transfer_uuid == SUCCESS.file_transfer_uuid


# --- specific messages for broken documents --------------------------------------------------


def _replace(data: bytes, old: str, new: str) -> bytes:
    assert old.encode() in data, old
    return data.replace(old.encode(), new.encode(), 1)


TRIGGER_XML = protocol.build_trigger(TRIGGER)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("<SizeInBytes>123456", "<SizeInBytes>abc", "SizeInBytes is not a whole number: 'abc'"),
        ("<SizeInBytes>123456", "<SizeInBytes>-5", "SizeInBytes is negative: '-5'"),
        ("<SizeInBytes>123456", "<SizeInBytes>1.5", "SizeInBytes is not a whole number"),
        ("<SizeInBytes>123456", "<SizeInBytes>99999999999999999999999", "unsignedLong"),
        ("alfa_borgerdata_8b0e.csv", "with/slash.csv", "FileName holds a path separator"),
        ("alfa_borgerdata_8b0e.csv", "..", "FileName is empty, '.' or '..'"),
        ("<Sender>alfa", "<Sender>al/fa", "Sender must be"),
        ("urn:oio:cvr-nr:29189897</SenderAuthority>", "29189897</SenderAuthority>", "CVR URN"),
        ("urn:oio:cvr-nr:29189897</Recip", "urn:oio:cvr-nr:2918989</Recip", "CVR URN"),
        ("d92cd175-f850", "not-a-uuid-f850", "TransactionId is not a UUID"),
        ("2026-11-28T13:22:05.123000+00:00", "yesterday", "SenderTimestamp is not an xs:dateTime"),
        ("2026-11-28T13:22:05", "2026-02-30T13:22:05", "SenderTimestamp is not a valid date"),
        (
            "<FileName>",
            "<FileName>x</FileName><FileName>",
            "FileDescriptor has more than one FileName",
        ),
        ("<Sender>alfa</Sender>", "", "FileDescriptor has no Sender"),
        ("<Recipients>ROUTING_V1_0_0</Recipients>", "", "FileDescriptor has no Recipients"),
        (
            "<Recipients>ROUTING_V1_0_0</Recipients>",
            "<Recipients>ROUTING_V1_0_0</Recipients><Recipients>beta</Recipients>",
            "single recipient",
        ),
        ("<InfRef>", "<Surprise/><InfRef>", "unexpected element Surprise"),
        (
            "<TransactionId>",
            "<InfRef>x</InfRef><TransactionId>",
            "SFTPDynamicRoutingInfo has more than one InfRef",
        ),
        ("<FileName>", "<FileName foo='1'>", "foo"),
        ("</FileDescriptor>", "</FileDescriptor>stray text", "contains text"),
        (
            "<sp:RouteSelectionValueDate>2026-12-01",
            "<sp:RouteSelectionValueDate>2026-13-01",
            "RouteSelectionValueDate is not a valid date",
        ),
    ],
)
def test_broken_trigger_is_refused_with_a_clear_message(old, new, message):
    with pytest.raises(ProtocolError, match=re.escape(message)):
        protocol.parse_trigger(_replace(TRIGGER_XML, old, new))


def test_wrong_root_and_namespace():
    with pytest.raises(ProtocolError, match="root element is FileMetadata; expected Trigger"):
        protocol.parse_trigger(protocol.build_metadata(METADATA))
    wrong = TRIGGER_XML.replace(NAMESPACE.encode(), b"http://example.invalid/other")
    with pytest.raises(ProtocolError, match=re.escape("namespace 'http://example.invalid/other'")):
        protocol.parse_trigger(wrong)
    with pytest.raises(ProtocolError, match="no namespace"):
        protocol.parse_receipt(b"<TechnicalReceipt/>")


def test_receipt_with_both_or_neither():
    data = protocol.build_receipt(SUCCESS)
    both = _replace(
        data,
        "</sp:TechnicalReceipt>",
        "<ErrorMessage><ErrorCode>1</ErrorCode><ErrorCodeDescription>a</ErrorCodeDescription>"
        "<ErrorDescription>b</ErrorDescription></ErrorMessage></sp:TechnicalReceipt>",
    )
    with pytest.raises(ProtocolError, match="both Receipt and ErrorMessage"):
        protocol.parse_receipt(both)
    neither = re.sub(rb"<Receipt>.*</Receipt>", b"", data, flags=re.S)
    with pytest.raises(ProtocolError, match="neither Receipt nor ErrorMessage"):
        protocol.parse_receipt(neither)
    bad_code = _replace(protocol.build_receipt(FAILURE), "<ErrorCode>103", "<ErrorCode>x")
    with pytest.raises(ProtocolError, match="ErrorCode is not a whole number"):
        protocol.parse_receipt(bad_code)


# --- hostile input ---------------------------------------------------------------------------


@pytest.fixture
def trap():
    """A loopback listener that records whether anything connected to it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.1)
    hits = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            hits.append(connection.recv(1000))
            connection.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", hits
    stop.set()
    thread.join(2)
    server.close()


PARSERS = [
    protocol.parse_trigger,
    protocol.parse_metadata,
    protocol.parse_receipt,
    protocol.validate,
]


@pytest.mark.system
@pytest.mark.parametrize("parse", PARSERS)
def test_external_entity_is_never_read(parse, tmp_path, trap):
    url, hits = trap
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    for system in (f"file://{secret}", "file:///etc/passwd", f"{url}/entity"):
        data = (
            f'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY x SYSTEM "{system}">]>'
            f'<sp:Trigger xmlns:sp="{NAMESPACE}"><FileDescriptor><FileName>&x;</FileName>'
            "</FileDescriptor></sp:Trigger>"
        ).encode()
        with pytest.raises(ProtocolError, match="DOCTYPE") as caught:
            parse(data)
        assert "TOP-SECRET" not in str(caught.value) and "root:" not in str(caught.value)
    time.sleep(0.2)
    assert hits == []


@pytest.mark.system
@pytest.mark.parametrize("parse", PARSERS)
def test_external_dtd_is_never_fetched(parse, trap):
    url, hits = trap
    data = (
        f'<?xml version="1.0"?><!DOCTYPE t SYSTEM "{url}/evil.dtd">'
        f'<sp:Trigger xmlns:sp="{NAMESPACE}"/>'
    ).encode()
    with pytest.raises(ProtocolError, match="DOCTYPE"):
        parse(data)
    time.sleep(0.2)
    assert hits == []


@pytest.mark.system
def test_undeclared_entity_and_xinclude_are_refused(trap):
    url, hits = trap
    with pytest.raises(ProtocolError, match="not well-formed"):
        protocol.parse_trigger(TRIGGER_XML.replace(b"<Sender>alfa", b"<Sender>&ext;"))
    xinclude = TRIGGER_XML.replace(
        b"<Sender>alfa</Sender>",
        f'<Sender><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{url}/x"/>'
        "</Sender>".encode(),
    )
    with pytest.raises(ProtocolError, match="Sender must contain text"):
        protocol.parse_trigger(xinclude)
    time.sleep(0.2)
    assert hits == []


def test_billion_laughs_is_refused_quickly():
    lol = "".join(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10 if n else "lol"}">' for n in range(10))
    data = f'<?xml version="1.0"?><!DOCTYPE lolz [{lol}]><lolz>&lol9;</lolz>'.encode()
    started = time.monotonic()
    with pytest.raises(ProtocolError, match="DOCTYPE"):
        protocol.parse_trigger(data)
    assert time.monotonic() - started < 1


def test_entity_declaration_without_doctype_keyword_is_refused():
    with pytest.raises(ProtocolError):
        protocol.parse_trigger(b'<!ENTITY x "y"><a/>')


def test_large_document_is_refused_before_parsing():
    padding = b"<!--" + b"x" * (2 * MAX_XML_BYTES) + b"-->"
    with pytest.raises(ProtocolError, match=f"at most {MAX_XML_BYTES} are accepted"):
        protocol.parse_trigger(TRIGGER_XML + padding)
    # Exactly at the limit is still read (and then judged on its content).
    at_limit = TRIGGER_XML + b"<!--" + b"x" * (MAX_XML_BYTES - len(TRIGGER_XML) - 7) + b"-->"
    assert len(at_limit) == MAX_XML_BYTES
    assert protocol.parse_trigger(at_limit) == TRIGGER


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is empty"),
        (b"   \n", "is empty"),
        (TRIGGER_XML.replace(b"alfa_borgerdata", b"alfa_\xff\xfeborgerdata"), "not valid UTF-8"),
        ("<a>æ</a>".encode("utf-16"), "not valid UTF-8"),
        (b'<?xml version="1.0" encoding="ISO-8859-1"?><a/>', "only UTF-8"),
        (b"<a><b></a>", "not well-formed"),
        (b"not xml at all", "not well-formed"),
        (TRIGGER_XML[:-30], "not well-formed"),
    ],
)
def test_unreadable_bytes(data, message):
    with pytest.raises(ProtocolError, match=message):
        protocol.parse_trigger(data)


def test_not_bytes():
    with pytest.raises(ProtocolError, match="must be bytes"):
        protocol.parse_trigger(TRIGGER_XML.decode())


def test_validate_reports_the_libxml2_message():
    data = _replace(TRIGGER_XML, "<SizeInBytes>123456", "<SizeInBytes>abc")
    with pytest.raises(ProtocolError, match=r"SizeInBytes.*not a valid value"):
        protocol.validate(data)
    protocol.validate(protocol.build_receipt(FAILURE))


# --- property: hostile bytes only ever give ProtocolError ------------------------------------

VALID_DOCUMENTS = [
    TRIGGER_XML,
    protocol.build_trigger(SIMPLE),
    protocol.build_metadata(METADATA),
    protocol.build_receipt(SUCCESS),
    protocol.build_receipt(FAILURE),
]
PARSE = [protocol.parse_trigger, protocol.parse_metadata, protocol.parse_receipt]


def _only_protocol_errors(data: bytes) -> None:
    for parse in PARSE:
        try:
            result = parse(data)
        except ProtocolError as error:
            assert str(error)
            continue
        # A trigger read is always echoed as metadata (the simulator does so); it is written
        # again as a trigger only if its name is one the portal itself would write.
        if isinstance(result, Trigger):
            protocol.build_metadata(Metadata(uuid.uuid4(), result.descriptor, result.routing))
            if result.routing is not None and result.routing.sender_timestamp.utcoffset() is None:
                continue
            if protocol.is_file_name(result.descriptor.file_name):
                protocol.build_trigger(result)
            else:
                with pytest.raises(ProtocolError, match="file_name"):
                    protocol.build_trigger(result)
        elif isinstance(result, Metadata):
            # Metadata is read, stored and shown, never written again: its name is safe as one.
            assert protocol.file_name_problem(result.descriptor.file_name) is None
        else:
            protocol.build_receipt(result)


def test_a_trigger_read_with_an_unusual_name_is_echoed_but_never_written_as_one():
    data = protocol.build_trigger(SIMPLE).replace(b"<FileName>", b"<FileName>&amp;", 1)
    trigger = protocol.parse_trigger(data)
    assert trigger.descriptor.file_name.startswith("&")
    _only_protocol_errors(data)
    with pytest.raises(ProtocolError, match="file_name"):
        protocol.build_trigger(trigger)


@settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.binary(max_size=3000))
def test_random_bytes_only_raise_protocol_error(data):
    _only_protocol_errors(data)


@st.composite
def mutated_documents(draw):
    data = bytearray(draw(st.sampled_from(VALID_DOCUMENTS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "delete", "insert", "text", "truncate", "swap"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[position] = draw(st.integers(0, 255))
        elif kind == "delete":
            del data[position : position + draw(st.integers(1, 40))]
        elif kind == "insert":
            snippet = draw(
                st.sampled_from(
                    [
                        b"<Recipients>beta</Recipients>",
                        b"<FileName>x</FileName>",
                        b"&amp;",
                        b"&lt;",
                        b"<![CDATA[x]]>",
                        b"<!-- c -->",
                        b"<?pi x?>",
                        b"\x00",
                        b"\xc3\x28",
                        b"<sp:X/>",
                        b"-",
                        b"A",
                        b" ",
                    ]
                )
                | st.binary(max_size=20)
            )
            data[position:position] = snippet
        elif kind == "text":
            texts = list(re.finditer(rb">([^<]+)<", bytes(data)))
            if texts:
                chosen = texts[draw(st.integers(0, len(texts) - 1))]
                new = draw(st.text(max_size=30)).encode()
                data[chosen.start(1) : chosen.end(1)] = new
        elif kind == "truncate":
            del data[position:]
        elif kind == "swap":
            data = data.replace(b"FileDescriptor", b"FileContentDescriptor", 1)
    return bytes(data)


@settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(mutated_documents())
def test_mutated_documents_only_raise_protocol_error(data):
    _only_protocol_errors(data)


@settings(max_examples=100, deadline=None, database=None)
@given(
    file_name=st.from_regex(r"[A-Za-z0-9._-]{1,255}", fullmatch=True).filter(
        lambda n: n not in (".", "..")
    ),
    size=st.integers(0, (1 << 64) - 1),
    senders_file_id=st.none()
    | st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc", "Cn"]), max_size=255),
    stamp=st.datetimes(
        timezones=st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
    ),
)
def test_any_valid_trigger_round_trips(file_name, size, senders_file_id, stamp):
    trigger = Trigger(
        descriptor(file_name=file_name, size=size, senders_file_id=senders_file_id),
        routing(sender_timestamp=stamp),
    )
    data = protocol.build_trigger(trigger)
    parsed = protocol.parse_trigger(data)
    assert parsed.descriptor.file_name == file_name
    assert parsed.descriptor.size == size
    assert parsed.routing.sender_timestamp == stamp


def test_the_examples_in_docs_protocol_are_valid_against_the_contract():
    """docs/protocol.md shows a trigger, metadata and two receipts: each one the XSD accepts."""
    document = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
    examples = re.findall(r"```xml\n(.*?)\n```", document, re.DOTALL)
    assert len(examples) == 4
    schema = etree.XMLSchema(etree.parse(str(protocol.SCHEMA_FILE)))
    for example in examples:
        schema.assertValid(etree.fromstring(example.encode()))
    parsed = protocol.parse_trigger(examples[0].encode())
    assert parsed.descriptor.recipients == (protocol.ROUTING_RECIPIENT,)
    assert protocol.parse_metadata(examples[1].encode()).file_transfer_uuid is not None
    assert protocol.parse_receipt(examples[2].encode()).success
    assert [e.code for e in protocol.parse_receipt(examples[3].encode()).errors] == [106]
