import datetime as dt
import io
import re
import socket

import pytest
from django.conf import settings
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext
from pypdf import PdfReader
from weasyprint import HTML

from gdpr.models import GdprDeclaration, InfRef
from gdpr.pdf import (
    ContentHashMismatch,
    LocalFileFetcher,
    RefusedURL,
    declaration_pdf_filename,
    render_declaration_pdf,
)

INFREF = "FagsystemdefineredeDataRefGDPR1203_1"
A4 = (595.28, 841.89)
SUBMITTED_AT = dt.datetime(2025, 3, 14, 9, 30, tzinfo=dt.UTC)
OUTDATED_REASON = (
    "Dataspecifikation 2.0 tilføjer sundhedsoplysninger om børn i dagpleje; "
    "erklæringen skal derfor fornyes før næste overførsel."
)


def _paragraphs(topic: str, count: int) -> str:
    """Several long paragraphs, each sentence numbered so each can be found in the PDF."""
    return "\n\n".join(
        " ".join(
            f"{topic} afsnit {p} sætning {s}: kommunens sagsbehandlere i Århus og Ærø "
            f"modtager oplysningerne, og støtten vurderes løbende på grundlag af dem."
            for s in range(1, 6)
        )
        for p in range(1, count + 1)
    )


ANSWERS = {
    "purpose": _paragraphs("Formål", 5),
    "data_subject_categories": _paragraphs("Registrerede", 2),
    "personal_data_categories": _paragraphs("Oplysningstyper", 3),
    "includes_cpr": True,
    "includes_special_categories": True,
    "special_categories_detail": "Helbredsoplysninger om hjemmehjælp og sygepleje.",
    "includes_criminal_offence_data": True,
    "criminal_offence_detail": "Domme om vold mod personale, når de har betydning for besøg.",
    "legal_basis_art6": ["c", "e"],
    "legal_basis_art9": ["h", "g"],
    "legal_basis_detail": _paragraphs("Lovgrundlag", 2),
    "dpa_title": "Databehandleraftale om Alfa Omsorg, bilag 3 (sikkerhed og sletning)",
    "dpa_signed_on": dt.date(2024, 11, 1),
    "data_specification_version": "2.3",
    "retention": _paragraphs("Opbevaring", 2),
    "deletion": _paragraphs("Sletning", 2),
    "security_measures": _paragraphs("Sikkerhed", 3),
    "transfer_frequency": GdprDeclaration.Frequency.DAILY,
    "transfer_volume": "Omkring 2.000 poster, 5 MB pr. kommune pr. døgn",
    "contact_name": "Søren Ørnsholt Åberg",
    "contact_email": "soren.aberg@alfa.example",
    "contact_phone": "+45 87 65 43 21",
    "signatory_name": "Birgitte Kjærsgaard",
    "signatory_title": "Direktør for databeskyttelse",
    "signed_on": dt.date(2025, 3, 13),
}


@pytest.fixture
def infref(system_a, operator):
    return InfRef.objects.create(name=INFREF, it_system=system_a, assigned_by=operator)


@pytest.fixture
def make_declaration(infref, staff_a, aarhus, odense, system_b):
    def make(*, version=2, submitted=True, **answers):
        declaration = GdprDeclaration.objects.create(
            infref=infref, version=version, created_by=staff_a, **{**ANSWERS, **answers}
        )
        # Parties are set while it is a draft; submission locks them.
        declaration.controllers.set([aarhus, odense])
        declaration.receiving_it_systems.set([system_b])
        if submitted:
            declaration.status = GdprDeclaration.Status.SUBMITTED
            declaration.submitted_by = staff_a
            declaration.submitted_at = SUBMITTED_AT
            declaration.submitted_content = declaration.live_content()
            declaration.content_sha256 = declaration.compute_sha256()
            declaration.save(
                update_fields=[
                    "status",
                    "submitted_by",
                    "submitted_at",
                    "submitted_content",
                    "content_sha256",
                ]
            )
        return declaration

    return make


