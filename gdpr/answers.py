"""A declaration's answers as (label, text) for people: the page and the PDF show the same."""

from datetime import date

from django.utils import formats
from django.utils.translation import gettext as _

from gdpr.models import ANSWER_FIELDS, GdprDeclaration


def _text(declaration: GdprDeclaration, name: str) -> str:
    value = getattr(declaration, name)
    if name == "legal_basis_art6":
        return "; ".join(str(dict(GdprDeclaration.ART6_BASES).get(code, code)) for code in value)
    if name == "legal_basis_art9":
        return "; ".join(str(dict(GdprDeclaration.ART9_BASES).get(code, code)) for code in value)
    if name == "transfer_frequency":
        return declaration.get_transfer_frequency_display()
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, date):
        return formats.date_format(value, "DATE_FORMAT")
    return value or ""


def answers(declaration: GdprDeclaration) -> list[tuple[str, str]]:
    """Every answer in form order, empty ones as an empty string.

    Parties and systems come from `content()`, so a submitted version shows the names it was
    submitted with.
    """
    content = declaration.content()
    cvr, code = _("CVR"), _("municipality code")
    processor = content["processor"]
    sender = content["sending_it_system"]
    rows = [
        (
            _("Data controllers"),
            "; ".join(
                f"{o['name']} ({cvr} {o['cvr']}, {code} {o['municipality_code']})"
                for o in content["controllers"]
            ),
        ),
        (_("Data processor"), f"{processor['name']} ({cvr} {processor['cvr']})"),
        (_("Sending IT system"), f"{sender['name']} ({sender['uuid']})"),
        (
            _("Receiving IT systems"),
            "; ".join(
                f"{s['name']}, {s['vendor']} ({s['uuid']})" for s in content["receiving_it_systems"]
            ),
        ),
    ]
    field = GdprDeclaration._meta.get_field
    rows += [
        (str(field(name).verbose_name).capitalize(), _text(declaration, name))
        for name in ANSWER_FIELDS
    ]
    return rows
