"""Every list page is complete (issue 16, item 6): paginated with its total, searchable by the
names it shows, never cut short, and only ever over the records the user may see."""

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation

from gdpr.models import InfRef, InfRefRequest
from portal.accounts.models import Organisation
from portal.core import paging
from portal.core.paging import PAGE_SIZE
from portal.itsystems.models import ItSystem
from portal.onboarding.models import Integration
from portal.outbox.models import OutgoingMail
from transfers.models import Environment, ReceivedFile, Route, SftpAccount

MANY = PAGE_SIZE + 12
THEIRS = 5


@dataclass
class Party:
    """One vendor with what its rows hang on; `label` starts every name it makes."""

    vendor: Organisation
    staff: object
    label: str
    system: ItSystem
    infref: InfRef
    account: SftpAccount


@dataclass
class World:
    mine: Party
    theirs: Party


def party(vendor, staff, label: str, infref_number: int, operator) -> Party:
    system = ItSystem.objects.create(
        uuid=uuid.uuid4(), name=f"{label} System", vendor=vendor, is_sender=True, is_receiver=True
    )
    infref = InfRef.objects.create(
        name=f"FagsystemdefineredeDataRefGDPR{infref_number}_1",
        it_system=system,
        assigned_by=operator,
    )
    account = SftpAccount.objects.create(
        it_system=system,
        environment=Environment.SIMULATOR,
        username=f"{label.lower()}_modtager",
        host="127.0.0.1",
    )
    return Party(vendor, staff, label, system, infref, account)


@pytest.fixture
def world(vendor_a, vendor_b, staff_a, staff_b, operator) -> World:
    return World(
        mine=party(vendor_a, staff_a, "Alfa", 7001, operator),
        theirs=party(vendor_b, staff_b, "Beta", 7002, operator),
    )


def numbered(party: Party, word: str, start: int, count: int) -> list[str]:
    # "nr" cannot occur in a UUID's hex, so a search for "nr007" finds one row, never a UUID.
    return [f"{party.label} {word} nr{i:03}" for i in range(start, start + count)]


def new_systems(party: Party, word: str, start: int, count: int) -> list[ItSystem]:
    return ItSystem.objects.bulk_create(
        ItSystem(uuid=uuid.uuid4(), name=name, vendor=party.vendor, is_sender=True)
        for name in numbered(party, word, start, count)
    )


def pks(objects) -> list[int]:
    return [obj.pk for obj in objects]


# What each list shows, made `count` at a time from `start` ------------------------------------


def make_routes(party: Party, start: int, count: int) -> list[int]:
    municipalities = Organisation.objects.filter(kind="municipality").order_by("name")
    return pks(
        Route.objects.bulk_create(
            Route(
                environment=Environment.SIMULATOR,
                infref=party.infref,
                sender=party.system,
                receiver=party.system,
                municipality=municipality,
            )
            for municipality in municipalities[start : start + count]
        )
    )


def make_received(party: Party, start: int, count: int) -> list[int]:
    return pks(
        ReceivedFile.objects.bulk_create(
            ReceivedFile(
                account=party.account,
                remote_name=name.replace(" ", "-").lower() + ".csv",
                state=ReceivedFile.State.RECEIVED,
                sender_username=f"{party.label.lower()}_afsender",
            )
            for name in numbered(party, "fil", start, count)
        )
    )


def make_accounts(party: Party, start: int, count: int) -> list[int]:
    return pks(
        SftpAccount.objects.bulk_create(
            SftpAccount(
                it_system=system,
                environment=Environment.SIMULATOR,
                username=f"{party.label.lower()}_nr{i:03}",
                host="127.0.0.1",
            )
            for i, system in enumerate(new_systems(party, "konto", start, count), start)
        )
    )


def make_it_systems(party: Party, start: int, count: int) -> list[int]:
    return pks(new_systems(party, "System", start, count))


def make_integrations(party: Party, start: int, count: int) -> list[int]:
    return pks(
        Integration.objects.bulk_create(
            Integration(
                name=name, sender=party.system, receiver=party.system, created_by=party.staff
            )
            for name in numbered(party, "flow", start, count)
        )
    )


