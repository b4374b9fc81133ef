"""A specification version as a PDF, in Danish, for publication on digitaliseringskataloget.dk.

Rendered offline like the GDPR declaration: WeasyPrint reads only the portal's own files.
"""

import re
import unicodedata
from pathlib import Path

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone, translation
from weasyprint import HTML

from gdpr.pdf import COPENHAGEN, FONT_SUBDIR, LocalFileFetcher
from portal.specs.diff import display_value
from portal.specs.models import SpecificationVersion

TEMPLATE = "specs/version_pdf.html"


def version_pdf_filename(version: SpecificationVersion) -> str:
    """For example dataspecifikation-Alfa-Omsorg-til-Beta-Journal-v1.2.pdf; plain ASCII."""
    name = unicodedata.normalize("NFKD", version.integration.name)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name.encode("ascii", "ignore").decode()).strip("-.")
    return f"dataspecifikation-{name or 'integration'}-v{version.label}.pdf"


def render_version_pdf(version: SpecificationVersion, *, language: str = "da") -> bytes:
    """The version as an A4 PDF, Danish unless asked otherwise, whatever the caller's language."""
    base_dir = Path(settings.BASE_DIR).resolve()
    with translation.override(language):
        html = render_to_string(TEMPLATE, _context(version, base_dir, language))
    return HTML(
        string=html, base_url=base_dir.as_uri() + "/", url_fetcher=LocalFileFetcher(base_dir)
    ).write_pdf()


def _context(version: SpecificationVersion, base_dir: Path, language: str) -> dict:
    integration = version.integration
    with translation.override(language):
        structure = [
            (SpecificationVersion._meta.get_field(name).verbose_name, display_value(name, value))
            for name, value in (
                ("format", version.format),
                ("encoding", version.encoding),
                ("delimiter", version.delimiter),
                ("frequency", version.frequency),
            )
            if name != "delimiter" or version.format == SpecificationVersion.Format.CSV
        ]
    return {
        "language": language,
        "version": version,
        "integration": integration,
        "structure": structure,
        "fields": list(version.fields.all()),
        "documents": list(version.documents.all()),
        "municipalities": list(integration.municipalities.order_by("name")),
        # The versions files made for are still valid under this one.
        "compatible_with": [
            earlier.label
            for earlier in version.specification.versions.filter(
                major=version.major, minor__lt=version.minor
            ).order_by("minor")
        ],
        "generated_at": timezone.localtime(timezone.now(), COPENHAGEN),
        "font_dir": (base_dir / FONT_SUBDIR).as_uri(),
    }
