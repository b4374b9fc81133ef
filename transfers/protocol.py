"""The XML files of Serviceplatformen's SFTP service: trigger, metadata and technical receipt.

The one place that knows the XML. Pure functions: no file, network or database access.

Writing (`build_*`): the root carries the prefix `sp:` for the contract's namespace, every child is
unqualified (the schema has no `elementFormDefault`, so a default `xmlns=` would make the file
invalid), UUIDs are lower-case, authorities are `urn:oio:cvr-nr:<8 digits>`, timestamps are ISO
8601 with a time zone. Everything built is validated against `contract/SFTPTypes.xsd` before it is
returned, so a built file that would not validate raises `ProtocolError` instead.

Reading (`parse_*`, `validate`): the input is treated as hostile. It is refused before parsing when
larger than `MAX_XML_BYTES`, not UTF-8, or when it has a DOCTYPE at all; the parser never resolves
entities, loads a DTD or touches the network. The structure is then checked element by element
(so errors name the element), and the document is validated against the XSD as well.

Strict in what we write, tolerant in what we read. The portal writes triggers only, by
conservative rules (UUIDs lower-case; file names, senders, recipients and InfRefs
`[A-Za-z0-9._-]{1,255}`, not `.` or `..`). A trigger is read by the same rules except its
`FileName`, which may be any name READING_RULES accept, as the platform takes any: the simulator
reads triggers of any client and echoes them into metadata with `build_metadata`, which writes
that name as it came. Metadata and receipts come from the platform and are read as the contract
types them, plus the `Trigger`-rooted metadata below; what reading refuses on top of the XSD is
`READING_RULES`, one table with the contract line or the security reason of each rule. Every
failure is a `ProtocolError` whose message says what is wrong.

Decided where the contract is silent:
- `build_trigger` requires a `sender_timestamp` with a time zone. Reading accepts one without
  (the XSD does), and `build_metadata`, which echoes a trigger, writes it back as it came.
- `parse_metadata` accepts the root `FileMetadata` (what the contract defines) or `Trigger` (what
  public clients of the service read: root `Trigger`, then `FileTransferUUID`). Under a `Trigger`
  root `FileTransferUUID` may come first; without it `Metadata.file_transfer_uuid` is None. Such
  a document is validated as the `FileMetadata` (or `Trigger`) it then is. Metadata without
  `FileContentDescriptor` is accepted too (validated as if it were empty).
- A route parameter's content is skipped by the XSD (`processContents="skip"`): in metadata, a
  `RouteSelectionValueDate` that is not one readable xs:date gives `route_date` None; in a
  trigger it is refused.
- A trigger is route-based exactly when it has `SFTPDynamicRoutingInfo`; its `Recipients` must
  then be the single `ROUTING_V1_0_0`, and a simple transfer must not name `ROUTING_V1_0_0`.
  Metadata is not held to this, since it comes from the platform.
- `RouteSelectionValueDate` is written in the contract's namespace (it is a global element of the
  schema) and read with or without it; other route parameters are ignored when reading.
- Foreign-namespace content in `FileContentDescriptor` (the schema's `##other`) is refused: the
  wildcard is strict, so it could only validate against a schema we do not have.
- A receipt is a success exactly when its `Receipt/Message` is `SUCCESS`.
"""

import functools
import re
import threading
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

from lxml import etree

ROUTING_RECIPIENT = "ROUTING_V1_0_0"
NAMESPACE = "http://serviceplatformen.dk/xml/wsdl/soap11/SFTP/1/types"
MAX_XML_BYTES = 1 << 20
PREFIX = "sp"
SCHEMA_FILE = Path(__file__).resolve().parent / "contract" / "SFTPTypes.xsd"
SUCCESS = "SUCCESS"

_NAME = re.compile(r"[A-Za-z0-9._-]{1,255}")
_UUID = re.compile(r"[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}")
_UUID_ANY_CASE = re.compile(_UUID.pattern, re.IGNORECASE)
_CVR = re.compile(r"[0-9]{8}")
_CVR_URN = re.compile(r"urn:oio:cvr-nr:([0-9]{8})")
_UNSIGNED = re.compile(r"\+?([0-9]+)")
_INT = re.compile(r"[+-]?[0-9]+")
_TZ = r"(Z|[+-][0-9]{2}:[0-9]{2})?"
_DATETIME = re.compile(
    r"(-?[0-9]{4,})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?" + _TZ
)
_DATE = re.compile(r"(-?[0-9]{4,})-([0-9]{2})-([0-9]{2})" + _TZ)
_ENCODING = re.compile(rb"\s*<\?xml[^>]*?encoding\s*=\s*[\"']([^\"']*)[\"']")
_MAX_UNSIGNED_LONG = (1 << 64) - 1
_INT32 = (-(1 << 31), (1 << 31) - 1)
_MAX_TEXT = 255


class ProtocolError(ValueError):
    """A trigger, metadata or receipt that is not what the contract (and we) accept."""


@dataclass(frozen=True)
class RoutingInfo:
    """`SFTPDynamicRoutingInfo`. CVR fields hold the 8 digits; the URN is added when written."""

    infref: str
    sender_it_system: uuid.UUID
    sender_authority_cvr: str
    transaction_id: uuid.UUID
    sender_timestamp: datetime
    recipient_authority_cvr: str
    recipient_it_system: uuid.UUID | None = None
    route_date: date | None = None