INFREF_NUMBERS = itertools.count(5000)


def make_requests(party: Party, start: int, count: int) -> list[int]:
    requests = []
    for index, system in enumerate(new_systems(party, "anmoder", start, count)):
        # Every other one assigned: its row's step then asks after the InfRef's declaration.
        infref = None
        if index % 2:
            name = f"FagsystemdefineredeDataRefGDPR{next(INFREF_NUMBERS)}_1"
            infref = InfRef.objects.create(name=name, it_system=system, assigned_by=party.staff)
        requests.append(
            InfRefRequest(
                it_system=system, description="x", requested_by=party.staff, infref=infref
            )
        )
    return pks(InfRefRequest.objects.bulk_create(requests))


def make_mails(party: Party, start: int, count: int) -> list[int]:
    return pks(
        OutgoingMail.objects.bulk_create(
            OutgoingMail(
                to=["drift@example.invalid"],
                subject=subject,
                body="x",
                message_id=f"<{uuid.uuid4()}@example.invalid>",
                organisation=party.vendor,
            )
            for subject in numbered(party, "mail", start, count)
        )
    )


@dataclass(frozen=True)
class Case:
    url_name: str
    make: Callable[[Party, int, int], list[int]]
    # A search that finds exactly one of the user's rows, in other words and case than shown;
    # None where the list has no names to search.
    one: str | None = "ALFA nr007"

    def __str__(self) -> str:
        return self.url_name


CASES = [
    Case("transfers:routes", make_routes, one="alfa aarhus"),
    Case("transfers:received", make_received, one="ALFA FIL-NR007"),
    Case("transfers:accounts", make_accounts),
    Case("itsystems:list", make_it_systems),
    Case("onboarding:list", make_integrations),
    Case("specs:list", make_integrations),
    Case("gdpr:requests", make_requests),
    Case("outbox:list", make_mails, one=None),
]
SEARCHABLE = [case for case in CASES if case.one]


@pytest.fixture
def english(client_for):
    def login(user):
        client = client_for(user)
        client.cookies["django_language"] = "en"
        return client

    return login


def listing_of(client, case: Case, **params):
    response = client.get(reverse(case.url_name), params)
    assert response.status_code == 200
    return response.context["listing"], response.content.decode()


def every_row(client, case: Case, **params) -> list[int]:
    first, _html = listing_of(client, case, **params)
    shown = []
    for number in first.page.paginator.page_range:
        listing, _html = listing_of(client, case, page=number, **params)
        shown += pks(listing.page.object_list)
    return shown


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_long_list_is_shown_page_by_page_with_its_total_and_nothing_cut(english, world, case):
    client = english(world.mine.staff)
    before, _html = listing_of(client, case)
    mine = case.make(world.mine, 0, MANY)
    theirs = case.make(world.theirs, 0, THEIRS)
    total = before.total + MANY

    first, html = listing_of(client, case)
    assert first.total == total
    assert len(first.page.object_list) == PAGE_SIZE
    assert f"Showing 1–{PAGE_SIZE} of {total}" in html
    assert 'aria-current="page"' in html

    pages = first.page.paginator.num_pages
    last, html = listing_of(client, case, page=pages)
    assert len(last.page.object_list) == total - PAGE_SIZE * (pages - 1)
    assert f"Showing {PAGE_SIZE * (pages - 1) + 1}–{total} of {total}" in html

    shown = every_row(client, case)
    assert len(shown) == len(set(shown)) == total
    assert set(mine) <= set(shown)
    assert not set(theirs) & set(shown)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_page_out_of_range_shows_the_last_page(english, world, case):
    case.make(world.mine, 0, MANY)
    client = english(world.mine.staff)
    for page in ("999", "-1"):
        listing, _html = listing_of(client, case, page=page)
        assert listing.page.number == listing.page.paginator.num_pages
    listing, _html = listing_of(client, case, page="abc")
    assert listing.page.number == 1


