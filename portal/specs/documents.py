"""What an uploaded specification document is, judged by its content and not only by its name.

`inspect_document` reads the upload in bounded pieces, never whole beyond what a check needs,
and either returns what the file is (kind, size, SHA-256) or raises a ValidationError that tells
the user, in their language, why the file is refused. The extension names the kind the file
claims to be; the content must agree. Nothing is stored here: a refused file leaves nothing.
"""

import codecs
import csv
import hashlib
import json
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePath
from typing import BinaryIO

from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from lxml import etree
from pypdf import PdfReader

from portal.specs.models import SpecificationDocument

Kind = SpecificationDocument.Kind

MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
# A DOCX or XLSX is a ZIP archive. Its members' sizes are read from the archive's directory and
# checked before anything is unpacked, so a small file cannot unpack to fill memory or disk.
MAX_UNCOMPRESSED_BYTES = 100 * 1024 * 1024
MAX_COMPRESSION_RATIO = 100
MAX_ZIP_MEMBERS = 2000
# Below this, a member's compression ratio says nothing.
SMALL_UNPACKED_BYTES = 1024 * 1024
# [Content_Types].xml lists the parts of the package: a few kilobytes in practice.
MAX_CONTENT_TYPES_BYTES = 1024 * 1024
# Text kinds are decoded as they are read; a JSON Schema must be parsed whole.
CHUNK_BYTES = 64 * 1024
CSV_DELIMITERS = (";", ",", "\t", "|")
# Enough records to find the delimiter; every record is then checked against it.
CSV_SAMPLE_RECORDS = 50

XSD_NAMESPACE = "http://www.w3.org/2001/XMLSchema"
CONTENT_TYPES_NAMESPACE = "http://schemas.openxmlformats.org/package/2006/content-types"
OFFICE_MAIN_PARTS = {
    Kind.DOCX: (
        "/word/document.xml",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
    ),
    Kind.XLSX: (
        "/xl/workbook.xml",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
    ),
}

EXTENSIONS = {
    ".pdf": Kind.PDF,
    ".docx": Kind.DOCX,
    ".xlsx": Kind.XLSX,
    ".csv": Kind.CSV,
    ".xsd": Kind.XSD,
    ".json": Kind.JSON_SCHEMA,
    ".md": Kind.MARKDOWN,
    ".markdown": Kind.MARKDOWN,
}

# What a file that is not what it says often really is, by its first bytes.
_SIGNATURES = (
    (b"%PDF-", gettext_lazy("It looks like a PDF document.")),
    (b"PK\x03\x04", gettext_lazy("It looks like a ZIP archive.")),
    (b"PK\x05\x06", gettext_lazy("It looks like a ZIP archive.")),
    (b"\x89PNG\r\n\x1a\n", gettext_lazy("It looks like a PNG image.")),
    (b"\xff\xd8\xff", gettext_lazy("It looks like a JPEG image.")),
    (b"GIF8", gettext_lazy("It looks like a GIF image.")),
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        gettext_lazy(
            "It looks like an old Office file (.doc or .xls), or one protected by a password."
        ),
    ),
    (b"MZ", gettext_lazy("It looks like a program.")),
    (b"\x7fELF", gettext_lazy("It looks like a program.")),
)


class Refused(ValidationError):
    """The file is not accepted; the message says why."""


@dataclass(frozen=True)
class Inspection:
    kind: str
    size: int
    sha256: str


def accepted_extensions() -> list[str]:
    return sorted(EXTENSIONS)


def inspect_document(upload, name: str | None = None) -> Inspection:
    """Check an upload (a Django UploadedFile, or any seekable binary file) by its content."""
    name = name if name is not None else upload.name
    extension = PurePath(name or "").suffix.lower()
    claimed = EXTENSIONS.get(extension)
    if claimed is None:
        raise Refused(
            _(
                "Only PDF, Word (.docx), Excel (.xlsx), CSV, XSD, JSON Schema (.json) and "
                "Markdown (.md) files are accepted."
            ),
            code="extension",
        )
    declared_size = getattr(upload, "size", None)
    if declared_size is not None and declared_size > MAX_DOCUMENT_BYTES:
        raise _too_large(declared_size)
    size, sha256 = _measure(upload)
    if size == 0:
        raise Refused(_("The file is empty."), code="empty")
    upload.seek(0)
    head = upload.read(16)
    upload.seek(0)
    try:
        CHECKS[claimed](upload, size)
    except _NotThatKind as error:
        raise Refused(
            _not_that_kind(claimed, extension, head, error.detail), code="content"
        ) from error
    finally:
        upload.seek(0)
    return Inspection(kind=claimed, size=size, sha256=sha256)