@dataclass(frozen=True)
class FileDescriptor:
    file_name: str
    size: int
    sender: str
    recipients: tuple[str, ...]
    senders_file_id: str | None = None


@dataclass(frozen=True)
class Trigger:
    descriptor: FileDescriptor
    routing: RoutingInfo | None  # None: a simple transfer, recipients are SFTP user names


@dataclass(frozen=True)
class Metadata:
    # None only when read from a metadata file whose root is `Trigger` (it has no such element).
    file_transfer_uuid: uuid.UUID | None
    descriptor: FileDescriptor
    routing: RoutingInfo | None


@dataclass(frozen=True)
class ReceiptError:
    code: int
    code_description: str
    description: str


@dataclass(frozen=True)
class Receipt:
    file_transfer_uuid: uuid.UUID
    senders_file_id: str | None
    success: bool
    message: str | None = None  # Receipt/Message: "SUCCESS" for a success
    errors: tuple[ReceiptError, ...] = ()


def route_based(trigger: Trigger | Metadata) -> bool:
    """True when the trigger (or metadata) carries routing information: a route-based transfer."""
    return trigger.routing is not None


# --- building ---------------------------------------------------------------------------------


def build_trigger(trigger: Trigger) -> bytes:
    _check_descriptor(trigger.descriptor)
    _check_consistency(trigger.descriptor, trigger.routing)
    if trigger.routing is not None:
        _check_routing(trigger.routing)
    root = _root("Trigger")
    _add_descriptor(root, trigger.descriptor)
    _add_content(root, trigger.routing)
    return _finish(root, "Trigger")


def build_metadata(metadata: Metadata) -> bytes:
    if not isinstance(metadata.file_transfer_uuid, uuid.UUID):
        raise ProtocolError("file_transfer_uuid must be a uuid.UUID to write FileMetadata")
    _check_descriptor(metadata.descriptor, any_file_name=True)
    if metadata.routing is not None:
        _check_routing(metadata.routing, require_zone=False)
    root = _root("FileMetadata")
    _leaf(root, "FileTransferUUID", str(metadata.file_transfer_uuid))
    _add_descriptor(root, metadata.descriptor)
    _add_content(root, metadata.routing)
    return _finish(root, "FileMetadata")


def build_receipt(receipt: Receipt) -> bytes:
    if not isinstance(receipt.file_transfer_uuid, uuid.UUID):
        raise ProtocolError("file_transfer_uuid must be a uuid.UUID")
    _check_text(receipt.senders_file_id, "senders_file_id", optional=True)
    errors = tuple(receipt.errors)
    if receipt.success:
        if errors:
            raise ProtocolError("a successful receipt has no errors")
        if receipt.message not in (None, SUCCESS):
            raise ProtocolError(
                f"a successful receipt's message is {SUCCESS}, not {receipt.message!r}"
            )
    elif errors:
        if receipt.message is not None:
            raise ProtocolError("a receipt has either a message or errors, not both")
        for error in errors:
            if not isinstance(error, ReceiptError):
                raise ProtocolError(
                    f"errors holds ReceiptError objects, not {type(error).__name__}"
                )
            if not isinstance(error.code, int) or isinstance(error.code, bool):
                raise ProtocolError(f"ErrorCode must be an int, not {error.code!r}")
            if not _INT32[0] <= error.code <= _INT32[1]:
                raise ProtocolError(f"ErrorCode {error.code} is outside the 32-bit range of xs:int")
            for text, what in (
                (error.code_description, "ErrorCodeDescription"),
                (error.description, "ErrorDescription"),
            ):
                if not isinstance(text, str):
                    raise ProtocolError(f"{what} must be a string, not {type(text).__name__}")
    elif not isinstance(receipt.message, str) or receipt.message.strip() == SUCCESS:
        raise ProtocolError(
            "a failed receipt has errors, or a message other than SUCCESS; it has neither"
        )
    root = _root("TechnicalReceipt")
    _leaf(root, "FileTransferUUID", str(receipt.file_transfer_uuid))
    if receipt.senders_file_id is not None:
        _leaf(root, "SendersFileId", receipt.senders_file_id)
    if errors:
        for error in errors:
            element = etree.SubElement(root, "ErrorMessage")
            _leaf(element, "ErrorCode", str(error.code))
            _leaf(element, "ErrorCodeDescription", error.code_description)
            _leaf(element, "ErrorDescription", error.description)
    else:
        element = etree.SubElement(root, "Receipt")
        _leaf(element, "Message", SUCCESS if receipt.success else receipt.message)
    return _finish(root, "TechnicalReceipt")


def _root(name: str) -> etree._Element:
    return etree.Element(etree.QName(NAMESPACE, name), nsmap={PREFIX: NAMESPACE})


def _leaf(parent: etree._Element, name: str, text: str) -> etree._Element:
    element = etree.SubElement(parent, name)
    try:
        element.text = text
    except ValueError as error:  # control characters and the like: not XML
        raise ProtocolError(f"{name} cannot be written as XML: {error}") from None
    return element