def _body_text(reader: PdfReader) -> str:
    """The text inside the page margins, so running headers and footers do not split answers."""
    parts = []

    def visit(text, cm, tm, font, size):
        y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
        if 60 < y < 770:
            parts.append(text)

    for page in reader.pages:
        page.extract_text(visitor_text=visit)
    return "".join(parts)


def _squash(text: str) -> str:
    # pypdf breaks lines where the layout did, and may put list bullets drawn later amid the
    # text; without whitespace and bullets, wrapped text compares whole.
    return re.sub(r"[\s•]+", "", text)


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _render(declaration) -> PdfReader:
    return PdfReader(io.BytesIO(render_declaration_pdf(declaration)))


def _danish(message: str) -> str:
    with translation.override("da"):
        return gettext(message)


def test_a_full_declaration_shows_every_answer(make_declaration, vendor_a, system_a, system_b):
    declaration = make_declaration()
    reader = _render(declaration)
    body = _squash(_body_text(reader))
    everything = _squash("".join(page.extract_text() for page in reader.pages))

    assert INFREF in body
    with translation.override("da"):
        expected = [
            # The frequency is a stored code; its label is what the PDF shows.
            *(
                value
                for name, value in ANSWERS.items()
                if isinstance(value, str) and name != "transfer_frequency"
            ),
            *(str(dict(GdprDeclaration.ART6_BASES)[code]) for code in ANSWERS["legal_basis_art6"]),
            *(str(dict(GdprDeclaration.ART9_BASES)[code]) for code in ANSWERS["legal_basis_art9"]),
            declaration.get_transfer_frequency_display(),
            date_format(ANSWERS["dpa_signed_on"], "DATE_FORMAT"),
            date_format(ANSWERS["signed_on"], "DATE_FORMAT"),
            date_format(timezone.localtime(SUBMITTED_AT), "DATETIME_FORMAT"),
            gettext("Yes"),
        ]
    for value in expected:
        assert _squash(value) in body, value
    for party in declaration.content()["controllers"]:
        assert _squash(party["name"]) in body
        assert party["cvr"] in body
        assert party["municipality_code"] in body
    assert _squash(vendor_a.name) in body
    assert vendor_a.cvr in body
    assert str(system_a.uuid) in body
    assert str(system_b.uuid) in body
    assert _squash(system_b.vendor.name) in body
    assert "Ada" in body  # submitted by
    # Every page carries the InfRef, the version and the hash in its header and footer.
    assert everything.count(INFREF) >= len(reader.pages) + 1
    assert everything.count(declaration.content_sha256) >= len(reader.pages)


def test_a_submitted_declaration_shows_its_recorded_hash(make_declaration):
    declaration = make_declaration()
    assert declaration.content_sha256 == declaration.compute_sha256()
    text = _squash(_render(declaration).pages[0].extract_text())
    assert declaration.content_sha256 in text


def test_a_changed_submitted_declaration_is_not_rendered(make_declaration):
    declaration = make_declaration()
    GdprDeclaration.objects.filter(pk=declaration.pk).update(content_sha256="0" * 64)
    declaration.refresh_from_db()
    with pytest.raises(ContentHashMismatch):
        render_declaration_pdf(declaration)


def test_pages_are_a4_and_numbered(make_declaration):
    reader = _render(make_declaration())
    assert len(reader.pages) >= 2
    for page in reader.pages:
        width, height = float(page.mediabox.width), float(page.mediabox.height)
        assert abs(width - A4[0]) < 1 and abs(height - A4[1]) < 1
    numbering = _danish("Page %(page)s of %(pages)s")
    page_two = _words(reader.pages[1].extract_text())
    assert numbering % {"page": 2, "pages": len(reader.pages)} in page_two


