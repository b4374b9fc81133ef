"""The GDPR declaration as a PDF: the print template rendered by WeasyPrint, in Danish, offline."""

import mimetypes
import re
import unicodedata
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname
from zoneinfo import ZoneInfo

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone, translation
from weasyprint import HTML
from weasyprint.urls import URLFetcher, URLFetcherResponse

from gdpr.models import GdprDeclaration

TEMPLATE = "gdpr/declaration_pdf.html"
# The document states when it was made; KOMBIT and the municipalities read Danish time, whatever
# time zone the request that asked for it had activated.
COPENHAGEN = ZoneInfo("Europe/Copenhagen")
# TrueType, not WOFF2: WeasyPrint would decompress WOFF2 on every render.
FONT_SUBDIR = "node_modules/dkfds/dist/fonts/IBMPlexSans/complete/ttf"


class RefusedURL(ValueError):
    """A resource outside the portal's own files: the renderer never goes on the network."""


class ContentHashMismatch(Exception):
    """A submitted declaration's content no longer hashes to the SHA-256 recorded at submission.

    The PDF would then print a hash that does not match what it shows, so it is not made.
    """

    def __init__(self, declaration: GdprDeclaration, computed: str) -> None:
        super().__init__(
            f"{declaration}: stored SHA-256 {declaration.content_sha256 or '(none)'} "
            f"differs from the content's {computed}"
        )
        self.stored = declaration.content_sha256
        self.computed = computed


class LocalFileFetcher(URLFetcher):
    """A WeasyPrint URL fetcher that reads file: URLs under one folder and refuses all else."""

    def __init__(self, root: Path) -> None:
        super().__init__(allowed_protocols=("file",), allow_redirects=False)
        self.root = Path(root).resolve()

    def fetch(self, url: str, headers: dict | None = None) -> URLFetcherResponse:
        parts = urlsplit(url)
        if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost"):
            raise RefusedURL(f"Only local files are fetched, not {url!r}")
        # resolve() first, so "..", and symbolic links, cannot lead out of the folder.
        path = Path(url2pathname(parts.path)).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            raise RefusedURL(f"Not a file under {self.root}: {url!r}")
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return URLFetcherResponse(
            path.as_uri(), path.read_bytes(), headers={"Content-Type": content_type}
        )


def declaration_pdf_filename(declaration: GdprDeclaration) -> str:
    """For example FagsystemdefineredeDataRefGDPR1203_1-erklaering-v2.pdf; always plain ASCII."""
    name = unicodedata.normalize("NFKD", declaration.infref.name)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name.encode("ascii", "ignore").decode()).strip("-.")
    return f"{name or 'infref'}-erklaering-v{declaration.version}.pdf"


def render_declaration_pdf(declaration: GdprDeclaration) -> bytes:
    """The declaration as an A4 PDF in Danish, whatever language the caller is using."""
    base_dir = Path(settings.BASE_DIR).resolve()
    with translation.override("da"):
        html = render_to_string(TEMPLATE, _context(declaration, base_dir))
    return HTML(
        string=html, base_url=base_dir.as_uri() + "/", url_fetcher=LocalFileFetcher(base_dir)
    ).write_pdf()


def _context(declaration: GdprDeclaration, base_dir: Path) -> dict:
    content = declaration.content()
    computed = declaration.compute_sha256()
    is_draft = declaration.status == GdprDeclaration.Status.DRAFT
    # A submitted declaration's PDF is evidence: it shows the hash recorded at submission, and
    # only if the content it shows still has that hash.
    if not is_draft and declaration.content_sha256 != computed:
        raise ContentHashMismatch(declaration, computed)
    art6 = dict(GdprDeclaration.ART6_BASES)
    art9 = dict(GdprDeclaration.ART9_BASES)
    return {
        "declaration": declaration,
        "content": content,
        "is_draft": is_draft,
        # A superseded version already has its successor, so "a new declaration is required"
        # would no longer be true of it.
        "is_outdated": declaration.outdated_at is not None
        and declaration.status != GdprDeclaration.Status.SUPERSEDED,
        "art6_labels": [art6.get(code, code) for code in declaration.legal_basis_art6 or []],
        "art9_labels": [art9.get(code, code) for code in declaration.legal_basis_art9 or []],
        "sha256": computed,
        "generated_at": timezone.localtime(timezone.now(), COPENHAGEN),
        "submitted_at": (
            timezone.localtime(declaration.submitted_at, COPENHAGEN)
            if declaration.submitted_at
            else None
        ),
        "outdated_at": (
            timezone.localtime(declaration.outdated_at, COPENHAGEN)
            if declaration.outdated_at
            else None
        ),
        "font_dir": (base_dir / FONT_SUBDIR).as_uri(),
    }