def _finish(root: etree._Element, what: str) -> bytes:
    data = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    try:
        validate(data)
    except ProtocolError as error:
        raise ProtocolError(f"the {what} built does not validate: {error}") from None
    return data


def _add_descriptor(root: etree._Element, descriptor: FileDescriptor) -> None:
    element = etree.SubElement(root, "FileDescriptor")
    _leaf(element, "FileName", descriptor.file_name)
    _leaf(element, "SizeInBytes", str(descriptor.size))
    _leaf(element, "Sender", descriptor.sender)
    if descriptor.senders_file_id is not None:
        _leaf(element, "SendersFileId", descriptor.senders_file_id)
    for recipient in descriptor.recipients:
        _leaf(element, "Recipients", recipient)


def _add_content(root: etree._Element, routing: RoutingInfo | None) -> None:
    content = etree.SubElement(root, "FileContentDescriptor")
    if routing is None:
        return
    info = etree.SubElement(content, "SFTPDynamicRoutingInfo")
    _leaf(info, "InfRef", routing.infref)
    _leaf(info, "SenderIt-system", str(routing.sender_it_system))
    _leaf(info, "SenderAuthority", f"urn:oio:cvr-nr:{routing.sender_authority_cvr}")
    _leaf(info, "TransactionId", str(routing.transaction_id))
    _leaf(info, "SenderTimestamp", routing.sender_timestamp.isoformat())
    if routing.recipient_it_system is not None:
        _leaf(info, "RecipientIt-system", str(routing.recipient_it_system))
    _leaf(info, "RecipientAuthority", f"urn:oio:cvr-nr:{routing.recipient_authority_cvr}")
    if routing.route_date is not None:
        parameters = etree.SubElement(info, "RouteParameterList")
        parameter = etree.SubElement(parameters, "RouteParameter")
        value = etree.SubElement(parameter, etree.QName(NAMESPACE, "RouteSelectionValueDate"))
        value.text = routing.route_date.isoformat()


def _check_name(value, what: str) -> None:
    if not isinstance(value, str):
        raise ProtocolError(f"{what} must be a string, not {type(value).__name__}")
    if not is_file_name(value):
        raise ProtocolError(
            f"{what} must be 1-255 of the characters A-Z, a-z, 0-9, '.', '_' and '-' "
            f"(and not '.' or '..'): {_show(value)}"
        )


