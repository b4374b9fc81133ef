"""Text a person typed: what a single line may hold, and how a mail shows what they typed.

A line break in a name becomes a line of its own wherever the name is written out: a forged
"Bcc:" line in the mail KOMBIT reads, a second row in a log. A bidirectional override makes text
read differently from what it is ("gpj.exe" shown as "exe.jpg"). Neither has a place in a name,
a title or a host, so single-line fields refuse them, and mails quote every typed value and show
any such character that older data may still hold as a visible mark.
"""

import re
import unicodedata

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

# C0 controls (tab, CR, LF and NUL among them), DEL, C1 controls, and the bidirectional
# embeddings, overrides and isolates U+202A–U+202E and U+2066–U+2069.
_CONTROL = "\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
CONTROL_CHARACTER = re.compile(f"[{_CONTROL}]")


def _names(characters: set[str]) -> str:
    return ", ".join(f"U+{ord(character):04X}" for character in sorted(characters))


def single_line(value: str) -> None:
    """Validator for every single-line text field: no control or direction characters."""
    found = set(CONTROL_CHARACTER.findall(value or ""))
    if found:
        raise ValidationError(
            _(
                "Remove the line breaks, tabs or other invisible control characters "
                "(%(characters)s); this field takes a single line of text."
            ),
            code="control_characters",
            params={"characters": _names(found)},
        )


def visible(value: object) -> str:
    """The text with each control or direction character shown as a visible mark.

    C0 controls become their Unicode control pictures (CR as ␍, LF as ␊); the rest U+XXXX.
    """

    def mark(match: re.Match) -> str:
        code = ord(match.group())
        if code < 0x20:
            return chr(0x2400 + code)
        if code == 0x7F:
            return "\u2421"
        return f"<U+{code:04X}>"

    return CONTROL_CHARACTER.sub(mark, str(value))


def quoted(value: object) -> str:
    """A typed value inside a line of a mail: in quotation marks, on that line."""
    return f"»{visible(value)}«"


def quoted_block(value: object) -> str:
    """A typed multi-line text in a mail: each of its lines marked as quoted."""
    lines = str(value).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(f"> {visible(line)}".rstrip() for line in lines)


def file_label(name: str) -> str:
    """An uploaded file's name as a label: no folders, no control or format characters.

    Cleaned, not refused: the name comes from the sender's own system, and the file is still
    wanted whatever its name holds. At most 255 characters; "file" when nothing is left.
    """
    name = unicodedata.normalize("NFC", re.split(r"[/\\]", name)[-1])
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Cs"))
    return name.strip()[:255] or "file"
