"""InfRef names: `FagsystemdefineredeDataRefGDPR<number>_<version>` (seed, chapter 2)."""

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

PREFIX = "FagsystemdefineredeDataRefGDPR"
# Nine digits keep every number inside a 32-bit column on SQLite and PostgreSQL alike.
_MAX_DIGITS = 9
_SHAPE = re.compile(rf"{PREFIX}([0-9]+)_([0-9]+)")


def infref_name(number: int, version: int = 1) -> str:
    return f"{PREFIX}{number}_{version}"


def parse_infref(name: str) -> tuple[int, int]:
    """(number, version) of a well-formed InfRef name; ValidationError saying what is wrong."""
    example = infref_name(1203, 1)
    if not name.startswith(PREFIX):
        raise ValidationError(
            _("An InfRef name begins with %(prefix)s, for example %(example)s."),
            code="infref_prefix",
            params={"prefix": PREFIX, "example": example},
        )
    match = _SHAPE.fullmatch(name)
    if not match:
        raise ValidationError(
            _(
                "An InfRef name is %(prefix)s, a number, an underscore and a version, "
                "with nothing else, for example %(example)s."
            ),
            code="infref_shape",
            params={"prefix": PREFIX, "example": example},
        )
    number, version = match.groups()
    if number.startswith("0"):
        raise ValidationError(
            _("The InfRef number is written without leading zeros and is never 0."),
            code="infref_number",
        )
    if version.startswith("0"):
        raise ValidationError(
            _("The InfRef version is a positive whole number without leading zeros."),
            code="infref_version",
        )
    if len(number) > _MAX_DIGITS or len(version) > _MAX_DIGITS:
        raise ValidationError(
            _("The InfRef number and version have at most %(digits)s digits."),
            code="infref_length",
            params={"digits": _MAX_DIGITS},
        )
    return int(number), int(version)


def validate_infref_name(name: str) -> None:
    parse_infref(name)
