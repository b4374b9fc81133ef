"""Data specifications: versions, their compatibility rules, documents checked by content, pages.

Assertions read English text: each test chooses English, so the Danish catalogue may change
freely.
"""

import io
import socket
import zipfile
from pathlib import Path

import pytest
from django.contrib.admin.sites import site as admin_site
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import translation
from pypdf import PdfReader

from gdpr import workflow
from gdpr.forms import DeclarationForm
from portal.accounts.models import Organisation
from portal.onboarding.rules import create_integration
from portal.specs import documents
from portal.specs.compatibility import check_minor_compatible, validate_new_version
from portal.specs.diff import FieldSpec
from portal.specs.documents import Refused, inspect_document
from portal.specs.models import (
    DataSpecification,
    SpecificationDocument,
    SpecificationField,
    SpecificationVersion,
)
from portal.specs.versions import create_version
from tests.conftest import make_user
from tests.support.declarations import complete_answers
from tests.support.pdf import ONE_PAGE, pdf
from tests.support.specs import STRUCTURE, XSD, upload

V1_FIELDS = [
    FieldSpec("cpr", "cpr", True, "Borgerens CPR-nummer"),
    FieldSpec("navn", "string", True, "Fulde navn"),
    FieldSpec("telefon", "string", False, ""),
]


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


@pytest.fixture
def english_client(client_for):
    def login(user):
        client = client_for(user)
        client.cookies["django_language"] = "en"
        return client

    return login


@pytest.fixture
def integration(system_a, system_b, staff_a, aarhus):
    return create_integration(
        name="Alfa Omsorg til Beta Journal",
        sender=system_a,
        receiver=system_b,
        created_by=staff_a,
        municipalities=[aarhus],
    )


@pytest.fixture
def version_1(integration, staff_a):
    return create_version(
        integration, major=1, minor=0, structure=STRUCTURE, fields=V1_FIELDS, user=staff_a
    )


@pytest.fixture
def vendor_c(db):
    return Organisation.objects.create(kind="vendor", name="Gamma IT A/S", cvr="12345674")


@pytest.fixture
def staff_c(vendor_c):
    return make_user("staff-c", vendor_c)


@pytest.fixture
def listener():
    """A local server the hostile XML points at: it must never be connected to."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    yield server.getsockname()[1]
    try:
        connection, _address = server.accept()
    except BlockingIOError:
        pass
    else:
        connection.close()
        pytest.fail("The XML check connected to the network.")
    finally:
        server.close()


@pytest.fixture
def no_network(listener, monkeypatch):
    """Python's own sockets fail the test too; the listener catches libxml2's."""

    def refuse(*args, **kwargs):
        raise AssertionError("The check tried to use the network.")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return listener


# Minimal real documents, built here.

CONTENT_TYPES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="{part}" ContentType="{content_type}"/>
</Types>"""
RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Target="{target}"
 Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/>