class _NotThatKind(Exception):
    """The content is not the kind the extension claims; `detail` may say more."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail


def _too_large(size: int) -> Refused:
    return Refused(
        _("The file is %(size)s; the limit is %(limit)s.")
        % {"size": filesizeformat(size), "limit": filesizeformat(MAX_DOCUMENT_BYTES)},
        code="size",
    )


def _measure(upload) -> tuple[int, str]:
    """The real size and SHA-256, read in chunks; refused as soon as it passes the limit."""
    digest = hashlib.sha256()
    size = 0
    upload.seek(0)
    for chunk in _chunks(upload):
        size += len(chunk)
        if size > MAX_DOCUMENT_BYTES:
            raise _too_large(size)
        digest.update(chunk)
    return size, digest.hexdigest()


def _chunks(file: BinaryIO) -> Iterator[bytes]:
    while chunk := file.read(CHUNK_BYTES):
        yield chunk


def _not_that_kind(claimed: str, extension: str, head: bytes, detail: str) -> str:
    messages = {
        Kind.PDF: _("The file says %(extension)s but is not a PDF document."),
        Kind.DOCX: _("The file says %(extension)s but is not a Word document."),
        Kind.XLSX: _("The file says %(extension)s but is not an Excel workbook."),
        Kind.CSV: _("The file says %(extension)s but is not a CSV file."),
        Kind.XSD: _("The file says %(extension)s but is not an XML Schema (XSD)."),
        Kind.JSON_SCHEMA: _("The file says %(extension)s but is not a JSON Schema."),
        Kind.MARKDOWN: _("The file says %(extension)s but is not Markdown text."),
    }
    message = messages[claimed] % {"extension": extension}
    if detail:
        return f"{message} {detail}"
    actual = _looks_like(head)
    if actual:
        return f"{message} {actual}"
    return message


def _looks_like(head: bytes) -> str:
    for signature, description in _SIGNATURES:
        if head.startswith(signature):
            return str(description)
    return ""


# PDF


def check_pdf(file: BinaryIO, size: int) -> None:
    """A PDF opens as one in a PDF library, with its catalog and at least one page.

    Its first bytes alone would let through any file that starts with %PDF-, such as a PDF/HTML
    polyglot: HTML that a browser could be led to run.
    """
    if file.read(5) != b"%PDF-":
        raise _NotThatKind()
    # A complete PDF ends with %%EOF, perhaps followed by a little padding.
    file.seek(max(0, size - 4096))
    if b"%%EOF" not in file.read(4096):
        raise _NotThatKind(_("It is cut short: the end of the PDF is missing."))
    file.seek(0)
    try:
        reader = PdfReader(file, strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise _NotThatKind(_encrypted_message())
        pages = len(reader.pages)
    except _NotThatKind:
        raise
    # The parser's failures on a damaged or forged file are not a closed set (PdfReadError,
    # KeyError, ValueError, RecursionError, ...); any of them means it is not a readable PDF.
    except Exception as error:
        raise _NotThatKind(_("It is damaged: it cannot be opened as a PDF.")) from error
    if pages == 0:
        raise _NotThatKind(_("It has no pages."))


# DOCX and XLSX


def _office_check(kind: str) -> Callable[[BinaryIO, int], None]:
    part_name, content_type = OFFICE_MAIN_PARTS[kind]

    def check(file: BinaryIO, size: int) -> None:
        if file.read(4) != b"PK\x03\x04":
            raise _NotThatKind()
        if _declared_members(file, size) > MAX_ZIP_MEMBERS:
            raise _NotThatKind(_zip_bomb_message())
        file.seek(0)
        try:
            with zipfile.ZipFile(file) as archive:
                members = _safe_members(archive, size)
                if "[Content_Types].xml" not in members:
                    raise _NotThatKind()
                content_types = _read_member(archive, "[Content_Types].xml")
                if not _declares_part(content_types, part_name, content_type):
                    raise _NotThatKind()
                if part_name.lstrip("/") not in members:
                    raise _NotThatKind(_("Its main part is missing."))
                _verify_all(archive)
        except RuntimeError as error:  # zipfile's word for "encrypted"
            raise _NotThatKind(_encrypted_message()) from error
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError) as error:
            raise _NotThatKind(_damaged_message()) from error

    return check


def _declared_members(file: BinaryIO, size: int) -> int:
    """How many members the archive's end record announces, read before zipfile reads them all.

    zipfile builds an object for every entry of the directory as it opens an archive; counted
    first, a directory of a million tiny entries is refused before it fills memory.
    """
    tail = min(size, 22 + 65535)  # the end record, and a comment of at most 64 KiB
    file.seek(size - tail)
    data = file.read(tail)
    end = data.rfind(b"PK\x05\x06")
    if end == -1 or end + 12 > len(data):
        raise _NotThatKind(_damaged_message())
    # 0xFFFF says the real count is in a ZIP64 record: no Office file this small needs one.
    return int.from_bytes(data[end + 10 : end + 12], "little")


def _encrypted_message() -> str:
    return _("It is encrypted or protected by a password; upload it without protection.")


def _safe_members(archive: zipfile.ZipFile, archive_size: int) -> dict[str, zipfile.ZipInfo]:
    """The members by name, once the directory shows the archive is safe to unpack."""
    infos = archive.infolist()
    if len(infos) > MAX_ZIP_MEMBERS:
        raise _NotThatKind(_zip_bomb_message())
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise _NotThatKind(_encrypted_message())
        # Office writes members stored or deflated; any other method is not an Office file.
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _NotThatKind(_damaged_message())
        total += info.file_size
        if _suspicious(info.file_size, info.compress_size):
            raise _NotThatKind(_zip_bomb_message())
    if total > MAX_UNCOMPRESSED_BYTES or _suspicious(total, archive_size):
        raise _NotThatKind(_zip_bomb_message())
    return {info.filename: info for info in infos}


def _suspicious(unpacked: int, packed: int) -> bool:
    # Small XML parts may compress very well; a large one that does is a bomb.
    return unpacked > SMALL_UNPACKED_BYTES and unpacked > max(packed, 1) * MAX_COMPRESSION_RATIO


def _damaged_message() -> str:
    return _("It is damaged: its ZIP structure cannot be read.")


def _zip_bomb_message() -> str:
    return _(
        "It unpacks to more than %(limit)s, or is compressed suspiciously hard, and is refused "
        "as a possible zip bomb."
    ) % {"limit": filesizeformat(MAX_UNCOMPRESSED_BYTES)}


def _read_member(archive: zipfile.ZipFile, name: str) -> bytes:
    with archive.open(name) as member:
        data = member.read(MAX_CONTENT_TYPES_BYTES + 1)
    if len(data) > MAX_CONTENT_TYPES_BYTES:
        raise _NotThatKind(_zip_bomb_message())
    return data


def _verify_all(archive: zipfile.ZipFile) -> None:
    """Unpack every member in chunks, counting what comes out: the CRCs find damage.

    zipfile stops each member at the size its directory entry declares, so a lying entry
    cannot unpack more than the totals checked before.
    """
    unpacked = 0
    for info in archive.infolist():
        with archive.open(info) as member:
            while chunk := member.read(CHUNK_BYTES):
                unpacked += len(chunk)
                if unpacked > MAX_UNCOMPRESSED_BYTES:
                    raise _NotThatKind(_zip_bomb_message())


def _declares_part(content_types: bytes, part_name: str, content_type: str) -> bool:
    found = False

    def start(element) -> None:
        nonlocal found
        if (
            element.tag == f"{{{CONTENT_TYPES_NAMESPACE}}}Override"
            and element.get("PartName", "").lower() == part_name
            and element.get("ContentType", "").strip() == content_type
        ):
            found = True

    try:
        _parse_xml([content_types], start)
    except _UnsafeXml as error:
        raise _NotThatKind(str(error)) from error
    except etree.XMLSyntaxError:
        return False
    return found


# XML, safely: lxml never goes on the network, loads no DTD and expands no entity; a document that
# declares a DTD at all is refused, since a specification's schema has no need of one.


class _UnsafeXml(Exception):
    pass


def _dtd_message() -> str:
    return _("It declares a DTD or entities, which are not accepted for safety's sake.")


class _NothingFetched(etree.Resolver):
    """Should the parser still ask for an external resource, it gets nothing."""

    def resolve(self, system_url, public_id, context):
        return self.resolve_string("", context)


def _parse_xml(chunks: Iterable[bytes], on_start: Callable | None = None) -> str:
    """Parse XML from chunks of bytes, calling `on_start(element)`; return the root's tag.

    Elements are cleared as they end, so a large document does not build a large tree.
    """
    parser = etree.XMLPullParser(
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
    )
    parser.resolvers.add(_NothingFetched())
    root_tag = None

    def handle_events() -> None:
        nonlocal root_tag
        for event, element in parser.read_events():
            if root_tag is None:
                docinfo = element.getroottree().docinfo
                if docinfo.doctype or docinfo.internalDTD is not None:
                    raise _UnsafeXml(_dtd_message())
                root_tag = element.tag
            if event == "start" and on_start is not None:
                on_start(element)
            elif event == "end":
                element.clear(keep_tail=True)

    for chunk in chunks:
        parser.feed(chunk)
        handle_events()
    parser.close()
    handle_events()
    return root_tag or ""


def check_xsd(file: BinaryIO, size: int) -> None:
    try:
        root = _parse_xml(_chunks(file))
    except _UnsafeXml as error:
        raise _NotThatKind(str(error)) from error
    except etree.XMLSyntaxError as error:
        raise _NotThatKind(
            _("It is not well-formed XML (line %(line)s).") % {"line": error.lineno}
        ) from error
    if root != f"{{{XSD_NAMESPACE}}}schema":
        raise _NotThatKind(
            _("Its root element is not xs:schema in the namespace %(namespace)s.")
            % {"namespace": XSD_NAMESPACE}
        )


# Text kinds


def _decode(file: BinaryIO, encoding: str) -> Iterator[str]:
    """Text from the file in chunks; UnicodeDecodeError if it is not in `encoding`."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    for chunk in _chunks(file):
        yield decoder.decode(chunk)
    yield decoder.decode(b"", final=True)


