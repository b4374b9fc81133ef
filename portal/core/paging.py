"""Lists a page at a time, in one of two ways.

Offset pages with their total (`page_of`): the lists of records, where the rows a user may
see, narrowed by a search, are counted. Every such list is built the same way, so none of them
stops at a fixed number of rows without saying so. The rows come in already filtered by the
access rules (`portal.accounts.access.visible`); the search only narrows them further, so it
can never find or count a record the user may not see.

Keyset pages (`keyset_page`): the lists that grow with every file sent (transfers, received
files), newest first. A page is found from the row it follows, not by an offset, so the
thousandth page costs what the first costs, and nothing counts the rows.
"""

import base64
import binascii
import operator
import string
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import reduce
from typing import Generic, NamedTuple, TypeVar

from django.core.paginator import Page, Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.formats import number_format
from django.utils.translation import gettext as _

from portal.core.text import CONTROL_CHARACTER

PAGE_SIZE = 50
# Longer searches are cut: each word adds a condition over every field searched.
MAX_QUERY = 200


@dataclass(frozen=True)
class Listing:
    page: Page
    query: str
    total: int
    # The page's GET parameters without `page`, for links to other pages that keep the filters.
    keep: str

    @property
    def summary(self) -> str:
        """The rows shown and the total, "Showing 51–100 of 1,234" in the active language;
        empty when there is nothing to show."""
        if not self.total:
            return ""
        return _("Showing %(first)s–%(last)s of %(total)s") % {
            "first": _grouped(self.page.start_index()),
            "last": _grouped(self.page.end_index()),
            "total": _grouped(self.total),
        }

    @property
    def page_numbers(self) -> list[int | None]:
        """The page links to show: the ends and the pages around this one; None is a gap."""
        numbers = self.page.paginator.get_elided_page_range(
            self.page.number, on_each_side=2, on_ends=1
        )
        return [number if isinstance(number, int) else None for number in numbers]


def _grouped(number: int) -> str:
    return number_format(number, force_grouping=True)


def search_text(request: HttpRequest) -> str:
    """The search the user typed, cut to MAX_QUERY characters and with no control characters
    (PostgreSQL refuses a NUL in a query parameter)."""
    return CONTROL_CHARACTER.sub(" ", request.GET.get("q", "")[:MAX_QUERY]).strip()


def _spellings(word: str) -> set[str]:
    # SQLite folds the case of ASCII letters only, so "århus" would miss "Århus" there; the
    # usual spellings of a name cover it. PostgreSQL folds them all and finds the same rows.
    if word.isascii():
        return {word}
    return {word, word.lower(), word.upper(), word.capitalize()}


def matching(
    rows: QuerySet, query: str, fields: Sequence[str], exact: Sequence[str] = ()
) -> QuerySet:
    """The rows in which every word of `query` is part of one of `fields` (any case) or the
    whole of one of `exact` (codes and numbers, where a part would find unrelated rows)."""
    for word in dict.fromkeys(query.split()):
        conditions = [
            Q(**{f"{field}__icontains": spelling})
            for field in fields
            for spelling in _spellings(word)
        ]
        conditions += [Q(**{field: word}) for field in exact]
        rows = rows.filter(reduce(operator.or_, conditions))
    return rows


def page_of(
    request: HttpRequest,
    rows: QuerySet,
    *,
    search: Sequence[str] = (),
    exact: Sequence[str] = (),
    per_page: int = PAGE_SIZE,
) -> Listing:
    """The page of `rows` the request asks for, searched in `search` and `exact` (see
    `matching`) when the list has names. `rows` must be ordered to the last tie, or a row could
    show on two pages or none. A page past the end shows the last page."""
    query = search_text(request) if search or exact else ""
    if query:
        rows = matching(rows, query, search, exact)
    page = Paginator(rows, per_page).get_page(request.GET.get("page"))
    keep = request.GET.copy()
    keep.pop("page", None)
    return Listing(page=page, query=query, total=page.paginator.count, keep=keep.urlencode())


# Keyset pages ---------------------------------------------------------------------------------

Row = TypeVar("Row")
# The longest cursor read; the API's schema allows as much.
MAX_CURSOR = 96
# Ids are the database's 64-bit integers: a bigger number would overflow a query.
_ID_LIMIT = 2**63


class Key(NamedTuple):
    """Where a row stands in a keyset list, which runs newest first by the row's moment, then
    by its kind (the place of its source among the list's sources, the last first), then by
    its id, the highest first."""

    moment: datetime
    kind: int
    pk: int