def _check_text(value, what: str, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise ProtocolError(f"{what} must be a string, not {type(value).__name__}")
    if len(value) > _MAX_TEXT:
        raise ProtocolError(f"{what} has {len(value)} characters; at most {_MAX_TEXT} are allowed")


def _check_descriptor(descriptor: FileDescriptor, *, any_file_name: bool = False) -> None:
    """`any_file_name`: the file's name may be any that READING_RULES accept (what the platform
    echoes), not only a conservative one (what the portal writes)."""
    if not isinstance(descriptor, FileDescriptor):
        raise ProtocolError(f"descriptor must be a FileDescriptor, not {type(descriptor).__name__}")
    if any_file_name:
        problem = file_name_problem(descriptor.file_name)
        if problem:
            raise ProtocolError(f"file_name {problem}: {_show(descriptor.file_name)}")
    else:
        _check_name(descriptor.file_name, "file_name")
    size = descriptor.size
    if not isinstance(size, int) or isinstance(size, bool):
        raise ProtocolError(f"size must be an int, not {size!r}")
    if not 0 <= size <= _MAX_UNSIGNED_LONG:
        raise ProtocolError(f"size must be between 0 and 2**64-1: {size}")
    _check_name(descriptor.sender, "sender")
    _check_text(descriptor.senders_file_id, "senders_file_id", optional=True)
    recipients = descriptor.recipients
    if isinstance(recipients, str) or not isinstance(recipients, (tuple, list)):
        raise ProtocolError(f"recipients must be a tuple of names, not {recipients!r}")
    if not recipients:
        raise ProtocolError("recipients must name at least one recipient")
    for recipient in recipients:
        _check_name(recipient, "a recipient")


def _check_consistency(descriptor: FileDescriptor, routing: RoutingInfo | None) -> None:
    recipients = tuple(descriptor.recipients)
    if routing is not None and recipients != (ROUTING_RECIPIENT,):
        raise ProtocolError(
            f"a route-based trigger has the single recipient {ROUTING_RECIPIENT}, "
            f"not {', '.join(recipients)}"
        )
    if routing is None and ROUTING_RECIPIENT in recipients:
        raise ProtocolError(
            f"recipient {ROUTING_RECIPIENT} needs SFTPDynamicRoutingInfo; "
            "a simple transfer names SFTP users"
        )


def _check_routing(routing: RoutingInfo, require_zone: bool = True) -> None:
    if not isinstance(routing, RoutingInfo):
        raise ProtocolError(f"routing must be RoutingInfo or None, not {type(routing).__name__}")
    _check_name(routing.infref, "infref")
    for value, what in (
        (routing.sender_it_system, "sender_it_system"),
        (routing.transaction_id, "transaction_id"),
    ):
        if not isinstance(value, uuid.UUID):
            raise ProtocolError(f"{what} must be a uuid.UUID, not {value!r}")
    if routing.recipient_it_system is not None and not isinstance(
        routing.recipient_it_system, uuid.UUID
    ):
        raise ProtocolError(
            f"recipient_it_system must be a uuid.UUID or None, not {routing.recipient_it_system!r}"
        )
    for value, what in (
        (routing.sender_authority_cvr, "sender_authority_cvr"),
        (routing.recipient_authority_cvr, "recipient_authority_cvr"),
    ):
        if not isinstance(value, str) or not _CVR.fullmatch(value):
            raise ProtocolError(
                f"{what} must be the 8 digits of a CVR number "
                f"(without urn:oio:cvr-nr:, which is added when written): {value!r}"
            )
    stamp = routing.sender_timestamp
    if not isinstance(stamp, datetime):
        raise ProtocolError(f"sender_timestamp must be a datetime, not {stamp!r}")
    if require_zone and (stamp.tzinfo is None or stamp.utcoffset() is None):
        raise ProtocolError(f"sender_timestamp must have a time zone: {stamp.isoformat()}")
    if routing.route_date is not None and (
        not isinstance(routing.route_date, date) or isinstance(routing.route_date, datetime)
    ):
        raise ProtocolError(f"route_date must be a date or None, not {routing.route_date!r}")


# --- reading ----------------------------------------------------------------------------------

_schema: etree.XMLSchema | None = None
_schema_lock = threading.Lock()


def _get_schema() -> etree.XMLSchema:
    global _schema
    with _schema_lock:
        if _schema is None:
            parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
            _schema = etree.XMLSchema(etree.parse(str(SCHEMA_FILE), parser))
        return _schema


def _xsd_check(root: etree._Element, what: str = "the document") -> None:
    schema = _get_schema()
    with _schema_lock:  # one validation at a time: the schema keeps its error log
        if schema.validate(root):
            return
        error = schema.error_log.last_error
        message = f"line {error.line}: {error.message}" if error else "invalid"
    raise ProtocolError(f"{what} does not match the contract (SFTPTypes.xsd): {message}")


def _show(value: str, limit: int = 80) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


def printable(value: str, limit: int = 80) -> str:
    """A name from outside as it may be shown and stored: quoted, escaped, cut to `limit`."""
    return _show(value, limit)


def is_file_name(value: str) -> bool:
    """A conservative file name, the only kind the portal writes: 1-255 of A-Z a-z 0-9 . _ -
    and not '.' or '..'. Such a name is also safe to use as it is on this disk."""
    return isinstance(value, str) and bool(_NAME.fullmatch(value)) and value not in (".", "..")


# --- what reading refuses ---------------------------------------------------------------------


def _is_empty_or_dots(value: str) -> bool:
    return value in ("", ".", "..")


def _has_separator(value: str) -> bool:
    return "/" in value or "\\" in value


def _has_control(value: str) -> bool:
    # Cc is C0 (NUL, tab, CR, LF among them), DEL and C1; Cs a lone surrogate, which is no text.
    return any(unicodedata.category(c) in ("Cc", "Cs") for c in value)


def _has_invisible(value: str) -> bool:
    # Cf holds the bidirectional embeddings, overrides and isolates (U+202A-U+202E,
    # U+2066-U+2069) that portal.core.text refuses in every name, and the zero-width and other
    # format characters; Zl and Zp break a line as LF does.
    return any(unicodedata.category(c) in ("Cf", "Zl", "Zp") for c in value)


def _is_look_alike(value: str) -> bool:
    return unicodedata.normalize("NFKC", value) != value


def _over_255_bytes(value: str) -> bool:
    return len(value.encode("utf-8", "surrogatepass")) > _MAX_TEXT


def _over_255_characters(value: str) -> bool:
    return len(value) > _MAX_TEXT


def _not_a_uuid(value: str) -> bool:
    return not _UUID_ANY_CASE.fullmatch(value)


@dataclass(frozen=True)
class ReadingRule:
    """One thing reading refuses in the text of an element, on top of the XSD."""

    element: str
    refuses: Callable[[str], bool]
    problem: str  # completes a sentence that starts with the element's name
    why: str  # the contract line or the security reason behind the rule


_CONTRACT_LENGTH = "contract: xs:string with maxLength 255 (SFTPTypes.xsd, FileDescriptorType)"

# Everything reading refuses in the text of metadata and receipts, beside the XSD's structure and
# types; a value no rule refuses is read. The XSD's own limit is restated where a rule names it,
# for a message that names the element. FileName is xs:string, maxLength 255
# (FileDescriptorType): any name is received unless it is unsafe as one path component on the
# server (IN/<name>) or as a label shown and offered for download; the same FileName rules judge
# the names listed in IN/ (`file_name_problem`). Sender and Recipients are any SFTPUserType (shown
# escaped). Elements not named here (InfRef among them: xs:string) are read as the XSD types
# them; what they must match is the fetch's business (a route, a sender).
READING_RULES: tuple[ReadingRule, ...] = (
    ReadingRule(
        "FileName",
        _is_empty_or_dots,
        "is empty, '.' or '..'",
        "security: as a path component these name the folder itself or the one above it",
    ),
    ReadingRule(
        "FileName",
        _has_separator,
        "holds a path separator (/ or \\)",
        "security: a path, not a name: traversal on the server, on this disk, or where the "
        "browser saves the download (Windows splits at \\)",
    ),
    ReadingRule(
        "FileName",
        _has_control,
        "holds a control character (C0, DEL or C1)",
        "security: NUL ends a name in C and on the server; CR and LF forge lines in logs and "
        "headers; ESC and C1 drive terminals",
    ),
    ReadingRule(
        "FileName",
        _has_invisible,
        "holds an invisible format, direction or line-separator character",
        "security: a bidirectional override shows 'gpj.exe' as 'exe.jpg'; zero-width characters "
        "make two different names look the same (Unicode categories Cf, Zl, Zp)",
    ),
    ReadingRule(
        "FileName",
        _is_look_alike,
        "is a look-alike of another name (Unicode NFKC changes it)",
        "security: '\ufb01le.csv' (a ligature), '\uff46ile.csv' (full width) or a decomposed "
        "'e\u0301' look like another name; NFKC is Unicode's form that tells them apart",
    ),
    ReadingRule(
        "FileName",
        _over_255_bytes,
        "is longer than 255 bytes in UTF-8",
        "security: no file system holds a longer name (NAME_MAX); the contract's maxLength 255 "
        "counts characters, so 255 of 'æ' would pass it",
    ),
    ReadingRule("Sender", _over_255_characters, "is longer than 255 characters", _CONTRACT_LENGTH),
    ReadingRule(
        "Recipients", _over_255_characters, "is longer than 255 characters", _CONTRACT_LENGTH
    ),
    ReadingRule(
        "SendersFileId", _over_255_characters, "is longer than 255 characters", _CONTRACT_LENGTH
    ),
    ReadingRule(
        "FileTransferUUID",
        _not_a_uuid,
        "is not a UUID (8-4-4-4-12 hexadecimal digits, in either case)",
        "contract: xs:string (FileMetadataType, TechnicalReceiptType), so upper case is read "
        "(and stored lower-case); but the platform's id of a transfer is a UUID, and the "
        "portal keys received files and receipts by it",
    ),
)


def reading_problem(element: str, value: str) -> str | None:
    """What reading refuses in `value` as the text of `element` (the first rule that applies),
    or None when the value is read."""
    for rule in READING_RULES:
        if rule.element == element and rule.refuses(value):
            return rule.problem
    return None


def file_name_problem(name: str) -> str | None:
    """Why `name` cannot be received as a file's name (the FileName rules), or None."""
    if not isinstance(name, str):
        return "is not text"
    return reading_problem("FileName", name)


def _parse_xml(data: bytes, what: str = "the document") -> etree._Element:
    """Parse untrusted bytes into an element tree, refusing anything dangerous or odd."""
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise ProtocolError(f"{what} must be bytes, not {type(data).__name__}")
    if len(data) > MAX_XML_BYTES:
        raise ProtocolError(f"{what} is {len(data)} bytes; at most {MAX_XML_BYTES} are accepted")
    if not data.strip():
        raise ProtocolError(f"{what} is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ProtocolError(
            f"{what} is not valid UTF-8 (byte {error.start}: {error.reason})"
        ) from None
    declared = _ENCODING.match(data.removeprefix(b"\xef\xbb\xbf"))
    if declared and declared.group(1).decode("ascii", "replace").lower() not in ("utf-8", "utf8"):
        raise ProtocolError(
            f"{what} declares the encoding {declared.group(1).decode('ascii', 'replace')!r}; "
            "only UTF-8 is accepted"
        )
    upper = text.upper()
    if "<!DOCTYPE" in upper:
        raise ProtocolError(f"{what} has a DOCTYPE; document type declarations are refused")
    if "<!ENTITY" in upper:
        raise ProtocolError(f"{what} declares an entity; entity declarations are refused")
    parser = etree.XMLParser(
        encoding="utf-8",
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as error:
        raise ProtocolError(f"{what} is not well-formed XML: {error}") from None
    if root is None:
        raise ProtocolError(f"{what} has no root element")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise ProtocolError(f"{what} has a DOCTYPE; document type declarations are refused")
    return root


def _check_root(root: etree._Element, expected: tuple[str, ...]) -> str:
    name = etree.QName(root)
    if name.namespace != NAMESPACE:
        where = f"namespace {name.namespace!r}" if name.namespace else "no namespace"
        raise ProtocolError(
            f"the root element {name.localname} is in {where}; expected {NAMESPACE}"
        )
    if name.localname not in expected:
        raise ProtocolError(
            f"the root element is {name.localname}; expected {' or '.join(expected)}"
        )
    return name.localname


class _Children:
    """The element children of one element, checked against (name, position, min, max) rules."""

    def __init__(self, parent: etree._Element, where: str, rules: list[tuple[str, int, int, int]]):
        self.where = where
        self.found: dict[str, list[etree._Element]] = {name: [] for name, *_ in rules}
        positions = {name: position for name, position, *_ in rules}
        limits = {name: (low, high) for name, _, low, high in rules}
        if (parent.text or "").strip():
            raise ProtocolError(f"{where} contains text {_show(parent.text.strip())}")
        last = -1
        for child in parent:
            if (child.tail or "").strip():
                raise ProtocolError(f"{where} contains text {_show(child.tail.strip())}")
            if not isinstance(child.tag, str):
                continue
            name = _local(child, where)
            if name not in self.found:
                raise ProtocolError(f"{where} has an unexpected element {name}")
            if len(self.found[name]) >= limits[name][1]:
                raise ProtocolError(f"{where} has more than one {name}")
            if positions[name] < last:
                order = ", ".join(self.found)
                raise ProtocolError(f"{where}/{name} is out of order (the order is {order})")
            last = positions[name]
            self.found[name].append(child)
        for name, (low, _high) in limits.items():
            if len(self.found[name]) < low:
                raise ProtocolError(f"{where} has no {name}")

    def one(self, name: str) -> etree._Element | None:
        elements = self.found[name]
        return elements[0] if elements else None

    def all(self, name: str) -> list[etree._Element]:
        return self.found[name]


def _local(element: etree._Element, where: str) -> str:
    name = etree.QName(element)
    if name.namespace is not None:
        hint = (
            " (a default xmlns= on the root puts them there)" if name.namespace == NAMESPACE else ""
        )
        raise ProtocolError(
            f"{where}/{name.localname} is in the namespace {name.namespace!r}; "
            f"the elements below the root carry no namespace{hint}"
        )
    return name.localname


def _text(element: etree._Element, what: str) -> str:
    if len(element):
        raise ProtocolError(f"{what} must contain text, not elements")
    return element.text or ""


def _name(element: etree._Element, what: str) -> str:
    value = _text(element, what)
    if not is_file_name(value):
        raise ProtocolError(
            f"{what} must be 1-255 of the characters A-Z, a-z, 0-9, '.', '_' and '-' "
            f"(and not '.' or '..'): {_show(value)}"
        )
    return value


def _read(element: etree._Element, what: str, strip: bool = False) -> str:
    """The text of `element` in metadata or a receipt, held to READING_RULES (and the XSD)."""
    value = _text(element, what)
    value = value.strip() if strip else value
    problem = reading_problem(what, value)
    if problem:
        raise ProtocolError(f"{what} {problem}: {_show(value)}")
    return value


def _file_transfer_uuid(element: etree._Element) -> uuid.UUID:
    """The platform's id of a transfer, in either case and with any whitespace around it (the
    contract types it xs:string); as a uuid.UUID it is stored and compared lower-case."""
    return uuid.UUID(_read(element, "FileTransferUUID", strip=True))


def _string(element: etree._Element | None, what: str) -> str | None:
    if element is None:
        return None
    value = _text(element, what)
    if len(value) > _MAX_TEXT:
        raise ProtocolError(f"{what} has {len(value)} characters; at most {_MAX_TEXT} are allowed")
    return value


def _uuid(element: etree._Element, what: str) -> uuid.UUID:
    value = _text(element, what)
    if _UUID.fullmatch(value):
        return uuid.UUID(value)
    if _UUID_ANY_CASE.fullmatch(value):
        raise ProtocolError(f"{what} is a UUID in upper case; it must be lower-case hex: {value!r}")
    raise ProtocolError(f"{what} is not a UUID (lower-case hex, 8-4-4-4-12): {_show(value)}")


def _cvr(element: etree._Element, what: str) -> str:
    value = _text(element, what)
    match = _CVR_URN.fullmatch(value)
    if not match:
        raise ProtocolError(
            f"{what} is not a CVR URN (urn:oio:cvr-nr: and 8 digits): {_show(value)}"
        )
    return match.group(1)


def _zone(text: str | None) -> timezone | None:
    if not text:
        return None
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    hours, minutes = int(text[1:3]), int(text[4:6])
    if minutes > 59 or hours * 60 + minutes > 14 * 60:
        raise ValueError(f"time zone {text} is out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _datetime(element: etree._Element, what: str) -> datetime:
    value = _text(element, what).strip()
    match = _DATETIME.fullmatch(value)
    if not match:
        raise ProtocolError(f"{what} is not an xs:dateTime (YYYY-MM-DDThh:mm:ss): {_show(value)}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        microsecond = int((fraction[1:] + "000000")[:6]) if fraction else 0
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            microsecond,
            tzinfo=_zone(zone),
        )
    except (ValueError, OverflowError) as error:
        raise ProtocolError(f"{what} is not a valid date and time: {value!r} ({error})") from None


def _date(element: etree._Element, what: str) -> date:
    value = _text(element, what).strip()
    match = _DATE.fullmatch(value)
    if not match:
        raise ProtocolError(f"{what} is not an xs:date (YYYY-MM-DD): {_show(value)}")
    year, month, day, zone = match.groups()
    try:
        _zone(zone)
        return date(int(year), int(month), int(day))
    except (ValueError, OverflowError) as error:
        raise ProtocolError(f"{what} is not a valid date: {value!r} ({error})") from None


def _size(element: etree._Element) -> int:
    value = _text(element, "SizeInBytes").strip()
    if _INT.fullmatch(value) and value.startswith("-"):
        raise ProtocolError(f"SizeInBytes is negative: {value!r}")
    match = _UNSIGNED.fullmatch(value)
    if not match:
        raise ProtocolError(f"SizeInBytes is not a whole number: {_show(value)}")
    size = int(match.group(1))
    if size > _MAX_UNSIGNED_LONG:
        raise ProtocolError(f"SizeInBytes is larger than an xs:unsignedLong: {value}")
    return size


def _read_descriptor(element: etree._Element, strict: bool) -> FileDescriptor:
    """`FileDescriptor`: strict (a trigger) by the rules the portal writes by, except FileName;
    else (metadata) by READING_RULES."""
    children = _Children(
        element,
        "FileDescriptor",
        [
            ("FileName", 0, 1, 1),
            ("SizeInBytes", 1, 1, 1),
            ("Sender", 2, 1, 1),
            ("SendersFileId", 3, 0, 1),
            ("Recipients", 4, 1, 1 << 30),
        ],
    )
    read = _name if strict else _read
    sender_id = children.one("SendersFileId")
    return FileDescriptor(
        file_name=_read(children.one("FileName"), "FileName"),
        size=_size(children.one("SizeInBytes")),
        sender=read(children.one("Sender"), "Sender"),
        recipients=tuple(read(r, "Recipients") for r in children.all("Recipients")),
        senders_file_id=(
            _string(sender_id, "SendersFileId")
            if strict or sender_id is None
            else _read(sender_id, "SendersFileId")
        ),
    )


def _read_content(element: etree._Element, strict: bool) -> RoutingInfo | None:
    where = "FileContentDescriptor"
    if (element.text or "").strip():
        raise ProtocolError(f"{where} contains text {_show(element.text.strip())}")
    children = [child for child in element if isinstance(child.tag, str)]
    if not children:
        return None
    for child in children:
        name = etree.QName(child)
        if name.namespace not in (None, NAMESPACE):
            raise ProtocolError(
                f"{where} holds {name.localname} in the namespace {name.namespace!r}, which the "
                "contract's strict wildcard cannot validate; only SFTPDynamicRoutingInfo is read"
            )
    _Children(element, where, [("SFTPDynamicRoutingInfo", 0, 1, 1)])
    return _read_routing(children[0], strict)


def _read_routing(element: etree._Element, strict: bool) -> RoutingInfo:
    where = "SFTPDynamicRoutingInfo"
    children = _Children(
        element,
        where,
        [
            ("InfRef", 0, 1, 1),
            ("SenderIt-system", 1, 1, 1),
            ("SenderAuthority", 2, 1, 1),
            ("TransactionId", 3, 1, 1),
            ("SenderTimestamp", 4, 1, 1),
            ("RecipientIt-system", 5, 0, 1),
            ("RecipientAuthority", 6, 1, 1),
            ("RouteParameterList", 7, 0, 1),
        ],
    )
    recipient_it_system = children.one("RecipientIt-system")
    parameters = children.one("RouteParameterList")
    return RoutingInfo(
        infref=(_name if strict else _text)(children.one("InfRef"), "InfRef"),
        sender_it_system=_uuid(children.one("SenderIt-system"), "SenderIt-system"),
        sender_authority_cvr=_cvr(children.one("SenderAuthority"), "SenderAuthority"),
        transaction_id=_uuid(children.one("TransactionId"), "TransactionId"),
        sender_timestamp=_datetime(children.one("SenderTimestamp"), "SenderTimestamp"),
        recipient_it_system=(
            None
            if recipient_it_system is None
            else _uuid(recipient_it_system, "RecipientIt-system")
        ),
        recipient_authority_cvr=_cvr(children.one("RecipientAuthority"), "RecipientAuthority"),
        route_date=None if parameters is None else _read_route_date(parameters, strict),
    )


def _read_route_date(element: etree._Element, strict: bool) -> date | None:
    where = "RouteParameterList"
    children = _Children(element, where, [("RouteParameter", 0, 1, 1 << 30)])
    found = []
    for parameter in children.all("RouteParameter"):
        values = [child for child in parameter if isinstance(child.tag, str)]
        if len(values) != 1:
            raise ProtocolError(f"{where}/RouteParameter must hold exactly one element")
        name = etree.QName(values[0])
        if name.localname == "RouteSelectionValueDate" and name.namespace in (None, NAMESPACE):
            found.append(values[0])
    if not strict:
        return _one_date_or_none(found)
    if len(found) > 1:
        raise ProtocolError(f"{where} has more than one RouteSelectionValueDate")
    return _date(found[0], "RouteSelectionValueDate") if found else None


def _one_date_or_none(elements: list[etree._Element]) -> date | None:
    """The route date of metadata: the XSD skips a route parameter's content, and the date only
    informs, so anything but one readable date is no date."""
    if len(elements) != 1:
        return None
    try:
        return _date(elements[0], "RouteSelectionValueDate")
    except ProtocolError:
        return None


def _guarded(parse):
    """Whatever goes wrong while reading hostile input comes out as a ProtocolError."""

    @functools.wraps(parse)
    def wrapper(data: bytes):
        try:
            return parse(data)
        except ProtocolError:
            raise
        except (ValueError, TypeError, OverflowError, etree.LxmlError) as error:
            raise ProtocolError(f"unreadable document: {error}") from None

    return wrapper


@_guarded
def validate(data: bytes) -> None:
    """Check a document against contract/SFTPTypes.xsd (any of its root elements)."""
    root = _parse_xml(data)
    _xsd_check(root)


@_guarded
def parse_trigger(data: bytes) -> Trigger:
    """Read a trigger file (root `Trigger`)."""
    root = _parse_xml(data, "the trigger")
    _check_root(root, ("Trigger",))
    children = _Children(
        root, "Trigger", [("FileDescriptor", 0, 1, 1), ("FileContentDescriptor", 1, 1, 1)]
    )
    descriptor = _read_descriptor(children.one("FileDescriptor"), strict=True)
    routing = _read_content(children.one("FileContentDescriptor"), strict=True)
    _check_consistency(descriptor, routing)
    _xsd_check(root, "the trigger")
    return Trigger(descriptor=descriptor, routing=routing)


@_guarded
def parse_metadata(data: bytes) -> Metadata:
    """Read a metadata file: root `FileMetadata`, or `Trigger` with or without `FileTransferUUID`
    first (without it, file_transfer_uuid is None). Values are held to READING_RULES.

    `FileContentDescriptor` may be missing: the document is then validated as if it were empty.
    """
    root = _parse_xml(data, "the metadata")
    kind = _check_root(root, ("FileMetadata", "Trigger"))
    children = _Children(
        root,
        kind,
        [
            ("FileTransferUUID", 0, 1 if kind == "FileMetadata" else 0, 1),
            ("FileDescriptor", 1, 1, 1),
            ("FileContentDescriptor", 2, 0, 1),
        ],
    )
    found_uuid = children.one("FileTransferUUID")
    file_transfer_uuid = None if found_uuid is None else _file_transfer_uuid(found_uuid)
    descriptor = _read_descriptor(children.one("FileDescriptor"), strict=False)
    content = children.one("FileContentDescriptor")
    routing = None if content is None else _read_content(content, strict=False)
    _xsd_check(_as_contract_metadata(root, found_uuid is not None), "the metadata")
    return Metadata(file_transfer_uuid=file_transfer_uuid, descriptor=descriptor, routing=routing)


def _as_contract_metadata(root: etree._Element, has_uuid: bool) -> etree._Element:
    """The parsed metadata as the contract's document it stands for, to validate: a `Trigger`
    root with a `FileTransferUUID` holds exactly a `FileMetadata`, and a missing
    `FileContentDescriptor` is an empty one. Changes the tree read from the bytes, nothing else."""
    if has_uuid:
        root.tag = etree.QName(NAMESPACE, "FileMetadata").text
    if root.find("FileContentDescriptor") is None:
        etree.SubElement(root, "FileContentDescriptor")
    return root


@_guarded
def parse_receipt(data: bytes) -> Receipt:
    """Read a technical receipt (root `TechnicalReceipt`)."""
    root = _parse_xml(data, "the receipt")
    _check_root(root, ("TechnicalReceipt",))
    children = _Children(
        root,
        "TechnicalReceipt",
        [
            ("FileTransferUUID", 0, 1, 1),
            ("SendersFileId", 1, 0, 1),
            ("Receipt", 2, 0, 1),
            ("ErrorMessage", 2, 0, 1 << 30),
        ],
    )
    receipt, errors = children.one("Receipt"), children.all("ErrorMessage")
    if receipt is not None and errors:
        raise ProtocolError("TechnicalReceipt has both Receipt and ErrorMessage")
    if receipt is None and not errors:
        raise ProtocolError("TechnicalReceipt has neither Receipt nor ErrorMessage")
    file_transfer_uuid = _file_transfer_uuid(children.one("FileTransferUUID"))
    sender_id = children.one("SendersFileId")
    senders_file_id = None if sender_id is None else _text(sender_id, "SendersFileId")
    message = None
    if receipt is not None:
        parts = _Children(receipt, "Receipt", [("Message", 0, 1, 1)])
        message = _text(parts.one("Message"), "Receipt/Message")
    read_errors = []
    for error in errors:
        parts = _Children(
            error,
            "ErrorMessage",
            [
                ("ErrorCode", 0, 1, 1),
                ("ErrorCodeDescription", 1, 1, 1),
                ("ErrorDescription", 2, 1, 1),
            ],
        )
        code = _text(parts.one("ErrorCode"), "ErrorCode").strip()
        if not _INT.fullmatch(code):
            raise ProtocolError(f"ErrorCode is not a whole number: {_show(code)}")
        if not _INT32[0] <= int(code) <= _INT32[1]:
            raise ProtocolError(f"ErrorCode is outside the 32-bit range of xs:int: {code}")
        read_errors.append(
            ReceiptError(
                code=int(code),
                code_description=_text(parts.one("ErrorCodeDescription"), "ErrorCodeDescription"),
                description=_text(parts.one("ErrorDescription"), "ErrorDescription"),
            )
        )
    _xsd_check(root, "the receipt")
    success = message is not None and message.strip() == SUCCESS
    return Receipt(
        file_transfer_uuid=file_transfer_uuid,
        senders_file_id=senders_file_id,
        success=success,
        message=SUCCESS if success else message,
        errors=tuple(read_errors),
    )
