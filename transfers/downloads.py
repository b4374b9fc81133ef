"""How a received file is offered for download: under the name it arrived with, which may be any
name the contract allows (transfers.protocol.READING_RULES), not the local name it is stored
under (transfers.fetch.local_name)."""

import re
from urllib.parse import quote

# What a quoted filename= may hold as it is: printable ASCII but the quote and backslash (which
# many browsers do not unescape), % (which some decode) and ; and , (where naive parsers split).
_NOT_PLAIN_IN_QUOTES = re.compile(r'[^\x20-\x7e]|["\\%;,]')


def content_disposition(name: str) -> str:
    """Content-Disposition for a download named `name` (RFC 6266). A plain name goes in quotes;
    any other also as UTF-8 in filename* (RFC 5987), which browsers prefer, after an ASCII
    stand-in for those that read only filename."""
    stand_in = _NOT_PLAIN_IN_QUOTES.sub("_", name)
    if stand_in == name:
        return f'attachment; filename="{name}"'
    return f"attachment; filename=\"{stand_in}\"; filename*=UTF-8''{quote(name, safe='')}"
