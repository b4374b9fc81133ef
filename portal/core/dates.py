"""Dates and times written exactly as `django.utils.formats.date_format` writes them, in a
fraction of its time, for the pages that write hundreds of them.

Django reads the format afresh for every value (a regular expression over it, then a method
looked up by name for each letter): about 30 µs a moment, and the transfer list writes a
hundred, the review more. Here each format is read once into the parts it is made of. The
numbers are written as Django writes them; a month's name is asked of Django once per language
and month; a format with any other letter is left to Django whole.
"""

from collections.abc import Callable
from datetime import date, datetime
from functools import lru_cache

from django.utils import dateformat, formats
from django.utils.translation import get_language

Part = Callable[[date], str]

# The letters written here, as django.utils.dateformat writes them.
_NUMBERS: dict[str, Part] = {
    "d": lambda value: f"{value.day:02d}",
    "j": lambda value: str(value.day),
    "m": lambda value: f"{value.month:02d}",
    "n": lambda value: str(value.month),
    "Y": lambda value: f"{value.year:04d}",
    "y": lambda value: f"{value.year % 100:02d}",
    "c": lambda value: value.isoformat(),
}
# Of the time: Django refuses them for a date, so a date is left to it with any of these.
_TIMES: dict[str, Part] = {
    "H": lambda value: f"{value.hour:02d}",
    "G": lambda value: str(value.hour),
    "i": lambda value: f"{value.minute:02d}",
    "s": lambda value: f"{value.second:02d}",
}
# A month's name, in the active language: depends on the month alone.
_MONTH_NAMES = frozenset("bEFMN")


def date_format(value: date, format_name: str) -> str:
    """`formats.date_format(value, format_name)`: a format's name (SHORT_DATETIME_FORMAT) or
    the format itself ("j/n")."""
    return formatter(format_name)(value)


def formatter(format_name: str) -> Part:
    """`date_format` with the format looked up once, in the language active now: for a page
    that writes many moments in one format."""
    form = formats.get_format(format_name)

    def write(value: date) -> str:
        parts = _parts(form, isinstance(value, datetime))
        if parts is None:
            return formats.date_format(value, format_name)
        return "".join(part if isinstance(part, str) else part(value) for part in parts)

    return write


@lru_cache(maxsize=64)
def _parts(form: str, with_time: bool) -> tuple[str | Part, ...] | None:
    """The format read into its text and its letters' writers; None when a letter is not one
    written here."""
    parts: list[str | Part] = []
    for index, piece in enumerate(dateformat.re_formatchars.split(form)):
        if not index % 2:
            if piece:
                parts.append(dateformat.re_escaped.sub(r"\1", piece))
        elif piece in _NUMBERS:
            parts.append(_NUMBERS[piece])
        elif piece in _TIMES and with_time:
            parts.append(_TIMES[piece])
        elif piece in _MONTH_NAMES:
            parts.append(_month_name(piece))
        else:
            return None
    return tuple(parts)


def _month_name(letter: str) -> Part:
    def name(value: date) -> str:
        return _month_names(get_language(), letter)[value.month - 1]

    return name


@lru_cache(maxsize=32)
def _month_names(language: str | None, letter: str) -> tuple[str, ...]:
    """The twelve months as `letter` names them in `language` (active when asked)."""
    return tuple(dateformat.format(date(2000, month, 1), letter) for month in range(1, 13))
