"""The receiving vendor's list of received files: each file by the name it was sent under and the
platform's name for it, the sending IT system rather than its SFTP user, sizes with their unit,
the environment it came through.

Assertions read English text: each test client chooses English.
"""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.support.clients import english
from tests.support.records import (
    at,
    fetched_copy,
    make_integration,
    make_route,
    make_transfers,
    receive,
)
from transfers.models import ReceivedFile

URL = reverse("transfers:received")


@pytest.fixture
def route(system_a, system_b, staff_a, aarhus, operator):
    return make_route(make_integration(system_a, system_b, staff_a, [aarhus]), aarhus, operator)


def rows(html: str) -> list[str]:
    """The text of each row of the list's body, spaces (no-break ones too) made single."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    found = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in found]


def test_a_file_the_portal_sent_shows_its_own_name_and_the_sending_it_system(
    client_for, staff_b, route
):
    [sent] = make_transfers(route, 1, name="borgere", size=4300, at=at(0))
    copy = fetched_copy(sent, "alfa_omsorg_FDD_7076.csv", at=at(1), sha256="c" * 64)
    html = english(client_for(staff_b)).get(URL).content.decode()
    [row] = rows(html)
    assert row.startswith("borgere-0.csv At the receiver: alfa_omsorg_FDD_7076.csv Received")
    assert f"{route.sender.name} SFTP user alfa_omsorg" in row
    assert route.get_environment_display() in row
    assert "4.2 KB" in row and "4300" not in row
    # The whole hash is one click away, the download under the platform's name.
    assert "c" * 64 in html
    assert reverse("transfers:received_download", args=[copy.pk]) in html


def test_a_file_from_outside_the_portal_shows_what_the_metadata_said(client_for, staff_b, route):
    receive(route, "udefra.csv", size=10, sha256="e" * 64, at=at(1))
    unrouted = receive(route, "uden-rute.csv", size=None, at=at(2), state="quarantined")
    ReceivedFile.objects.filter(pk=unrouted.pk).update(route=None, reason="Ingen rute.")
    html = english(client_for(staff_b)).get(URL).content.decode()
    quarantined, outside = rows(html)
    assert outside.startswith("udefra.csv Received")
    assert "At the receiver" not in outside and "10 bytes" in outside
    # No route, so no IT system to name: the SFTP user is what is known; no size, no hash.
    assert quarantined.startswith("uden-rute.csv Quarantined: Ingen rute.")
    assert " alfa_omsorg " in quarantined and "SFTP user" not in quarantined
    assert " – – " in quarantined


def test_the_search_finds_files_by_their_sending_it_system(client_for, staff_b, route):
    receive(route, "en.csv", at=at(1))
    client = english(client_for(staff_b))
    assert len(rows(client.get(URL, {"q": route.sender.name}).content.decode())) == 1
    assert "Nothing matches" in client.get(URL, {"q": "Ukendt System"}).content.decode()


def test_the_list_costs_the_same_queries_however_many_files(client_for, staff_b, route):
    client = english(client_for(staff_b))

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(URL).status_code == 200
        return len(captured)

    for hour, sent in enumerate(make_transfers(route, 2, at=at(0))):
        fetched_copy(sent, f"f{hour}.csv", at=at(hour + 1))
    few = queries()
    for hour, sent in enumerate(make_transfers(route, 20, at=at(0))):
        fetched_copy(sent, f"g{hour}.csv", at=at(hour + 10))
    receive(route, "udefra.csv", at=at(40))
    assert queries() == few