</Relationships>"""
WORD_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
EXCEL_MAIN = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"


def zip_bytes(members: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return buffer.getvalue()


def marked_encrypted(data: bytes) -> bytes:
    """The archive with every member flagged as encrypted, as a password-protected one is."""
    data = bytearray(data)
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        while start != -1:
            data[start + flag_offset] |= 0x1
            start = data.find(signature, start + 4)
    return bytes(data)


def docx_bytes(**extra: bytes) -> bytes:
    return zip_bytes(
        {
            "[Content_Types].xml": CONTENT_TYPES.format(
                part="/word/document.xml", content_type=WORD_MAIN
            ),
            "_rels/.rels": RELS.format(target="word/document.xml"),
            "word/document.xml": (
                '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/'
                'main"><w:body><w:p><w:r><w:t>Dataspecifikation</w:t></w:r></w:p></w:body>'
                "</w:document>"
            ),
            **extra,
        }
    )


def xlsx_bytes() -> bytes:
    return zip_bytes(
        {
            "[Content_Types].xml": CONTENT_TYPES.format(
                part="/xl/workbook.xml", content_type=EXCEL_MAIN
            ),
            "_rels/.rels": RELS.format(target="xl/workbook.xml"),
            "xl/workbook.xml": (
                '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                '<sheets><sheet name="Felter" sheetId="1"/></sheets></workbook>'
            ),
        }
    )


PDF = ONE_PAGE
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)


def refusal(name: str, content: bytes) -> str:
    with pytest.raises(Refused) as refused:
        inspect_document(upload(name, content))
    return " ".join(refused.value.messages)


# Document checks


def test_a_pdf_is_accepted_with_its_size_and_hash():
    import hashlib

    inspection = inspect_document(upload("spec.pdf", PDF))
    assert inspection.kind == SpecificationDocument.Kind.PDF
    assert inspection.size == len(PDF)
    assert inspection.sha256 == hashlib.sha256(PDF).hexdigest()


def test_a_pdf_must_start_as_a_pdf_and_be_complete():
    assert "The file says .pdf but is not a PDF document." in refusal("spec.pdf", b"Hello")
    assert "cut short" in refusal("spec.pdf", PDF[:40])


def test_a_pdf_must_open_as_one():
    """The probe: a PDF/HTML polyglot passed on its first bytes and its %%EOF."""
    polyglot = (
        b"%PDF-1.4\n<html><body><script>alert(document.domain)</script></body></html>\n"
        b"trailer << /Root 1 0 R >>\n%%EOF\n"
    )
    assert "cannot be opened as a PDF" in refusal("spec.pdf", polyglot)
    assert "cannot be opened as a PDF" in refusal("spec.pdf", b"%PDF-1.7\n" + bytes(500) + b"%%EOF")
    assert "no pages" in refusal("spec.pdf", pdf(pages=0))
    assert "encrypted" in refusal("spec.pdf", pdf(password="hemmelig"))
    assert inspect_document(upload("spec.pdf", pdf(pages=3))).kind == "pdf"


def test_real_minimal_docx_and_xlsx_are_accepted():
    assert inspect_document(upload("Spec.DOCX", docx_bytes())).kind == "docx"
    assert inspect_document(upload("felter.xlsx", xlsx_bytes())).kind == "xlsx"


def test_a_png_posing_as_docx_is_refused():
    message = refusal("spec.docx", PNG)
    assert message == ("The file says .docx but is not a Word document. It looks like a PNG image.")


def test_a_plain_zip_posing_as_docx_is_refused():
    message = refusal("spec.docx", zip_bytes({"readme.txt": "hello"}))
    assert message.startswith("The file says .docx but is not a Word document.")
    assert "ZIP archive" in message


def test_the_extension_must_agree_with_the_content():
    assert "is not an Excel workbook" in refusal("spec.xlsx", docx_bytes())
    assert "is not a Word document" in refusal("spec.docx", xlsx_bytes())
    assert "is not a Word document" in refusal("spec.docx", PDF)
    assert "is not a PDF document" in refusal("spec.pdf", docx_bytes())


def test_an_encrypted_or_damaged_office_file_is_refused():
    assert "protected by a password" in refusal("spec.docx", marked_encrypted(docx_bytes()))
    damaged = docx_bytes()
    assert "is not a Word document" in refusal("spec.docx", damaged[: len(damaged) // 2])
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
    assert "old Office file" in refusal("spec.docx", ole)


def test_a_zip_bomb_is_refused_before_it_is_unpacked(monkeypatch):
    unpacked = []
    real_open = zipfile.ZipFile.open

    def watch(self, name, *args, **kwargs):
        unpacked.append(getattr(name, "filename", name))
        return real_open(self, name, *args, **kwargs)

    bomb = docx_bytes(**{"word/media/zeros.bin": bytes(50 * 1024 * 1024)})
    assert len(bomb) < 200 * 1024
    monkeypatch.setattr(zipfile.ZipFile, "open", watch)
    assert "possible zip bomb" in refusal("spec.docx", bomb)
    assert unpacked == []


def test_an_archive_that_unpacks_too_large_is_refused(monkeypatch):
    monkeypatch.setattr(documents, "MAX_UNCOMPRESSED_BYTES", 500)
    assert "possible zip bomb" in refusal("spec.docx", docx_bytes())


def test_an_oversized_file_is_refused_without_being_read():
    big = upload("spec.pdf", b"%PDF-" + bytes(documents.MAX_DOCUMENT_BYTES))
    with pytest.raises(Refused) as refused:
        inspect_document(big)
    assert "the limit is 20.0" in refused.value.messages[0]
    assert big.tell() == 0


def test_the_size_limit_holds_when_the_declared_size_is_missing(monkeypatch):
    monkeypatch.setattr(documents, "MAX_DOCUMENT_BYTES", 1000)
    stream = io.BytesIO(PDF + bytes(2000))
    with pytest.raises(Refused, match="the limit is"):
        inspect_document(stream, name="spec.pdf")


def test_an_empty_file_and_an_unknown_extension_are_refused():
    assert "empty" in refusal("spec.pdf", b"")
    assert "Only PDF, Word (.docx)" in refusal("setup.exe", b"MZ\x90\x00")
    assert "Only PDF" in refusal("spec", b"text")


def test_an_xsd_is_accepted():
    assert inspect_document(upload("borger.xsd", XSD)).kind == "xsd"


HOSTILE_XSD = [
    '<!DOCTYPE xs:schema SYSTEM "{url}/x.dtd"><xs:schema xmlns:xs="{xs}"/>',
    '<!DOCTYPE s [<!ENTITY e SYSTEM "{url}/e">]><xs:schema xmlns:xs="{xs}">&e;</xs:schema>',
    '<!DOCTYPE s [<!ENTITY e SYSTEM "file:///etc/passwd">]><xs:schema xmlns:xs="{xs}">&e;'
    "</xs:schema>",
    '<!DOCTYPE s [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><xs:schema xmlns:xs="{xs}">&c;</xs:schema>',
    '<!DOCTYPE s [<!ENTITY % p SYSTEM "{url}/p">%p;]><xs:schema xmlns:xs="{xs}"/>',
]


@pytest.mark.parametrize(
    "template",
    HOSTILE_XSD,
    ids=["external-dtd", "external-entity", "local-file-entity", "entity-expansion", "parameter"],
)
@pytest.mark.system  # the listener
def test_an_xsd_with_a_dtd_or_entities_is_refused_without_any_network(no_network, template):
    content = template.format(url=f"http://127.0.0.1:{no_network}", xs=documents.XSD_NAMESPACE)
    message = refusal("evil.xsd", f'<?xml version="1.0"?>{content}'.encode())
    assert message.startswith("The file says .xsd but is not an XML Schema (XSD).")
    assert "DTD or entities" in message


@pytest.mark.system  # the listener
def test_a_docx_whose_content_types_declare_a_dtd_is_refused(no_network):
    content_types = CONTENT_TYPES.format(part="/word/document.xml", content_type=WORD_MAIN)
    content_types = content_types.replace(
        "<Types", f'<!DOCTYPE Types SYSTEM "http://127.0.0.1:{no_network}/t.dtd"><Types'
    )
    hostile = docx_bytes(**{"[Content_Types].xml": content_types})
    assert "DTD or entities" in refusal("spec.docx", hostile)


def test_other_xml_or_broken_xml_is_not_an_xsd():
    assert "root element is not xs:schema" in refusal("x.xsd", b"<schema/>")
    assert "not well-formed XML (line 2)" in refusal("x.xsd", b"<a>\n<b></a>")
    assert "not well-formed" in refusal("x.xsd", PNG)


def test_json_schemas_good_and_bad():
    good = b'{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}'
    assert inspect_document(upload("borger.schema.json", good)).kind == "json_schema"
    assert inspect_document(upload("b.json", b'{"properties": {"cpr": {}}}')).kind
    assert "not valid JSON (line 1)" in refusal("b.json", b'{"type": ')
    assert "is an object with $schema" in refusal("b.json", b'["type"]')
    assert "is an object with $schema" in refusal("b.json", b'{"name": "borger"}')
    assert "not valid JSON" in refusal("b.json", b"[" * 100_000)
    assert "not UTF-8" in refusal("b.json", '{"type": "æ"}'.encode("latin-1"))


def test_csv_in_utf8_and_iso_8859_1_is_accepted():
    text = 'cpr;navn;by\n0101011234;Søren Ærø;"Århus; C"\n0202021234;Åse;Odense\n'
    assert inspect_document(upload("eks.csv", text.encode("utf-8"))).kind == "csv"
    assert inspect_document(upload("eks.csv", b"\xef\xbb\xbf" + text.encode())).kind == "csv"
    assert inspect_document(upload("eks.csv", text.encode("iso-8859-1"))).kind == "csv"
    tabbed = "cpr\tnavn\r\n0101011234\tSøren\r\n"
    assert inspect_document(upload("eks.csv", tabbed.encode("iso-8859-1"))).kind == "csv"


def test_csv_must_have_a_consistent_delimiter_and_be_text():
    ragged = b"cpr;navn;by\n0101011234;Soeren\n"
    assert "no consistent delimiter" in refusal("eks.csv", ragged)
    assert "no consistent delimiter" in refusal("eks.csv", b"just one column\nof words\n")
    late = b"a;b\n" + b"1;2\n" * 200 + b"1;2;3\n"
    assert "no consistent delimiter" in refusal("eks.csv", late)
    assert "not text in UTF-8 or ISO-8859-1" in refusal("eks.csv", b"a;b\n\x00\x01;\x02\n")
    assert "It looks like a PNG image" not in refusal("eks.csv", PNG)


def test_markdown_is_utf8_text_without_nul_bytes():
    assert inspect_document(upload("LÆSMIG.md", b"# Felter\n\n- cpr\n")).kind
    assert "NUL bytes" in refusal("x.md", b"# Felter\x00")
    assert "not UTF-8 text" in refusal("x.markdown", "Søren".encode("latin-1"))


# Compatibility and numbering


def test_a_minor_version_may_add_an_optional_field_at_the_end(version_1):
    fields = [*V1_FIELDS, FieldSpec("email", "string", False)]
    assert check_minor_compatible(version_1, fields) == []


def test_a_minor_version_may_relax_a_field_and_reword_it(version_1):
    fields = [V1_FIELDS[0], FieldSpec("navn", "string", False, "Navn"), V1_FIELDS[2]]
    assert check_minor_compatible(version_1, fields) == []


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (V1_FIELDS[:2], "The field telefon is removed."),
        (
            [V1_FIELDS[0], FieldSpec("navn", "integer", True), V1_FIELDS[2]],
            "The field navn changes type from Text to Integer.",
        ),
        ([*V1_FIELDS[:2], FieldSpec("telefon", "string", True)], "telefon becomes required."),
        (
            [*V1_FIELDS, FieldSpec("email", "string", True)],
            "The new field email is required; a field added in a minor version must be optional.",
        ),
        (
            [V1_FIELDS[0], FieldSpec("email", "string", False), *V1_FIELDS[1:]],
            "fields of 1.0 must keep their order, and new fields must come after them.",
        ),
    ],
    ids=["removed", "retyped", "newly-required", "new-required", "inserted-in-csv"],
)
def test_a_minor_version_must_not_break_files(version_1, fields, problem):
    problems = check_minor_compatible(version_1, fields)
    assert any(problem in each for each in problems), problems


def test_in_a_format_read_by_name_a_field_may_be_inserted_anywhere(integration, staff_a):
    version = create_version(
        integration,
        major=1,
        minor=0,
        structure={**STRUCTURE, "format": "json"},
        fields=V1_FIELDS,
        user=staff_a,
    )
    fields = [V1_FIELDS[0], FieldSpec("email", "string", False), *V1_FIELDS[1:]]
    assert check_minor_compatible(version, fields, structure={"format": "json"}) == []


def test_a_minor_version_keeps_format_encoding_and_delimiter(version_1):
    problems = check_minor_compatible(
        version_1, V1_FIELDS, structure={**STRUCTURE, "delimiter": ",", "encoding": "iso-8859-1"}
    )
    assert problems == [
        "The character encoding changes from UTF-8 to ISO-8859-1.",
        "The delimiter changes from Semicolon (;) to Comma (,).",
    ]


def test_an_incompatible_minor_version_is_refused_with_advice(version_1, staff_a):
    with pytest.raises(ValidationError) as refused:
        create_version(
            version_1.integration,
            major=1,
            minor=1,
            structure=STRUCTURE,
            fields=V1_FIELDS[:2],
            user=staff_a,
        )
    assert refused.value.messages == [
        "The field telefon is removed.",
        "Minor version 1.1 must be backward compatible with 1.0. "
        "Make these changes in a new major version, 2.0, or undo them.",
    ]
    assert SpecificationVersion.objects.count() == 1


def test_a_major_version_may_change_anything(version_1, staff_a):
    version = create_version(
        version_1.integration,
        major=2,
        minor=0,
        structure={**STRUCTURE, "format": "xml", "encoding": "iso-8859-1"},
        fields=[FieldSpec("navn", "integer", True), FieldSpec("ny", "date", True)],
        user=staff_a,
    )
    assert version.label == "2.0"
    assert version.delimiter == ""  # belongs to CSV only
    assert [f.name for f in version.fields.all()] == ["navn", "ny"]


@pytest.mark.parametrize(
    ("major", "minor", "message"),
    [
        (1, 0, "Version 1.0 already exists."),
        (1, 1, "Version 1.1 already exists."),
        (0, 9, "Version 0.9 is lower than the latest version, 1.1. Versions only go up."),
        (1, 0, "Version 1.0 already exists."),
    ],
)
def test_versions_only_go_up(version_1, staff_a, major, minor, message):
    create_version(
        version_1.integration, major=1, minor=1, structure=STRUCTURE, fields=V1_FIELDS, user=staff_a
    )
    with pytest.raises(ValidationError) as refused:
        validate_new_version(version_1.specification, major, minor, V1_FIELDS)
    assert refused.value.messages == [message]


def test_the_first_version_may_be_any_number_from_0_1(integration, staff_a):
    with pytest.raises(ValidationError, match=r"at least 0\.1"):
        validate_new_version(None, 0, 0, V1_FIELDS)
    version = create_version(
        integration, major=0, minor=1, structure=STRUCTURE, fields=V1_FIELDS, user=staff_a
    )
    assert version.label == "0.1"
    later = create_version(
        integration, major=0, minor=3, structure=STRUCTURE, fields=V1_FIELDS, user=staff_a
    )
    assert later.label == "0.3"


# The GDPR declaration follows new versions


@pytest.fixture
def declared_integration(integration, version_1, system_a, system_b, staff_a, operator, aarhus):
    infref_request = workflow.request_infref(
        it_system=system_a, description="Borgerdata til det nye system.", user=staff_a
    )
    infref = workflow.assign_infref(
        infref_request, name=workflow.proposed_infref_name(), user=operator
    )
    integration.infref = infref
    integration.save()
    draft = workflow.open_draft(infref, staff_a)
    form = DeclarationForm(complete_answers([aarhus], [system_b]), instance=draft)
    assert form.is_valid(), form.errors
    form.save()
    workflow.submit_declaration(draft, staff_a)
    return integration


def version_data(major, minor, fields, **structure) -> dict:
    data = {"major": major, "minor": minor, **STRUCTURE, **structure}
    data = {key: value for key, value in data.items() if value is not False}
    data.update(
        {
            "fields-TOTAL_FORMS": len(fields) + 1,  # and one empty row, left out
            "fields-INITIAL_FORMS": 0,
            "fields-MIN_NUM_FORMS": 0,
            "fields-MAX_NUM_FORMS": 1000,
        }
    )
    for index, field in enumerate(fields):
        data[f"fields-{index}-name"] = field.name
        data[f"fields-{index}-type"] = field.type
        data[f"fields-{index}-description"] = field.description
        data[f"fields-{index}-ORDER"] = index + 1
        if field.required:
            data[f"fields-{index}-required"] = "on"
    return data


def test_a_first_version_leaves_the_declaration_alone_a_minor_asks_a_major_outdates(
    declared_integration, english_client, staff_a, system_a, system_b, aarhus
):
    infref = declared_integration.infref
    client = english_client(staff_a)
    # A second integration under the same InfRef: its first version has nothing declared before.
    second = create_integration(
        name="Alfa Omsorg til Beta Journal, del 2",
        sender=system_a,
        receiver=system_b,
        created_by=staff_a,
        municipalities=[aarhus],
        infref=infref,
    )
    response = client.post(
        reverse("specs:version_create", args=[second.pk]), version_data(1, 0, V1_FIELDS)
    )
    assert response.status_code == 302, response.context["form"].errors
    declaration = infref.current_declaration()
    assert not declaration.is_outdated and declaration.renew_by is None

    url = reverse("specs:version_create", args=[declared_integration.pk])
    response = client.post(url, version_data(1, 1, [*V1_FIELDS, FieldSpec("email", "string")]))
    assert response.status_code == 302
    declaration = infref.current_declaration()
    assert not declaration.is_outdated
    assert declaration.renew_by and "now version 1.1" in declaration.renew_reason
    page = client.get(response["Location"]).content.decode()
    assert "submit a new one within 30 days; files may be sent until then" in page

    response = client.post(url, version_data(2, 0, V1_FIELDS[:2]))
    assert response.status_code == 302
    declaration = infref.current_declaration()
    assert declaration.is_outdated
    assert "now version 2.0" in declaration.outdated_reason
    page = client.get(response["Location"]).content.decode()
    assert "a new declaration must be submitted before files may be sent again" in page


def test_the_create_page_is_filled_in_from_the_latest_version(version_1, english_client, staff_a):
    page = english_client(staff_a).get(
        reverse("specs:version_create", args=[version_1.integration.pk])
    )
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="minor" value="1"' in html
    assert 'name="fields-2-name" value="telefon"' in html
    assert 'name="fields-INITIAL_FORMS" value="3"' in html


def test_an_incompatible_version_posted_is_refused_on_the_page(version_1, english_client, staff_a):
    url = reverse("specs:version_create", args=[version_1.integration.pk])
    response = english_client(staff_a).post(url, version_data(1, 1, V1_FIELDS[1:]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "The field cpr is removed." in html
    assert "Make these changes in a new major version, 2.0, or undo them." in html
    assert SpecificationVersion.objects.count() == 1


def test_more_rows_keeps_what_was_entered_and_judges_nothing(version_1, english_client, staff_a):
    url = reverse("specs:version_create", args=[version_1.integration.pk])
    data = {**version_data(1, 1, V1_FIELDS), "frequency": "", "add_rows": "1"}
    response = english_client(staff_a).post(url, data)
    html = response.content.decode()
    assert 'name="fields-TOTAL_FORMS" value="9"' in html
    assert 'value="telefon"' in html
    assert "The form has errors" not in html
    assert SpecificationVersion.objects.count() == 1


def test_duplicate_field_names_are_refused(integration, english_client, staff_a):
    url = reverse("specs:version_create", args=[integration.pk])
    fields = [*V1_FIELDS, FieldSpec("navn", "string")]
    response = english_client(staff_a).post(url, version_data(1, 0, fields))
    assert "The field navn is listed twice." in response.content.decode()
    assert not SpecificationVersion.objects.exists()


def test_a_version_with_documents_is_saved_in_one_go(integration, english_client, staff_a):
    url = reverse("specs:version_create", args=[integration.pk])
    data = {
        **version_data(1, 0, V1_FIELDS),
        "documents": [upload("Felter.docx", docx_bytes()), upload("borger.xsd", XSD)],
    }
    response = english_client(staff_a).post(url, data)
    assert response.status_code == 302
    version = SpecificationVersion.objects.get()
    assert sorted(d.kind for d in version.documents.all()) == ["docx", "xsd"]
    assert [(f.position, f.name, f.required) for f in version.fields.all()] == [
        (1, "cpr", True),
        (2, "navn", True),
        (3, "telefon", False),
    ]


def test_a_refused_document_refuses_the_version_and_leaves_nothing(
    integration, english_client, staff_a
):
    before = _stored_files()
    url = reverse("specs:version_create", args=[integration.pk])
    data = {
        **version_data(1, 0, V1_FIELDS),
        "documents": [upload("ok.xsd", XSD), upload("Felter.docx", PNG)],
    }
    response = english_client(staff_a).post(url, data)
    assert response.status_code == 200
    assert "Felter.docx: The file says .docx but is not a Word document." in (
        response.content.decode()
    )
    assert not DataSpecification.objects.exists()
    assert _stored_files() == before


def test_a_failure_after_files_were_written_removes_them(
    version_1, english_client, staff_a, monkeypatch
):
    def fail(integration, version, **how):
        raise RuntimeError("the hook failed")

    monkeypatch.setattr("portal.specs.versions.data_specification_changed", fail)
    before = _stored_files()
    with pytest.raises(RuntimeError):
        create_version(
            version_1.integration,
            major=1,
            minor=1,
            structure=STRUCTURE,
            fields=V1_FIELDS,
            user=staff_a,
            documents=[(upload("ok.xsd", XSD), inspect_document(upload("ok.xsd", XSD)))],
        )
    assert SpecificationVersion.objects.count() == 1
    assert not SpecificationDocument.objects.exists()
    assert _stored_files() == before


def _stored_files() -> set[str]:
    root = Path(default_storage.location) / "specifications"
    return {str(path) for path in root.rglob("*")} if root.exists() else set()


# Documents on an existing version


def test_documents_can_be_added_to_a_version_and_downloaded(
    version_1, english_client, staff_a, staff_b
):
    client = english_client(staff_a)
    response = client.post(
        reverse("specs:document_upload", args=[version_1.pk]),
        {"documents": [upload("eksempel.csv", "cpr;navn\n0101011234;Søren\n".encode())]},
    )
    assert response.status_code == 302
    document = version_1.documents.get()
    assert document.kind == "csv"
    assert document.original_name == "eksempel.csv"
    assert not document.file.name.endswith("eksempel.csv")  # a random name on disk
    page = client.get(reverse("specs:version", args=[version_1.pk])).content.decode()
    assert document.sha256 in page
    assert "eksempel.csv" in page

    download = english_client(staff_b).get(reverse("specs:document", args=[document.pk]))
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == "cpr;navn\n0101011234;Søren\n".encode()
    assert download["Content-Disposition"] == 'attachment; filename="eksempel.csv"'
    assert download["Content-Type"] == "text/csv"


def test_a_refused_upload_to_a_version_shows_why_and_stores_nothing(
    version_1, english_client, staff_a
):
    before = _stored_files()
    response = english_client(staff_a).post(
        reverse("specs:document_upload", args=[version_1.pk]),
        {"documents": [upload("noter.md", b"# Noter\x00")]},
    )
    assert response.status_code == 200
    assert "noter.md: The file says .md but is not Markdown text." in response.content.decode()
    assert not SpecificationDocument.objects.exists()
    assert _stored_files() == before


# Diff and export


@pytest.fixture
def three_versions(version_1, staff_a):
    integration = version_1.integration
    version_1_1 = create_version(
        integration,
        major=1,
        minor=1,
        structure={**STRUCTURE, "frequency": "Hver time"},
        fields=[
            V1_FIELDS[0],
            FieldSpec("navn", "string", True, "Fornavn og efternavn"),
            V1_FIELDS[2],
            FieldSpec("email", "string", False, "E-mailadresse"),
        ],
        user=staff_a,
    )
    version_2 = create_version(
        integration,
        major=2,
        minor=0,
        structure={**STRUCTURE, "format": "json", "delimiter": ""},
        fields=[
            FieldSpec("navn", "string", True, "Fornavn og efternavn"),
            FieldSpec("cpr", "string", False, "CPR som tekst"),
            FieldSpec("email", "string", False, "E-mailadresse"),
        ],
        user=staff_a,
    )
    return version_1, version_1_1, version_2


def test_the_diff_page_shows_added_removed_and_changed_fields(
    three_versions, english_client, staff_b
):
    old, _middle, new = three_versions
    url = reverse("specs:diff", args=[old.integration.pk])
    response = english_client(staff_b).get(url, {"from": old.pk, "to": new.pk})
    assert response.status_code == 200
    diff = response.context["diff"]
    assert [field.name for _pos, field in diff.fields.added] == ["email"]
    assert [field.name for _pos, field in diff.fields.removed] == ["telefon"]
    assert {change.name for change in diff.fields.changed} == {"cpr", "navn"}
    html = response.content.decode()
    assert "From version 1.0 to version 2.0" in html
    assert "CPR number → Text" in html
    assert "Required: Yes → No" in html
    assert "“Fulde navn” → “Fornavn og efternavn”" in html
    # cpr and navn swapped places: one of them is shown as moved.
    assert "Position: 1 → 2" in html or "Position: 2 → 1" in html
    assert "<code>telefon</code>" in html
    assert "File format" in html and "CSV" in html and "JSON" in html
    assert "Semicolon (;)" in html


def test_the_diff_page_compares_the_two_newest_by_default(three_versions, english_client, staff_a):
    _old, middle, new = three_versions
    response = english_client(staff_a).get(reverse("specs:diff", args=[new.integration.pk]))
    assert response.context["diff"].old == middle
    assert response.context["diff"].new == new


def test_the_diff_page_refuses_versions_of_another_specification(
    three_versions, english_client, staff_a, system_a, system_b
):
    other = create_integration(name="Anden", sender=system_a, receiver=system_b, created_by=staff_a)
    foreign = create_version(
        other, major=1, minor=0, structure=STRUCTURE, fields=V1_FIELDS, user=staff_a
    )
    old = three_versions[0]
    response = english_client(staff_a).get(
        reverse("specs:diff", args=[old.integration.pk]), {"from": old.pk, "to": foreign.pk}
    )
    assert response.status_code == 200
    assert response.context["diff"] is None
    assert response.context["form"].errors["to"]


def test_the_pdf_export_is_danish_and_lists_every_field(three_versions, client_for, architect):
    version = three_versions[1]
    response = client_for(architect).get(reverse("specs:version_pdf", args=[version.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == (
        'attachment; filename="dataspecifikation-Alfa-Omsorg-til-Beta-Journal-v1.1.pdf"'
    )
    reader = PdfReader(io.BytesIO(response.content))
    text = "".join(page.extract_text() for page in reader.pages)
    for name in ("cpr", "navn", "telefon", "email", "Fornavn og efternavn", "Hver time"):
        assert name in text
    assert "Alfa Omsorg til Beta Journal" in text
    assert "Aarhus" in text
    with translation.override("da"):
        assert translation.gettext("Fields") in text
        assert translation.gettext("Yes") in text  # Django's own catalogue: "Ja"
    assert "Ja" in text


# Access


def test_the_receiving_vendor_the_municipality_and_kombit_read(
    three_versions, english_client, staff_b, architect, operator
):
    version = three_versions[2]
    integration = version.integration
    urls = [
        reverse("specs:list"),
        reverse("specs:specification", args=[integration.pk]),
        reverse("specs:version", args=[version.pk]),
        reverse("specs:diff", args=[integration.pk]),
    ]
    for user in (staff_b, architect, operator):
        client = english_client(user)
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, (user, url)
            assert "Alfa Omsorg til Beta Journal" in response.content.decode()
        page = client.get(reverse("specs:version", args=[version.pk])).content.decode()
        assert "Add documents" not in page


def test_another_vendor_or_municipality_sees_nothing(
    three_versions, english_client, staff_c, odense, vendor_c
):
    version = three_versions[2]
    integration = version.integration
    document = SpecificationDocument.objects.create(
        version=version,
        file="specifications/x.pdf",
        original_name="x.pdf",
        kind="pdf",
        size=1,
        sha256="0" * 64,
        uploaded_by=version.created_by,
    )
    urls = [
        reverse("specs:specification", args=[integration.pk]),
        reverse("specs:version_create", args=[integration.pk]),
        reverse("specs:version", args=[version.pk]),
        reverse("specs:version_pdf", args=[version.pk]),
        reverse("specs:diff", args=[integration.pk]),
        reverse("specs:document", args=[document.pk]),
    ]
    for user in (staff_c, make_user("architect-odense", odense)):
        client = english_client(user)
        for url in urls:
            assert client.get(url).status_code == 404, (user, url)
        upload_url = reverse("specs:document_upload", args=[version.pk])
        assert client.post(upload_url, {"documents": [upload("a.md", b"#")]}).status_code == 404
        listing = client.get(reverse("specs:list")).content.decode()
        assert "Alfa Omsorg til Beta Journal" not in listing


def test_only_the_sending_vendor_creates_versions_and_adds_documents(
    version_1, english_client, staff_a, staff_b, operator
):
    integration = version_1.integration
    create_url = reverse("specs:version_create", args=[integration.pk])
    upload_url = reverse("specs:document_upload", args=[version_1.pk])
    for user in (staff_b, operator):
        client = english_client(user)
        assert client.get(create_url).status_code == 403
        assert client.post(create_url, version_data(1, 1, V1_FIELDS)).status_code == 403
        response = client.post(upload_url, {"documents": [upload("a.md", b"# a")]})
        assert response.status_code == 403
    assert SpecificationVersion.objects.count() == 1
    assert not SpecificationDocument.objects.exists()
    client = english_client(staff_a)
    assert client.get(create_url).status_code == 200
    page = client.get(reverse("specs:specification", args=[integration.pk])).content.decode()
    assert "Create a new version" in page


def test_pages_need_a_login(version_1, client):
    response = client.get(reverse("specs:version", args=[version_1.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(
    "model",
    [DataSpecification, SpecificationVersion, SpecificationField, SpecificationDocument],
    ids=lambda model: model.__name__,
)
def test_every_model_is_in_the_admin(client_for, superuser, version_1, model):
    assert model in admin_site._registry
    client = client_for(superuser)
    meta = model._meta
    changelist = client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
    assert changelist.status_code == 200
    instance = model.objects.first()
    if instance is not None:
        change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[instance.pk])
        assert client.get(change).status_code == 200
    # Versions and documents are made in the portal, where the rules and checks run.
    add = client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_add"))
    assert add.status_code == 403


def test_a_tab_delimiter_survives_the_form(integration, english_client, staff_a):
    url = reverse("specs:version_create", args=[integration.pk])
    response = english_client(staff_a).post(url, version_data(1, 0, V1_FIELDS, delimiter="\t"))
    assert response.status_code == 302
    assert SpecificationVersion.objects.get().delimiter == "\t"


def test_a_csv_needs_a_delimiter_and_other_formats_drop_it(integration, english_client, staff_a):
    url = reverse("specs:version_create", args=[integration.pk])
    client = english_client(staff_a)
    response = client.post(url, version_data(1, 0, V1_FIELDS, delimiter=""))
    assert "A CSV file needs a delimiter." in response.content.decode()
    response = client.post(url, version_data(1, 0, V1_FIELDS, format="xml"))
    assert response.status_code == 302
    assert SpecificationVersion.objects.get().delimiter == ""


def test_an_archive_announcing_too_many_members_is_refused_before_zipfile_reads_them(
    monkeypatch,
):
    four_members = docx_bytes(**{"word/styles.xml": b"<styles/>"})
    monkeypatch.setattr(documents, "MAX_ZIP_MEMBERS", 3)
    opened = []
    monkeypatch.setattr(zipfile, "ZipFile", lambda *args, **kwargs: opened.append(args))
    assert "possible zip bomb" in refusal("spec.docx", four_members)
    assert opened == []


def test_empty_rows_as_a_browser_posts_them_are_skipped(integration, english_client, staff_a):
    """A browser posts every row's type select, filled in or not: the empty rows stay empty."""
    data = version_data(1, 0, V1_FIELDS)
    data["fields-TOTAL_FORMS"] = len(V1_FIELDS) + 2
    for empty in (len(V1_FIELDS), len(V1_FIELDS) + 1):
        data[f"fields-{empty}-type"] = "string"
        data[f"fields-{empty}-name"] = ""
        data[f"fields-{empty}-ORDER"] = ""
    response = english_client(staff_a).post(
        reverse("specs:version_create", args=[integration.pk]), data
    )
    assert response.status_code == 302, response.content.decode()
    version = integration.data_specification.latest_version()
    assert [field.name for field in version.fields.all()] == [f.name for f in V1_FIELDS]

    # A row with a description and no name is a field without a name, not an empty row.
    data = version_data(1, 1, V1_FIELDS)
    data["fields-TOTAL_FORMS"] = len(V1_FIELDS) + 1
    data[f"fields-{len(V1_FIELDS)}-type"] = "string"
    data[f"fields-{len(V1_FIELDS)}-description"] = "Telefonnummer"
    response = english_client(staff_a).post(
        reverse("specs:version_create", args=[integration.pk]), data
    )
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
