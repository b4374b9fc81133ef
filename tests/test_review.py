"""The municipal review: what ran under which specification and declaration, for whom, at what cost.

Assertions read English text: each test client chooses English.
"""

import re

import pytest
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from gdpr.models import GdprDeclaration
from portal.core.paging import Cursor
from portal.review.views import PAGE_SIZE
from tests.conftest import make_user
from tests.support.clients import english
from tests.support.declarations import declare
from tests.support.records import (
    at,
    fetched_copy,
    make_integration,
    make_route,
    make_transfers,
    receive,
)
from tests.support.specs import make_version
from transfers.models import ReceivedFile, Transfer

URL = reverse("review:overview")


@pytest.fixture
def integration(system_a, system_b, staff_a, aarhus, odense):
    return make_integration(system_a, system_b, staff_a, [aarhus, odense])


@pytest.fixture
def route(integration, aarhus, operator):
    return make_route(integration, aarhus, operator)


def passages(response) -> list:
    """The rows of the page's list of files, newest first."""
    return response.context["file_page"].rows


def links(response):
    """The query strings of the pages of files around this one."""
    return response.context["file_links"]


def cursor_in(link: str) -> Cursor:
    return Cursor.decode(QueryDict(link.removeprefix("?"))["cursor"])


def transfers_shown(response) -> list[Transfer]:
    return [p.transfer for p in passages(response) if p.transfer]


def from_outside(response) -> list[str]:
    """The names of the received files no transfer in the portal sent."""
    return [p.received.remote_name for p in passages(response) if not p.transfer]


def cells(response, name: str) -> list[str]:
    """The text of the list's cells of one column (its class), spaces made single."""
    found = re.findall(rf'<td class="{name}">(.*?)</td>', response.content.decode(), re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in found]


def ran_under(response) -> dict[str, tuple]:
    """File name → (specification version, declaration version) as the page derived them."""
    return {
        p.name: (
            p.ran_under.version.label if p.ran_under.version else None,
            p.ran_under.declaration.version if p.ran_under.declaration else None,
        )
        for p in passages(response)
    }


# --- What a transfer ran under ---------------------------------------------------------------


def test_each_transfer_shows_the_version_and_declaration_in_force_when_queued(
    client_for, architect, staff_a, aarhus, route, integration
):
    make_transfers(route, 1, name="before-everything", at=at(0))
    make_version(integration, 1, 0, at(1), staff_a)
    first = declare(route.infref, 1, at(2), staff_a, [aarhus])
    make_transfers(route, 1, name="v1.0-d1", at=at(3))
    make_version(integration, 1, 1, at(4), staff_a)
    GdprDeclaration.objects.filter(pk=first.pk).update(outdated_at=at(4))
    make_transfers(route, 1, name="v1.1-d1", at=at(5))
    declare(route.infref, 2, at(6), staff_a, [aarhus], spec_version="1.1")
    make_transfers(route, 1, name="v1.1-d2", at=at(7))
    # At the very moment a version appears, the transfer still ran under the one before.
    make_transfers(route, 1, name="same-instant", at=at(4))

    response = english(client_for(architect)).get(URL)
    assert response.status_code == 200
    assert ran_under(response) == {
        "before-everything-0.csv": (None, None),
        "v1.0-d1-0.csv": ("1.0", 1),
        "same-instant-0.csv": ("1.0", 1),
        "v1.1-d1-0.csv": ("1.1", 1),
        "v1.1-d2-0.csv": ("1.1", 2),
    }
    rows = {p.name: p.ran_under for p in passages(response)}
    # Declaration 1 was marked outdated by version 1.1 before this transfer, and declares 1.0.
    assert rows["v1.1-d1-0.csv"].declaration_outdated
    assert rows["v1.1-d1-0.csv"].declared_version_differs
    assert not rows["v1.0-d1-0.csv"].declaration_outdated
    assert not rows["v1.1-d2-0.csv"].declared_version_differs
    html = response.content.decode()
    assert "None submitted before the transfer" in html
    assert "Marked outdated before the transfer" in html
    assert "Declares specification version 1.0" in html
    # Newest first.
    names = [p.name for p in passages(response)]
    assert names[0] == "v1.1-d2-0.csv" and names[-1] == "before-everything-0.csv"