def _lines(text: Iterator[str]) -> Iterator[str]:
    """Lines with their line ends, as the csv module wants them."""
    pending = ""
    for piece in text:
        pending += piece
        *complete, pending = pending.split("\n")
        for line in complete:
            yield line + "\n"
    if pending:
        yield pending


# C0 controls other than tab, line feed and carriage return: a text file has none.
_C0 = {chr(code) for code in range(32)} - {"\t", "\n", "\r"}
# ISO-8859-1 decodes any byte, so text in it is told from binary by having no C1 controls either.
_C1 = {chr(code) for code in range(0x80, 0xA0)}


def _text_encoding(file: BinaryIO) -> str:
    """utf-8-sig or iso-8859-1, whichever the whole file is text in; _NotThatKind if neither."""
    for encoding, forbidden in (("utf-8-sig", _C0), ("iso-8859-1", _C0 | _C1)):
        file.seek(0)
        try:
            if not any(forbidden.intersection(text) for text in _decode(file, encoding)):
                return encoding
        except UnicodeDecodeError:
            continue
    raise _NotThatKind(_("It is not text in UTF-8 or ISO-8859-1."))


def check_csv(file: BinaryIO, size: int) -> None:
    encoding = _text_encoding(file)
    file.seek(0)
    delimiter = _find_delimiter(_lines(_decode(file, encoding)))
    file.seek(0)
    try:
        counts = {
            len(record)
            for record in csv.reader(_lines(_decode(file, encoding)), delimiter=delimiter)
            if record
        }
    except csv.Error as error:
        raise _NotThatKind(_inconsistent_csv_message()) from error
    if len(counts) != 1:
        raise _NotThatKind(_inconsistent_csv_message())