@pytest.mark.parametrize("case", SEARCHABLE, ids=str)
def test_a_search_narrows_and_every_word_must_match(english, world, case):
    case.make(world.mine, 0, MANY)
    case.make(world.theirs, 0, THEIRS)
    client = english(world.mine.staff)
    found, html = listing_of(client, case, q=case.one)
    assert found.total == 1
    assert found.query == case.one
    assert "Showing 1–1 of 1" in html
    nothing, html = listing_of(client, case, q=f"{case.one} nr999")
    assert nothing.total == 0
    assert "Nothing matches the search." in html


@pytest.mark.parametrize("case", SEARCHABLE, ids=str)
def test_another_organisations_rows_are_never_found(english, world, case):
    case.make(world.mine, 0, MANY)
    theirs = case.make(world.theirs, 0, THEIRS)
    client = english(world.mine.staff)
    found, _html = listing_of(client, case, q="beta")
    assert found.total == 0
    # Their own staff find them: the search is not what hides them.
    their_client = english(world.theirs.staff)
    assert set(theirs) <= set(every_row(their_client, case, q="beta"))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_queries_do_not_grow_with_the_rows(english, world, case):
    client = english(world.mine.staff)
    case.make(world.mine, 0, 2)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            listing_of(client, case, **({"q": "alfa"} if case.one else {}))
        return len(captured)

    few = queries()
    case.make(world.mine, 2, MANY)
    assert queries() == few


def test_page_links_keep_the_search_and_filters_and_change_only_the_page(english, world):
    make_received(world.mine, 0, MANY)
    _listing, html = listing_of(english(world.mine.staff), CASES[1], q="alfa", page="2")
    assert 'href="?q=alfa&amp;page=1"' in html
    assert "page=2&amp;page" not in html

    organisations = english(world.mine.staff).get(
        reverse("organisations:list"), {"kind": "municipality", "page": "1"}
    )
    listing = organisations.context["listing"]
    assert listing.total == 98
    html = organisations.content.decode()
    assert "Showing 1–50 of 98" in html
    assert 'href="?kind=municipality&amp;page=2"' in html


def test_organisations_are_searched_by_name_and_by_whole_codes(english, world, vendor_b):
    client = english(world.mine.staff)
    by_code = client.get(reverse("organisations:list"), {"q": "751"}).context["listing"]
    assert [o.name for o in by_code.page.object_list] == ["Aarhus Kommune"]
    by_cvr = client.get(reverse("organisations:list"), {"q": vendor_b.cvr}).context["listing"]
    assert [o.name for o in by_cvr.page.object_list] == [vendor_b.name]
    by_words = client.get(reverse("organisations:list"), {"q": "kommune AARHUS"})
    assert by_words.context["listing"].total == 1


def test_an_it_system_is_found_by_its_uuid(english, world):
    make_it_systems(world.mine, 0, MANY)
    client = english(world.mine.staff)
    listing, _html = listing_of(client, CASES[3], q=str(world.mine.system.uuid).upper())
    assert pks(listing.page.object_list) == [world.mine.system.pk]


def test_a_danish_letter_is_found_in_either_case(english, world):
    ItSystem.objects.create(
        uuid=uuid.uuid4(), name="Ærø Omsorg", vendor=world.mine.vendor, is_sender=True
    )
    listing, _html = listing_of(english(world.mine.staff), CASES[3], q="ærø")
    assert [s.name for s in listing.page.object_list] == ["Ærø Omsorg"]


def test_a_long_search_is_cut_and_control_characters_are_dropped():
    request = RequestFactory().get("/", {"q": "a\x00b" + "x" * 300})
    text = paging.search_text(request)
    assert len(text) <= paging.MAX_QUERY
    assert "\x00" not in text
    assert text.startswith("a b")


@pytest.mark.parametrize(("language", "total"), [("da", "1.234"), ("en", "1,234")])
def test_the_total_is_written_the_languages_way(language, total):
    request = RequestFactory().get("/", {"page": "2"})
    with translation.override(language):
        summary = paging.page_of(request, list(range(1234))).summary
    assert "51–100" in summary
    assert summary.endswith(total)