@dataclass(frozen=True)
class Source:
    """One kind of row in a keyset list: the rows, the field that dates them, and the letters
    that mark their ids in a cursor (none for the first kind)."""

    rows: QuerySet
    moment_field: str
    prefix: str = ""


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: just older (or newer) than the row it names.

    It carries the row's moment with its id, so a page is found without looking the row up,
    and from the same place once the row is deleted. Made up, it can only start a page
    elsewhere among the rows the list shows.
    """

    moment: datetime
    pk: int
    newer: bool
    prefix: str = ""

    def encode(self) -> str:
        raw = f"{'n' if self.newer else 'o'}|{self.moment.isoformat()}|{self.prefix}{self.pk}"
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> "Cursor | None":
        """The cursor, or None for anything that is not one a page made."""
        if not text or len(text) > MAX_CURSOR:
            return None
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
            direction, stamp, ref = raw.split("|")
            moment = datetime.fromisoformat(stamp)
            if moment.tzinfo is None:
                return None
            moment = moment.astimezone(UTC)
        except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
            return None
        digits = ref.lstrip(string.ascii_lowercase)
        if direction not in ("n", "o") or not digits.isdigit():
            return None
        if not 0 < int(digits) < _ID_LIMIT:
            return None
        prefix = ref[: len(ref) - len(digits)]
        return cls(moment=moment, pk=int(digits), newer=direction == "n", prefix=prefix)


@dataclass(frozen=True)
class KeysetPage(Generic[Row]):
    """One page of a keyset list, newest first, with the cursors of the pages either side."""

    rows: list[Row]
    newer: str = ""  # the cursor of the page of newer rows; empty on the first page
    older: str = ""  # the cursor of the page of older rows; empty on the last

    @property
    def is_first(self) -> bool:
        return not self.newer


def keyset_page(sources: Sequence[Source], cursor: str, per_page: int) -> KeysetPage[Key]:
    """A page of the rows of `sources` together, newest first, as their keys: a query a source.

    Only the moments and ids are read, which the database sorts from its indexes; the caller
    reads the page's rows by id (`with_rows`). A cursor that is not one a page made, or that
    lies past either end of the list, reads the first page; so does a page of newer rows that
    would come short at the top, which is the first page, whole.
    """
    start = Cursor.decode(cursor)
    kinds = {source.prefix: kind for kind, source in enumerate(sources)}
    if start is None or start.prefix not in kinds:
        return _first_page(sources, per_page)
    at = Key(start.moment, kinds[start.prefix], start.pk)
    keys = _keys(sources, at, older=not start.newer, limit=per_page + 1)
    if start.newer:
        if len(keys) <= per_page:
            return _first_page(sources, per_page)
        keys = keys[:per_page][::-1]
        return KeysetPage(
            rows=keys,
            newer=_cursor(sources, keys[0], newer=True),
            older=_cursor(sources, keys[-1], newer=False),
        )
    if not keys:
        return _first_page(sources, per_page)
    more = len(keys) > per_page
    keys = keys[:per_page]
    return KeysetPage(
        rows=keys,
        newer=_cursor(sources, keys[0], newer=True),
        older=_cursor(sources, keys[-1], newer=False) if more else "",
    )


def with_rows(page: KeysetPage[Key], rows: QuerySet) -> KeysetPage:
    """`page` of a list of one source, its keys replaced by their rows, read by id from `rows`
    in one query; a row deleted since its key was read is left out.

    `rows` says what to read of each row (`select_related`, `defer`), not which rows: the keys
    have passed the list's filters, and applied again to a page of ids they only cost time (an
    access rule's joins made PostgreSQL read every route for a page of transfers).
    """
    found = rows.order_by().in_bulk([key.pk for key in page.rows])
    return replace(page, rows=[found[key.pk] for key in page.rows if key.pk in found])


def _cursor(sources: Sequence[Source], key: Key, *, newer: bool) -> str:
    return Cursor(key.moment, key.pk, newer, sources[key.kind].prefix).encode()


def _first_page(sources: Sequence[Source], per_page: int) -> KeysetPage[Key]:
    keys = _keys(sources, None, older=True, limit=per_page + 1)
    older = _cursor(sources, keys[per_page - 1], newer=False) if len(keys) > per_page else ""
    return KeysetPage(rows=keys[:per_page], older=older)


def _beyond(source: Source, kind: int, at: Key, older: bool) -> QuerySet:
    """The rows of `source` that come after `at` going older (or newer) in the list."""
    field = source.moment_field
    past, up_to = ("lt", "lte") if older else ("gt", "gte")
    if kind == at.kind:
        # The redundant bound lets the index on the moment find the start, not only the order.
        return source.rows.filter(**{f"{field}__{up_to}": at.moment}).filter(
            Q(**{f"{field}__{past}": at.moment}) | Q(**{f"pk__{past}": at.pk})
        )
    # At the cursor's moment the list runs by kind: going older, the lower kinds are still ahead.
    ahead_at_same_moment = kind < at.kind if older else kind > at.kind
    return source.rows.filter(**{f"{field}__{up_to if ahead_at_same_moment else past}": at.moment})


def _keys(sources: Sequence[Source], at: Key | None, *, older: bool, limit: int) -> list[Key]:
    """The keys of the first `limit` rows of all the sources together going older (or newer),
    past `at` if given: a query a source.

    Once a source has filled a page, the next is read only as far back (or forward) as that
    page reaches: a row beyond it could not be on the page. A source whose rows are told apart
    only one by one (the files received from outside the portal) is so kept to one page's
    stretch of time, not its whole history.
    """
    found: list[Key] = []
    reach: datetime | None = None
    for kind, source in enumerate(sources):
        field = source.moment_field
        rows = source.rows if at is None else _beyond(source, kind, at, older)
        if reach is not None:
            rows = rows.filter(**{f"{field}__{'gte' if older else 'lte'}": reach})
        order = (f"-{field}", "-pk") if older else (field, "pk")
        keys = [
            Key(moment, kind, pk)
            for moment, pk in rows.order_by(*order).values_list(field, "pk")[:limit]
        ]
        if len(keys) == limit:
            last = keys[-1].moment
            reach = last if reach is None else (max if older else min)(reach, last)
        found.extend(keys)
    found.sort(reverse=older)
    return found[:limit]