def _find_delimiter(lines: Iterator[str]) -> str:
    sample = []
    for line in lines:
        if line.strip():
            sample.append(line)
        if len(sample) >= CSV_SAMPLE_RECORDS:
            break
    best, best_columns = None, 1
    for delimiter in CSV_DELIMITERS:
        try:
            counts = {len(record) for record in csv.reader(sample, delimiter=delimiter) if record}
        except csv.Error:
            continue
        if len(counts) == 1 and (columns := counts.pop()) > best_columns:
            best, best_columns = delimiter, columns
    if best is None:
        raise _NotThatKind(_inconsistent_csv_message())
    return best


def _inconsistent_csv_message() -> str:
    return _(
        "It has no consistent delimiter: every line must have the same number of fields, "
        "separated by semicolons, commas, tabs or vertical bars."
    )


def check_json_schema(file: BinaryIO, size: int) -> None:
    # Parsed whole: a JSON document has no end before its last byte. It is within the limit.
    try:
        schema = json.loads(file.read(size + 1).decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise _NotThatKind(_("It is not UTF-8 text.")) from error
    except json.JSONDecodeError as error:
        raise _NotThatKind(
            _("It is not valid JSON (line %(line)s).") % {"line": error.lineno}
        ) from error
    except (ValueError, RecursionError) as error:
        raise _NotThatKind(_("It is not valid JSON.")) from error
    if not isinstance(schema, dict) or not (
        isinstance(schema.get("$schema"), str) or "type" in schema or "properties" in schema
    ):
        raise _NotThatKind(
            _("A JSON Schema is an object with $schema, or with type or properties.")
        )


def check_markdown(file: BinaryIO, size: int) -> None:
    try:
        for text in _decode(file, "utf-8-sig"):
            if "\x00" in text:
                raise _NotThatKind(_("It contains NUL bytes, so it is not text."))
    except UnicodeDecodeError as error:
        raise _NotThatKind(_("It is not UTF-8 text.")) from error


CHECKS: dict[str, Callable[[BinaryIO, int], None]] = {
    Kind.PDF: check_pdf,
    Kind.DOCX: _office_check(Kind.DOCX),
    Kind.XLSX: _office_check(Kind.XLSX),
    Kind.CSV: check_csv,
    Kind.XSD: check_xsd,
    Kind.JSON_SCHEMA: check_json_schema,
    Kind.MARKDOWN: check_markdown,
}
