"""CVR numbers: the Danish business register's eight-digit identifiers."""

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

_WEIGHTS = (2, 7, 6, 5, 4, 3, 2, 1)


def is_valid_cvr(value: str) -> bool:
    if len(value) != 8 or not value.isascii() or not value.isdigit() or value[0] == "0":
        return False
    return sum(int(digit) * weight for digit, weight in zip(value, _WEIGHTS, strict=True)) % 11 == 0


def validate_cvr(value: str) -> None:
    if not (len(value) == 8 and value.isascii() and value.isdigit()):
        raise ValidationError(
            _("A CVR number is exactly 8 digits, without spaces or letters."), code="cvr_format"
        )
    if not is_valid_cvr(value):
        raise ValidationError(
            _("%(cvr)s is not a valid CVR number: the check digit does not match."),
            code="cvr_checksum",
            params={"cvr": value},
        )
