"""The transfer list's search for part of a name: through SQLite's index of the names by
trigrams (migration 0017) or PostgreSQL's trigram indexes (0007), it finds exactly what reading
every row finds, and the index stays true however the transfers are written."""

import pytest
from django.db import connection
from django.db.models import Q

from bench.scale import database
from tests.support.records import account_for, make_integration, make_route, make_transfer
from transfers import list_filters
from transfers.models import Transfer

pytestmark = pytest.mark.django_db

NAMES = [
    "Borgere_2026-01.csv",
    "BORGERE_2026-02.CSV",
    "æblegrød_Ærø.csv",
    "ÆBLEGRØD_ærø.csv",
    "rabat_50%_nu.csv",
    "rabat_500_nu.csv",
    "a_b_c.csv",
    "aXbXc.csv",
    'citat"erne.csv',
    "it's_here.csv",
    "back\\slash.csv",
    "ab.csv",
    "straße.csv",
]
TERMS = [
    # Shorter than a trigram: read without the index.
    "a",
    "ab",
    "Æ",
    "%",
    "_",
    # Case, in ASCII and beyond it (SQLite's LIKE folds only ASCII; the index must not add).
    "borgere",
    "BORGERE_2026",
    "æblegrød",
    "ÆBLEGRØD",
    "ærø",
    "STRASSE",
    "straße",
    # Wildcards and quotes are characters like any other.
    "50%",
    "50%_",
    "a_b",
    "X_b",
    '"erne',
    'citat"',
    "it's",
    "k\\sl",
    "2026-0",
    ".csv",
    # The remote name, and nothing at all.
    "_fdd_",
    "no such name",
]


@pytest.fixture
def route(system_a, system_b, staff_a, aarhus, operator):
    return make_route(make_integration(system_a, system_b, staff_a, [aarhus]), aarhus, operator)


def searched(term: str) -> set[int]:
    return set(list_filters.search(Transfer.objects.all(), term).values_list("pk", flat=True))


def read_row_by_row(term: str) -> set[int]:
    """What the search found before it had an index: every row's names tested."""
    names = Q(original_name__icontains=term) | Q(remote_name__icontains=term)
    return set(Transfer.objects.filter(names).values_list("pk", flat=True))


def indexed(term: str) -> set[int]:
    """On SQLite, what the index alone finds for `term` (a phrase; letters of any case)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rowid FROM transfer_names WHERE transfer_names MATCH %s",
            ['"' + term.replace('"', '""') + '"'],
        )
        return {row[0] for row in cursor.fetchall()}


def assert_same_as_row_by_row(terms: list[str]) -> None:
    for term in terms:
        assert searched(term) == read_row_by_row(term), term


def test_the_search_finds_what_reading_every_row_finds(route):
    account = account_for(route.sender)
    for name in NAMES:
        make_transfer(route, account, name=name)
    for term in TERMS:
        # Not vacuous: most of the terms find something.
        assert searched(term) == read_row_by_row(term), term
    assert searched("borgere") and searched("50%") and searched('"erne') and searched("_fdd_")
    assert len(searched("50%")) == 1  # % is not a wildcard
    assert len(searched("a_b")) == 1  # neither is _
    # Surrounding spaces are not part of the name looked for.
    assert searched("  borgere ") == read_row_by_row("borgere")


@pytest.mark.skipif("connection.vendor != 'sqlite'")
def test_sqlite_asks_the_index_for_three_letters_or_more():
    transfers = Transfer.objects.all()
    assert "transfer_names" in str(list_filters.search(transfers, "abc").query)
    assert "transfer_names" not in str(list_filters.search(transfers, "ab").query)


@pytest.mark.skipif("connection.vendor != 'sqlite'")
def test_the_index_stays_true_however_the_transfers_are_written(route):
    account = account_for(route.sender)
    first = make_transfer(route, account, name="alfa_første.csv")
    second = make_transfer(route, account, name="beta_anden.csv")
    assert indexed("alfa_f") == {first.pk}

    # A save of the whole row, and an update of many rows at once.
    first.original_name = "gamma_første.csv"
    first.save()
    Transfer.objects.filter(pk=second.pk).update(remote_name="delta_remote.csv")
    assert indexed("alfa_f") == set()
    assert indexed("GAMMA_F") == {first.pk}
    assert indexed("delta_r") == {second.pk}
    assert indexed(second.original_name) == {second.pk}
    # A change of anything else leaves the names where they were.
    Transfer.objects.filter(pk=first.pk).update(state="delivered", bytes_done=10)
    assert indexed("gamma_f") == {first.pk}

    # Deleted one by one and in bulk.
    first.delete()
    assert indexed("gamma_f") == set()
    Transfer.objects.all().delete()
    assert indexed("delta_r") == indexed(".csv") == set()
    assert_same_as_row_by_row(["alfa", "gamma", "delta_r", ".csv"])


@pytest.mark.skipif("connection.vendor != 'sqlite'")
def test_a_bulk_load_with_the_triggers_set_aside_is_indexed_after(route):
    """bench.scale writes the transfers with the triggers set aside, then indexes them."""
    account = account_for(route.sender)
    kept = make_transfer(route, account, name="før_fyldet.csv")
    with database.counted_after():
        loaded = make_transfer(route, account, name="under_fyldet.csv")
        kept.delete()
    assert indexed("fyldet") == {loaded.pk}
    # And watched again after.
    later = make_transfer(route, account, name="efter_fyldet.csv")
    assert indexed("fyldet") == {loaded.pk, later.pk}


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_postgresql_can_read_its_trigram_indexes_for_the_search():
    """The search's expressions are the indexes' (0007), or the planner could not use them."""
    query = list_filters.search(Transfer.objects.order_by(), "borgere").values("pk")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = query.explain()
    assert "transfer_original_name_trgm" in plan
    assert "transfer_remote_name_trgm" in plan
