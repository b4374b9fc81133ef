"""A list page: the rows a user may see, narrowed by a search, one page at a time, with the total.

Every list in the portal is built the same way, so none of them stops at a fixed number of rows
without saying so. The rows come in already filtered by the access rules
(`portal.accounts.access.visible`); the search only narrows them further, so it can never find
or count a record the user may not see.
"""

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce

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
