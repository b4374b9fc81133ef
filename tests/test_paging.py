"""The keyset paginator (`portal.core.paging.keyset_page`): every row once and in order, both
ways, whatever the ties in the moments, the rows deleted since a page was read, and the text
handed to it as a cursor."""

import base64
from datetime import UTC, datetime, timedelta

import pytest

from portal.core.paging import Cursor, Key, KeysetPage, Source, keyset_page, with_rows
from tests.support.records import account_for, make_integration, make_route, make_transfers
from transfers.models import ReceivedFile, Transfer

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
PER_PAGE = 3


def at(hour: int) -> datetime:
    return T0 + timedelta(hours=hour)


@pytest.fixture
def route(system_a, system_b, staff_a, aarhus, operator):
    return make_route(make_integration(system_a, system_b, staff_a, [aarhus]), aarhus, operator)


def sent_at(route, *hours: int) -> list[int]:
    """A transfer on `route` queued at each of `hours` (an hour twice: two at that moment)."""
    return [make_transfers(route, 1, at=at(hour))[0] for hour in hours]


def received_at(route, *hours: int) -> list[int]:
    ids = []
    for hour in hours:
        file = ReceivedFile.objects.create(
            account=account_for(route.receiver, route.environment),
            remote_name=f"udefra-{hour}.csv",
            state="received",
            infref_name=route.infref.name,
            sender_username="alfa_omsorg",
            route=route,
        )
        ReceivedFile.objects.filter(pk=file.pk).update(received_at=at(hour))
        ids.append(file.pk)
    return ids


def transfers(route) -> list[Source]:
    return [Source(Transfer.objects.filter(route=route), "queued_at")]


def both_kinds(route) -> list[Source]:
    return [
        Source(Transfer.objects.filter(route=route), "queued_at"),
        Source(ReceivedFile.objects.filter(route=route), "received_at", prefix="r"),
    ]


def newest_first(sources: list[Source]) -> list[Key]:
    """Every row's key in the list's order, as the paginator should give them."""
    keys = [
        Key(moment, kind, pk)
        for kind, source in enumerate(sources)
        for moment, pk in source.rows.values_list(source.moment_field, "pk")
    ]
    return sorted(keys, reverse=True)


def older_pages(sources: list[Source], cursor: str = "") -> list[KeysetPage[Key]]:
    """The pages from `cursor` (the first page, if empty) to the oldest, by their older links."""
    pages = [keyset_page(sources, cursor, PER_PAGE)]
    while pages[-1].older:
        pages.append(keyset_page(sources, pages[-1].older, PER_PAGE))
    return pages


def newer_pages(sources: list[Source], page: KeysetPage[Key]) -> list[KeysetPage[Key]]:
    """The pages from `page` back to the newest, by their newer links."""
    pages = [page]
    while pages[-1].newer:
        pages.append(keyset_page(sources, pages[-1].newer, PER_PAGE))
    return pages


def test_every_row_once_newest_first_then_back_again_with_ties_broken_by_id(db, route):
    # Three at hour 3, two at hour 1: only the id tells them apart.
    sent_at(route, 3, 0, 1, 3, 1, 3, 2, 5)
    sources = transfers(route)
    expected = newest_first(sources)
    assert len({key.moment for key in expected}) == 5

    pages = older_pages(sources)
    assert [len(page.rows) for page in pages] == [3, 3, 2]
    assert [key for page in pages for key in page.rows] == expected
    assert pages[0].is_first and not pages[0].newer
    assert not pages[-1].older and pages[-1].newer

    back = newer_pages(sources, pages[-1])
    assert [page.rows for page in back] == [page.rows for page in reversed(pages)]
    assert back[-1].is_first


def test_a_list_on_one_page_or_none_links_nowhere(db, route):
    assert keyset_page(transfers(route), "", PER_PAGE) == KeysetPage(rows=[])
    sent_at(route, 0, 1, 2)
    page = keyset_page(transfers(route), "", PER_PAGE)
    assert len(page.rows) == 3 and not page.newer and not page.older


def test_two_kinds_of_row_at_the_same_moments_run_by_kind_then_id_both_ways(db, route):
    sent_at(route, 0, 1, 1, 2, 4)
    received_at(route, 1, 1, 2, 3, 4)
    sources = both_kinds(route)
    expected = newest_first(sources)

    pages = older_pages(sources)
    assert [key for page in pages for key in page.rows] == expected
    # At hour 4 the received file (the second kind) comes before the transfer.
    assert [key.kind for key in pages[0].rows[:2]] == [1, 0]
    cursors = [Cursor.decode(page.older) for page in pages[:-1]]
    assert {cursor.prefix for cursor in cursors} == {"", "r"}

    back = newer_pages(sources, pages[-1])
    assert [page.rows for page in back] == [page.rows for page in reversed(pages)]