def test_the_design_system_font_is_embedded(make_declaration):
    reader = _render(make_declaration())
    fonts = {
        str(font["/BaseFont"])
        for font in reader.pages[0]["/Resources"]["/Font"].values()
        if "/BaseFont" in font.get_object()
    }
    assert any("IBMPlexSans" in name.replace("-", "") for name in fonts), fonts


def test_a_draft_shows_its_status_and_empty_answers(make_declaration):
    declaration = make_declaration(submitted=False, purpose="", transfer_volume="")
    reader = _render(declaration)
    with translation.override("da"):
        draft = str(GdprDeclaration.Status.DRAFT.label)
    for page in reader.pages:
        assert _squash(draft) in _squash(page.extract_text())
    assert _squash(_danish("Not filled in")) in _squash(_body_text(reader))
    # A draft has no recorded hash yet; the one shown is its content's now.
    assert declaration.compute_sha256() in _squash(reader.pages[0].extract_text())


def test_an_outdated_declaration_says_a_new_one_is_required(make_declaration):
    declaration = make_declaration()
    declaration.outdated_at = timezone.now()
    declaration.outdated_reason = OUTDATED_REASON
    declaration.save(update_fields=["outdated_at", "outdated_reason"])
    reader = _render(declaration)
    notice = _squash(_danish("Outdated: a new declaration is required"))
    with translation.override("da"):
        submitted = _squash(str(GdprDeclaration.Status.SUBMITTED.label))
    for page in reader.pages:
        text = _squash(page.extract_text())
        assert notice in text and submitted in text
    assert _squash(OUTDATED_REASON) in _squash(_body_text(reader))


def test_the_pdf_is_danish_whatever_the_callers_language(make_declaration):
    declaration = make_declaration()
    with translation.override("en"):
        reader = _render(declaration)
    with translation.override("da"):
        signed = date_format(ANSWERS["signed_on"], "DATE_FORMAT")
    assert "marts" in signed
    assert _squash(signed) in _squash(_body_text(reader))


def test_answers_are_text_and_nothing_is_fetched(make_declaration, monkeypatch):
    connections = []
    monkeypatch.setattr(socket.socket, "connect", lambda *args: connections.append(args))
    monkeypatch.setattr(socket, "create_connection", lambda *args, **kw: connections.append(args))
    tag = '<img src="http://example.com/x.png">'
    reader = _render(make_declaration(purpose=f"Se billedet {tag} her."))
    assert _squash(tag) in _squash(_body_text(reader))
    assert connections == []


def test_the_fetcher_refuses_the_network_and_files_outside_the_project(monkeypatch):
    fetcher = LocalFileFetcher(settings.BASE_DIR)
    for url in (
        "http://example.com/x.png",
        "https://example.com/font.ttf",
        "ftp://example.com/x.css",
        "file://example.com/etc/passwd",
        "file:///etc/passwd",
        (settings.BASE_DIR / ".." / ".." / "etc" / "passwd").as_uri(),
        "data:text/css,body{}",
    ):
        with pytest.raises(RefusedURL):
            fetcher.fetch(url)

    # Inside WeasyPrint a refused image is left out, and no connection is even tried.
    connections = []
    monkeypatch.setattr(socket.socket, "connect", lambda *args: connections.append(args))
    HTML(string='<img src="http://example.com/x.png">', url_fetcher=fetcher).write_pdf()
    assert connections == []


def test_the_fetcher_reads_the_fonts():
    font = (
        settings.BASE_DIR
        / "node_modules/dkfds/dist/fonts/IBMPlexSans/complete/ttf/IBMPlexSans-Regular.ttf"
    )
    response = LocalFileFetcher(settings.BASE_DIR).fetch(font.as_uri())
    assert response.read()[:4] == b"\x00\x01\x00\x00"


def test_the_file_name_is_ascii(make_declaration):
    name = declaration_pdf_filename(make_declaration())
    assert name == f"{INFREF}-erklaering-v2.pdf"
    assert name.isascii()