def test_a_declaration_that_does_not_name_the_municipality_is_flagged_not_hidden(
    client_for, architect, staff_a, odense, route, integration
):
    make_version(integration, 1, 0, at(0), staff_a)
    declaration = declare(route.infref, 1, at(1), staff_a, [odense])
    make_transfers(route, 1, name="for-aarhus", at=at(2))
    response = english(client_for(architect)).get(URL)
    found = passages(response)[0].ran_under
    assert found.declaration == declaration
    assert not found.names_municipality
    # Aarhus may not open a declaration that does not name it, so there is no link.
    assert not found.declaration_visible
    html = response.content.decode()
    assert "Does not name Aarhus Kommune as data controller" in html
    assert reverse("gdpr:declaration", args=[declaration.pk]) not in html
    # The version is the architect's to read: it links.
    assert found.version_visible
    assert reverse("specs:version", args=[found.version.pk]) in html


def test_versions_and_declarations_of_other_integrations_do_not_mix(
    client_for, architect, staff_a, aarhus, route, integration, system_a, system_b, operator
):
    other = make_integration(system_a, system_b, staff_a, [aarhus], name="Anden")
    other_route = make_route(other, aarhus, operator)
    make_version(integration, 1, 0, at(0), staff_a)
    make_version(other, 3, 0, at(0), staff_a)
    declare(route.infref, 1, at(0), staff_a, [aarhus])
    declare(other_route.infref, 7, at(0), staff_a, [aarhus])
    make_transfers(route, 1, name="first", at=at(1))
    make_transfers(other_route, 1, name="second", at=at(1))
    response = english(client_for(architect)).get(URL)
    assert ran_under(response) == {"first-0.csv": ("1.0", 1), "second-0.csv": ("3.0", 7)}


# --- Who sees what ---------------------------------------------------------------------------


def test_an_architect_reviews_only_their_own_municipality(
    client_for, architect, staff_a, operator, integration, route, odense
):
    odense_route = make_route(integration, odense, operator, infref=route.infref)
    make_transfers(route, 2, name="aarhus")
    make_transfers(odense_route, 3, name="odense")
    receive(route, "aarhus.csv", size=10, sha256="b" * 64)
    receive(odense_route, "odense.csv", size=20, sha256="c" * 64)
    client = english(client_for(architect))

    response = client.get(URL)
    assert response.context["municipality"].municipality_code == "751"
    assert {t.original_name for t in transfers_shown(response)} == {"aarhus-0.csv", "aarhus-1.csv"}
    assert from_outside(response) == ["aarhus.csv"]
    html = response.content.decode()
    assert "odense" not in html.lower().replace("odense kommune", "")

    # Another municipality is missing, whether it exists or not.
    assert client.get(URL, {"municipality": "461"}).status_code == 404
    assert client.get(URL, {"municipality": "999"}).status_code == 404
    assert client.get(URL, {"municipality": "751"}).status_code == 200


@pytest.mark.parametrize("user_fixture", ["staff_a", "staff_b", "operator"])
def test_who_acts_for_no_municipality_finds_no_review(request, client_for, user_fixture, route):
    client = client_for(request.getfixturevalue(user_fixture))
    assert client.get(URL).status_code == 404
    assert client.get(URL, {"municipality": "751"}).status_code == 404