def test_a_cursor_at_a_row_deleted_since_reads_on_from_where_the_row_stood(db, route):
    sent_at(route, 0, 1, 2, 3, 4, 5, 6, 7, 8)
    sources = transfers(route)
    expected = newest_first(sources)
    first, _second, third = older_pages(sources)

    # The last row of the first page names the second going older; the first row of the third
    # names it going newer.
    Transfer.objects.filter(pk__in=[first.rows[-1].pk, third.rows[0].pk]).delete()
    assert keyset_page(sources, first.older, PER_PAGE).rows == expected[3:6]
    assert keyset_page(sources, third.newer, PER_PAGE).rows == expected[3:6]


def test_the_rows_of_a_page_are_read_in_its_order_less_those_deleted_since(db, route):
    sent_at(route, 0, 1, 2, 3)
    sources = transfers(route)
    page = keyset_page(sources, "", PER_PAGE)
    Transfer.objects.filter(pk=page.rows[1].pk).delete()
    read = with_rows(page, Transfer.objects.only("pk", "queued_at"))
    assert [transfer.pk for transfer in read.rows] == [page.rows[0].pk, page.rows[2].pk]
    assert (read.newer, read.older) == (page.newer, page.older)


def test_a_page_of_newer_rows_that_would_come_short_is_the_first_page_whole(db, route):
    sent_at(route, 0, 1, 2, 3, 4, 5)
    sources = transfers(route)
    second = keyset_page(sources, keyset_page(sources, "", PER_PAGE).older, PER_PAGE)
    sent_at(route, 6, 7)  # two new rows at the top since the second page was read

    newer = keyset_page(sources, second.newer, PER_PAGE)
    expected = newest_first(sources)
    assert newer.rows == expected[2:5] and newer.newer
    assert keyset_page(sources, newer.newer, PER_PAGE) == KeysetPage(
        rows=expected[:3], older=Cursor(expected[2].moment, expected[2].pk, False).encode()
    )


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "garbage!",
        "%%%",
        "A" * 500,
        _b64("o|2026-03-01T12:00:00|5"),  # no time zone
        _b64("x|2026-03-01T12:00:00+00:00|5"),
        _b64("o|yesterday|5"),
        _b64("o|2026-03-01T12:00:00+00:00|-5"),
        _b64("o|2026-03-01T12:00:00+00:00|0"),
        _b64("o|2026-03-01T12:00:00+00:00|"),
        _b64("o|2026-03-01T12:00:00+00:00|99999999999999999999999"),
        _b64("o|2026-03-01T12:00:00+00:00|5|6"),
        _b64("o|2026-03-01T12:00:00+00:00|R5"),
        _b64("o|2026-03-01T12:00:00+00:00|q5"),  # a kind the list does not have
        _b64("o|0001-01-01T00:00:00+05:00|5"),  # before the year 1 in UTC
        _b64("n|9999-12-31T23:59:59-05:00|5"),  # after the year 9999 in UTC
        _b64("o|1900-01-01T00:00:00+00:00|5"),  # well made, but nothing is older
        _b64("n|2100-01-01T00:00:00+00:00|5"),  # well made, but nothing is newer
        base64.urlsafe_b64encode(b"o|\xff\xfe|5").decode(),
    ],
)
def test_a_cursor_garbled_or_forged_past_either_end_reads_the_first_page(db, route, cursor):
    sent_at(route, 0, 1, 2, 3, 4)
    sources = both_kinds(route)
    assert keyset_page(sources, cursor, PER_PAGE) == keyset_page(sources, "", PER_PAGE)


def test_a_forged_cursor_only_starts_the_page_among_the_rows_of_the_list(
    db, route, system_a, system_b, staff_a, odense, operator
):
    mine = sent_at(route, 0, 1, 2, 3)
    elsewhere = make_route(
        make_integration(system_a, system_b, staff_a, [odense], name="Andet"), odense, operator
    )
    sent_at(elsewhere, 0, 1, 2, 3)
    forged = Cursor(at(2), 2**62, newer=False).encode()  # an id no row has, at a moment
    page = keyset_page(transfers(route), forged, PER_PAGE)
    assert [key.pk for key in page.rows] == [mine[2], mine[1], mine[0]]


def test_a_page_costs_a_query_a_source_however_deep(db, route, django_assert_num_queries):
    sent_at(route, *range(12))
    received_at(route, *range(0, 12, 2))
    sources = both_kinds(route)
    with django_assert_num_queries(2):
        first = keyset_page(sources, "", PER_PAGE)
    deep = older_pages(sources)[-2]
    with django_assert_num_queries(2):
        keyset_page(sources, deep.older, PER_PAGE)
    page = keyset_page(transfers(route), first.older, PER_PAGE)
    with django_assert_num_queries(1):
        with_rows(page, Transfer.objects.all())


def test_the_cursor_round_trips_with_its_kind():
    cursor = Cursor(datetime(2026, 3, 1, 9, 0, 0, 123456, tzinfo=UTC), 42, True, prefix="r")
    assert Cursor.decode(cursor.encode()) == cursor
    assert len(Cursor(at(0), 2**63 - 1, False, prefix="r").encode()) <= 96