def test_an_anonymous_visitor_is_sent_to_log_in(client, route):
    response = client.get(URL, {"municipality": "751"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_a_superuser_chooses_a_municipality(client_for, superuser, route):
    make_transfers(route, 1)
    client = english(client_for(superuser))
    response = client.get(URL)
    assert response.status_code == 200
    assert response.context["municipality"] is None
    assert "Choose a municipality" in response.content.decode()
    response = client.get(URL, {"municipality": "751"})
    assert len(transfers_shown(response)) == 1
    assert client.get(URL, {"municipality": "999"}).status_code == 404


def test_an_architect_of_two_municipalities_switches_between_them(
    client_for, aarhus, odense, integration, route, operator
):
    from portal.accounts.models import Membership

    both = make_user("architect-both", aarhus)
    Membership.objects.create(user=both, organisation=odense)
    make_transfers(make_route(integration, odense, operator, infref=route.infref), 1)
    client = english(client_for(both))
    response = client.get(URL)
    assert [c.municipality_code for c in response.context["choices"]] == ["751", "461"]
    assert response.context["municipality"] == aarhus
    response = client.get(URL, {"municipality": "461"})
    assert len(transfers_shown(response)) == 1


# --- What the page shows ---------------------------------------------------------------------


def test_a_transfer_and_the_file_it_became_at_the_receiver_are_one_row(
    client_for, architect, route
):
    [sent] = make_transfers(route, 1, name="omsorg_test", size=2048, at=at(0))
    Transfer.objects.filter(pk=sent).update(sha256="d" * 64, finished_at=at(0))
    copy = fetched_copy(sent, "alfa_omsorg_FDD_7076.csv", at=at(1))
    response = english(client_for(architect)).get(URL)
    [row] = passages(response)
    assert (row.transfer.pk, row.received) == (sent, copy)
    assert from_outside(response) == []
    html = response.content.decode()
    assert "Sending IT system" in html and "Receiving IT system" in html
    assert "omsorg_test-0.csv" in html and "Delivered" in html and "Fetched" in html
    # The receiver's name for the file is there to find, but the row is the sender's file.
    assert "At the receiver" in html and "alfa_omsorg_FDD_7076.csv" in html
    assert reverse("transfers:received_download", args=[copy.pk]) in html
    # IT systems, not the SFTP user the metadata named.
    assert route.sender.name in html and route.receiver.name in html
    assert "alfa_omsorg</" not in html and "alfa_omsorg<" not in html
    # The hash, shortened, with the whole of it one click away; the size with its unit.
    assert "SHA-256 <code>dddddddddddd</code>…" in html and "d" * 64 in html
    assert "2.0\xa0KB" in html


def test_a_file_from_a_sender_outside_the_portal_shows_with_the_sending_it_system(
    client_for, architect, route
):
    outside = receive(route, "udefra.csv", size=2048, sha256="e" * 64, at=at(1))
    [not_fetched] = make_transfers(route, 1, name="undervejs", state="sent", at=at(2))
    [failed] = make_transfers(route, 1, name="fejlet", state="failed", at=at(3))
    response = english(client_for(architect)).get(URL)
    rows = passages(response)
    assert [(p.transfer.pk if p.transfer else None, p.received) for p in rows] == [
        (failed, None),
        (not_fetched, None),
        (None, outside),
    ]
    assert rows[2].ran_under.moment == at(1)  # what was in force when it was received
    sender, receiver = route.sender.name, route.receiver.name
    # Each side's IT system and state, up to the time (whose format is the language's).
    assert [re.split(r" \d", cell)[0] for cell in cells(response, "review-sender")] == [
        f"{sender} Failed",
        f"{sender} Sent",
        f"{sender} Not sent through the portal",
    ]
    assert [re.split(r" \d", cell)[0] for cell in cells(response, "review-receiver")] == [
        f"{receiver} –",
        f"{receiver} Not fetched yet",
        f"{receiver} Fetched",
    ]
    html = response.content.decode()
    assert "alfa_omsorg" not in html
    assert reverse("transfers:received_download", args=[outside.pk]) in html


def test_a_file_on_another_municipalitys_route_is_never_shown_with_a_transfer(
    client_for, architect, route, integration, odense, operator
):
    odense_route = make_route(integration, odense, operator, infref=route.infref)
    [sent] = make_transfers(route, 1, name="til-aarhus", at=at(0))
    elsewhere = fetched_copy(sent, "til-odense.csv", at=at(1))
    ReceivedFile.objects.filter(pk=elsewhere.pk).update(route=odense_route)
    response = english(client_for(architect)).get(URL)
    [row] = passages(response)
    assert (row.transfer.pk, row.received) == (sent, None)
    assert "til-odense.csv" not in response.content.decode()


def test_sizes_are_shown_with_their_unit_in_the_users_language(client_for, architect, route):
    make_transfers(route, 1, size=1000, at=at(0))
    receive(route, "stor.csv", size=3 * 1024 * 1024, at=at(1))
    client = client_for(architect)
    html = english(client).get(URL).content.decode()
    assert "1000\xa0bytes" in html and "3.0\xa0MB" in html
    client.cookies["django_language"] = "da"
    html = client.get(URL).content.decode()
    assert "3,0\xa0MB" in html


def test_a_quarantined_file_on_a_route_says_why(client_for, architect, route):
    receive(route, "mistænkt.csv", state="quarantined", reason="Metadata mangler.")
    html = english(client_for(architect)).get(URL).content.decode()
    assert "mistænkt.csv" in html and "Quarantined" in html and "Metadata mangler." in html
    quarantined = ReceivedFile.objects.get(remote_name="mistænkt.csv")
    assert reverse("transfers:received_download", args=[quarantined.pk]) not in html


def test_pages_of_transfers_and_files_from_outside_cover_every_row_once_both_ways(
    client_for, architect, route
):
    """Both kinds share moments, so the order falls back on the kind and then the id."""
    rows = []
    for hour in range(4):
        for transfer_id in make_transfers(route, 9, at=at(hour)):
            rows.append((at(hour), 0, transfer_id))
        for i in range(8):
            rows.append((at(hour), 1, receive(route, f"udefra-{hour}-{i}.csv", at=at(hour)).pk))
    # Some transfers were fetched: they are one row with their file, not two.
    for transfer_id in [row[2] for row in rows if row[1] == 0][::4]:
        fetched_copy(transfer_id, f"hentet-{transfer_id}.csv", at=at(9))
    newest_first = sorted(rows, reverse=True)
    client = english(client_for(architect))

    def shown(response):
        return [
            (p.moment, 0, p.transfer.pk) if p.transfer else (p.moment, 1, p.received.pk)
            for p in passages(response)
        ]

    pages = [client.get(URL)]
    while links(pages[-1]).older:
        pages.append(client.get(URL + links(pages[-1]).older))
    assert [row for page in pages for row in shown(page)] == newest_first
    # The first page ends on a file from outside: its cursor marks the kind.
    assert len(pages) == 3 and cursor_in(links(pages[0]).older).prefix == "r"
    back = [pages[-1]]
    while links(back[-1]).newer:
        back.append(client.get(URL + links(back[-1]).newer))
    assert [shown(page) for page in back] == [shown(page) for page in reversed(pages)]


def test_flows_are_grouped_by_integration_and_infref_and_filter_the_lists(
    client_for, architect, aarhus, route, integration, operator
):
    second = make_route(integration, aarhus, operator)  # another InfRef, same integration
    make_transfers(route, 2, name="first", state="failed")
    make_transfers(second, 3, name="second")
    receive(route, "first.csv")
    receive(second, "second.csv")
    client = english(client_for(architect))
    response = client.get(URL)
    flows = response.context["flows"]
    assert [(f.infref, [r.transfer_count for r in f.routes]) for f in flows] == [
        (route.infref, [2]),
        (second.infref, [3]),
    ]
    assert flows[0].routes[0].failed_count == 2
    assert "Show only this flow" in response.content.decode()

    response = client.get(URL + "?" + flows[1].query)
    assert response.context["chosen_flow"].infref == second.infref
    assert {t.route_id for t in transfers_shown(response)} == {second.pk}
    assert from_outside(response) == ["second.csv"]
    assert "Show every flow" in response.content.decode()
    # Junk in the filter is ignored, not an error.
    assert client.get(URL, {"integration": "x", "infref": "'"}).status_code == 200


def test_transfers_come_a_page_at_a_time_and_the_links_keep_the_municipality(
    client_for, superuser, route
):
    size = PAGE_SIZE
    # Two pages and a bit, half of them sharing a moment, so the order falls back on the id.
    half = size + size // 2
    ids = make_transfers(route, half, at=at(0)) + make_transfers(route, half, at=at(1))
    newest_first = sorted(ids, key=lambda pk: (pk > ids[half - 1], pk), reverse=True)
    client = english(client_for(superuser))

    def shown(response):
        return [t.pk for t in transfers_shown(response)]

    response = client.get(URL, {"municipality": "751"})
    page = links(response)
    assert shown(response) == newest_first[:size]
    assert not page.newer and not page.newest
    assert "municipality=751" in page.older
    assert cursor_in(page.older).pk == newest_first[size - 1]
    assert page.older.replace("&", "&amp;") in response.content.decode()

    second = client.get(URL + page.older)
    assert shown(second) == newest_first[size : 2 * size]
    assert links(second).newest == "?municipality=751"
    third = client.get(URL + links(second).older)
    assert shown(third) == newest_first[2 * size :]
    assert not links(third).older
    back = client.get(URL + links(third).newer)
    assert shown(back) == newest_first[size : 2 * size]
    first_again = client.get(URL + links(back).newer)
    assert shown(first_again) == newest_first[:size]
    assert not links(first_again).newer

    # Text that is no cursor a page made, or one of a kind the list does not have, starts from
    # the newest.
    for junk in ("999999", "garbage!", Cursor(at(1), ids[0], newer=False, prefix="x").encode()):
        assert shown(client.get(URL, {"municipality": "751", "cursor": junk})) == shown(response)


def test_a_cursor_from_another_municipality_reveals_nothing(
    client_for, architect, route, integration, odense, operator
):
    make_transfers(route, 3, at=at(5))
    odense_ids = make_transfers(make_route(integration, odense, operator, infref=route.infref), 1)
    client = client_for(architect)
    elsewhere = Transfer.objects.get(pk=odense_ids[0])
    for newer in (False, True):
        cursor = Cursor(elsewhere.queued_at, elsewhere.pk, newer=newer).encode()
        response = client.get(URL, {"cursor": cursor})
        assert len(transfers_shown(response)) == 3


def _review_queries(client, **params) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(URL, params).status_code == 200
    return len(queries)


@pytest.mark.parametrize("user_fixture", ["architect", "superuser"])
def test_the_review_costs_the_same_queries_however_many_rows(
    request,
    client_for,
    user_fixture,
    staff_a,
    aarhus,
    route,
    integration,
    system_a,
    system_b,
    operator,
):
    client = client_for(request.getfixturevalue(user_fixture))
    make_version(integration, 1, 0, at(0), staff_a)
    declare(route.infref, 1, at(0), staff_a, [aarhus])
    first, _second = make_transfers(route, 2, at=at(1))
    fetched_copy(first, "one.csv", at=at(2))
    receive(route, "two.csv", at=at(2))
    few = _review_queries(client, municipality="751")

    for n in range(4):
        other = make_integration(system_a, system_b, staff_a, [aarhus], name=f"Flere {n}")
        other_route = make_route(other, aarhus, operator)
        make_version(other, 1, 0, at(n), staff_a)
        make_version(other, 2, 0, at(n + 10), staff_a)
        declare(other_route.infref, 1, at(n), staff_a, [aarhus])
        declare(other_route.infref, 2, at(n + 10), staff_a, [aarhus])
        # Every page has transfers, some fetched, and files from outside the portal.
        for hour in (n + 5, n + 20):
            sent = make_transfers(other_route, 15, at=at(hour))
            for transfer_id in sent[::3]:
                fetched_copy(transfer_id, f"fetched-{transfer_id}.csv", at=at(hour))
            for i in range(8):
                receive(other_route, f"file-{n}-{hour}-{i}.csv", at=at(hour))
    assert Transfer.objects.count() == 122
    assert _review_queries(client, municipality="751") == few
    # A later page costs what the first costs, whatever its depth: its cursor says where it
    # stands, so no row is looked up.
    newest_first = Transfer.objects.order_by("-queued_at", "-pk")
    for depth in (70, 120):
        row = newest_first[depth]
        cursor = Cursor(row.queued_at, row.pk, newer=False).encode()
        assert _review_queries(client, municipality="751", cursor=cursor) == few
