"""The transfer list: filters, search, keyset pages, live rows and the CSV export."""

import base64
import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from gdpr.models import InfRef
from portal.accounts.models import Organisation
from portal.itsystems.models import ItSystem
from tests.conftest import make_user
from tests.support import engine
from tests.support.clients import HTMX
from tests.support.records import established_route, make_transfer
from transfers import list_export, list_options, listing
from transfers.models import Transfer
from transfers.split import split_csv
from transfers.widgets import ManyOptionsSelect

BASE = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def world(operator, vendor_a, vendor_b, system_a, system_b, aarhus, odense):
    """Three routes, one transfer each, on different days, states and IT systems."""
    system_a2 = ItSystem.objects.create(
        uuid=uuid.uuid4(), name="Alfa Skole", vendor=vendor_a, is_sender=True
    )
    system_b2 = ItSystem.objects.create(
        uuid=uuid.uuid4(), name="Beta Arkiv", vendor=vendor_b, is_receiver=True
    )
    infref1 = InfRef.objects.create(
        name="FagsystemdefineredeDataRefGDPR11_1", it_system=system_a, assigned_by=operator
    )
    infref2 = InfRef.objects.create(
        name="FagsystemdefineredeDataRefGDPR12_1", it_system=system_a2, assigned_by=operator
    )
    account = engine.account(system_a, "alfa_omsorg", None)
    account2 = engine.account(system_a2, "alfa_skole", None)
    r1 = established_route(infref1, system_a, system_b, aarhus)
    r2 = established_route(infref1, system_a, system_b, odense)
    r3 = established_route(infref2, system_a2, system_b2, aarhus)
    t1 = make_transfer(
        r1, account, "Borgere Marts.csv", BASE, state="delivered", file_transfer_uuid=uuid.uuid4()
    )
    # 00:30 on 2 March in Copenhagen is still 1 March in UTC.
    t2 = make_transfer(r2, account, "elever.csv", datetime(2025, 3, 1, 23, 30, tzinfo=UTC))
    Transfer.objects.filter(pk=t2.pk).update(state="failed", error_code=106, error_text="Nej")
    t3 = make_transfer(r3, account2, "skole.csv", BASE + timedelta(days=2), state="sending")
    return dict(
        routes=(r1, r2, r3),
        infrefs=(infref1, infref2),
        systems=(system_a, system_a2, system_b, system_b2),
        accounts=(account, account2),
        transfers=(t1, t2, t3),
    )


def names(response) -> list[str]:
    return [transfer.original_name for transfer in response.context["page"].rows]


def test_the_list_shows_the_users_transfers_newest_first(client_for, staff_a, world):
    response = client_for(staff_a).get(reverse("transfers:list"))
    assert response.status_code == 200
    assert names(response) == ["skole.csv", "elever.csv", "Borgere Marts.csv"]
    page = response.content.decode()
    assert 'hx-trigger="every 2s"' in page  # one row is still sending
    assert 'aria-live="polite"' in page


def test_every_cell_of_a_row_is_escaped(client_for, staff_a, world):
    """The file's name is the sender's and the IT systems' names their vendors': none is markup."""
    t1 = world["transfers"][0]
    Transfer.objects.filter(pk=t1.pk).update(original_name='<b>"Borgere"</b> & co.csv')
    ItSystem.objects.filter(pk=world["systems"][2].pk).update(name="Beta <i>Modtag</i> & Co")
    page = client_for(staff_a).get(reverse("transfers:list")).content.decode()
    assert "&lt;b&gt;&quot;Borgere&quot;&lt;/b&gt; &amp; co.csv</a>" in page
    assert "<td>Beta &lt;i&gt;Modtag&lt;/i&gt; &amp; Co</td>" in page
    assert "<b>" not in page and "<i>Modtag" not in page
    assert '<span class="badge badge-success">' in page  # the badge itself stays markup


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("state", "failed", ["elever.csv"]),
        ("state", "no-such-state", ["skole.csv", "elever.csv", "Borgere Marts.csv"]),
        ("route", 1, ["elever.csv"]),
        ("infref", 1, ["skole.csv"]),
        ("municipality", "odense", ["elever.csv"]),
        ("sender", 1, ["skole.csv"]),
        ("receiver", 3, ["skole.csv"]),
        ("queued_from", "2025-03-02", ["skole.csv", "elever.csv"]),
        ("queued_to", "2025-03-01", ["Borgere Marts.csv"]),
        ("queued_to", "1. marts", ["skole.csv", "elever.csv", "Borgere Marts.csv"]),
    ],
)
def test_each_filter(client_for, staff_a, world, odense, field, value, expected):
    picks = {
        "route": lambda i: world["routes"][i].pk,
        "infref": lambda i: world["infrefs"][i].pk,
        "sender": lambda i: world["systems"][i].pk,
        "receiver": lambda i: world["systems"][i].pk,
    }
    if field in picks:
        value = picks[field](value)
    elif field == "municipality":
        value = odense.pk
    response = client_for(staff_a).get(reverse("transfers:list"), {field: value})
    assert response.status_code == 200
    assert names(response) == expected


def test_a_date_range_and_a_state_combine(client_for, staff_a, world):
    response = client_for(staff_a).get(
        reverse("transfers:list"),
        {"queued_from": "2025-03-01", "queued_to": "2025-03-02", "state": "delivered"},
    )
    assert names(response) == ["Borgere Marts.csv"]


def test_a_range_ending_before_it_starts_is_an_error_on_the_field(client_for, staff_a, world):
    response = client_for(staff_a).get(
        reverse("transfers:list"), {"queued_from": "2025-03-03", "queued_to": "2025-03-01"}
    )
    assert response.status_code == 200
    assert response.context["form"].errors["queued_to"]
    assert names(response) == ["skole.csv"]  # the valid bound still filters


def search(client, text: str) -> list[str]:
    response = client.get(reverse("transfers:list"), {"q": text})
    assert response.status_code == 200
    return names(response)


def test_search_by_name_and_by_the_platforms_ids(client_for, staff_a, world):
    t1, t2, t3 = world["transfers"]
    client = client_for(staff_a)
    assert search(client, "borgere") == ["Borgere Marts.csv"]  # part, any case
    assert search(client, "  .CSV ") == ["skole.csv", "elever.csv", "Borgere Marts.csv"]
    assert search(client, "alfa_skole_FDD_") == ["skole.csv"]  # the remote name
    assert search(client, t2.remote_name) == ["elever.csv"]
    assert search(client, str(t1.senders_file_id)) == ["Borgere Marts.csv"]
    assert search(client, str(t2.transaction_id).upper()) == ["elever.csv"]
    assert search(client, str(t1.file_transfer_uuid)) == ["Borgere Marts.csv"]
    assert search(client, t3.senders_file_id.hex) == ["skole.csv"]  # without hyphens
    assert search(client, str(uuid.uuid4())) == []
    assert search(client, "%") == []


@pytest.mark.parametrize(
    "text", ["1b4e28ba-2fa1-11d2-883f-0016", "1b4e28ba-2fa1-11d2-883f-0016d3cca42z", "{}", "\x00"]
)
def test_a_malformed_uuid_is_searched_as_a_name(client_for, staff_a, world, text):
    response = client_for(staff_a).get(reverse("transfers:list"), {"q": text})
    assert response.status_code == 200
    if text != "\x00":
        assert names(response) == []


def test_the_filter_offers_only_what_the_user_may_see(
    client_for, architect, operator, world, odense
):
    """The Aarhus architect sees the two Aarhus routes; KOMBIT sees routes but no transfers."""
    form = client_for(architect).get(reverse("transfers:list")).context["form"]
    senders = [value for value, _label in form.fields["sender"].widget.choices]
    r1, _r2, r3 = world["routes"]
    assert senders == ["", *sorted({r1.sender_id, r3.sender_id})]
    municipalities = [label for _value, label in form.fields["municipality"].widget.choices]
    assert municipalities == ["Alle", "Aarhus Kommune (751)"]
    response = client_for(architect).get(reverse("transfers:list"), {"municipality": odense.pk})
    assert names(response) == []

    response = client_for(operator).get(reverse("transfers:list"))
    assert names(response) == []
    assert response.context["form"].fields["municipality"].widget.choices == [("", "Alle")]


@pytest.fixture
def stranger(db):
    vendor = Organisation.objects.create(kind="vendor", name="Gamma IT", cvr="10000009")
    return make_user("stranger", vendor)


def test_another_vendor_sees_nothing(client_for, stranger, world):
    client = client_for(stranger)
    response = client.get(reverse("transfers:list"))
    assert names(response) == []
    assert response.context["form"].fields["infref"].widget.choices == [("", "Alle")]
    rows = client.get(reverse("transfers:rows"), **HTMX)
    assert rows.context["page"].rows == []
    assert "elever.csv" not in rows.content.decode()
    lines = list(csv.reader(io.StringIO(export(client).lstrip("\ufeff")), delimiter=";"))
    assert len(lines) == 1
    for transfer in world["transfers"]:
        for name in ("detail", "progress", "download"):
            url = reverse(f"transfers:{name}", args=[transfer.pk])
            assert client.get(url, **HTMX).status_code == 404, name
        assert client.post(reverse("transfers:cancel", args=[transfer.pk])).status_code == 404


@pytest.fixture
def many(staff_a, world):
    """123 more transfers; runs of three share a queued_at, so the id must break the ties."""
    route, account = world["routes"][0], world["accounts"][0]
    start = BASE - timedelta(days=30)
    for number in range(123):
        make_transfer(
            route,
            account,
            f"del-{number:03}.csv",
            start + timedelta(minutes=number // 3),
            state="delivered",
        )
    return Transfer.objects.order_by("-queued_at", "-id")


def test_keyset_pages_cover_every_row_once_both_ways(client_for, staff_a, many):
    client = client_for(staff_a)
    expected = list(many.values_list("pk", flat=True))
    assert len(expected) == 126
    pages, url = [], reverse("transfers:list")
    while url:
        response = client.get(url)
        assert response.status_code == 200
        pages.append([transfer.pk for transfer in response.context["page"].rows])
        url = response.context["older_url"]
    assert [len(page) for page in pages] == [50, 50, 26]
    assert [pk for page in pages for pk in page] == expected
    assert "cursor=" in response.context["newer_url"]

    backwards = []
    url = response.context["newer_url"]
    while url:
        response = client.get(url)
        backwards.append([transfer.pk for transfer in response.context["page"].rows])
        url = response.context["newer_url"]
    assert backwards == pages[1::-1]
    assert response.context["older_url"] and not response.context["newer_url"]


def test_a_page_keeps_the_filters_in_its_links(client_for, staff_a, many):
    response = client_for(staff_a).get(reverse("transfers:list"), {"q": "del-", "state": "x"})
    assert len(response.context["page"].rows) == 50
    older = response.context["older_url"]
    assert "q=del-" in older and "state=" not in older  # an invalid value is dropped
    response = client_for(staff_a).get(older)
    assert {t.original_name[:4] for t in response.context["page"].rows} == {"del-"}


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "%%%",
        _b64("o|2025-01-01T00:00:00|5"),  # no time zone
        _b64("x|2025-01-01T00:00:00+00:00|5"),
        _b64("o|yesterday|5"),
        _b64("o|2025-01-01T00:00:00+00:00|-5"),
        _b64("o|2025-01-01T00:00:00+00:00|99999999999999999999999"),
        _b64("o|2025-01-01T00:00:00+00:00|5|6"),
        _b64("o|1900-01-01T00:00:00+00:00|5"),  # valid, but nothing is older
        _b64("o|0001-01-01T00:00:00+05:00|5"),  # before the year 1 in UTC
        _b64("n|9999-12-31T23:59:59-05:00|5"),
        "A" * 500,
        base64.urlsafe_b64encode(b"\xff\xfe|").decode(),
    ],
)
def test_a_bad_cursor_reads_the_first_page(client_for, staff_a, many, cursor):
    client = client_for(staff_a)
    first = [t.pk for t in client.get(reverse("transfers:list")).context["page"].rows]
    response = client.get(reverse("transfers:list"), {"cursor": cursor})
    assert response.status_code == 200
    assert [t.pk for t in response.context["page"].rows] == first
    assert not response.context["newer_url"]
    rows = client.get(reverse("transfers:rows"), {"cursor": cursor}, **HTMX)
    assert [t.pk for t in rows.context["page"].rows] == first


def test_the_cursor_round_trips():
    cursor = listing.Cursor(datetime(2025, 3, 1, 9, 0, 0, 123456, tzinfo=UTC), 42, newer=False)
    assert listing.Cursor.decode(cursor.encode()) == cursor


def test_a_cursors_text_is_stable_so_a_cursor_held_reads_its_page(client_for, staff_a, many):
    """An API client may hold a cursor across an upgrade: `o|<queued_at>|<id>`, as it was."""
    rows = list(many)
    at = rows[60]
    made_before = _b64(f"o|{at.queued_at.isoformat()}|{at.pk}").rstrip("=")
    assert listing.Cursor.of(at, newer=False).encode() == made_before
    response = client_for(staff_a).get(reverse("transfers:list"), {"cursor": made_before})
    assert [t.pk for t in response.context["page"].rows] == [t.pk for t in rows[61:111]]


def test_the_drop_down_escapes_its_options_and_selects_the_first_match_only():
    widget = ManyOptionsSelect(choices=[("", "Alle"), (1, "<b>Alfa</b> & Co"), ("1", "igen")])
    html = widget.render("sender", "1", {"id": "id_sender"})
    assert html.startswith('<select name="sender" class="form-select" id="id_sender">')
    assert '<option value="">Alle</option>' in html
    assert '<option value="1" selected>&lt;b&gt;Alfa&lt;/b&gt; &amp; Co</option>' in html
    assert '<option value="1">igen</option>' in html


def _queries_for(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, **({"HTTP_HX_REQUEST": "true"} if "rows" in url else {}))
    assert response.status_code == 200
    return len(queries)


def test_the_number_of_queries_does_not_grow_with_the_rows(client_for, staff_a, world):
    client = client_for(staff_a)
    route, account = world["routes"][0], world["accounts"][0]
    counts = {}
    for total in (5, 60):
        while Transfer.objects.count() < total:
            make_transfer(route, account, state="sending", bytes_done=1)
        counts[total] = (
            _queries_for(client, reverse("transfers:list")),
            _queries_for(client, reverse("transfers:rows")),
        )
    assert counts[5] == counts[60]


def export(client, **params) -> str:
    response = client.get(reverse("transfers:export"), params)
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="transfers-')
    raw = b"".join(response.streaming_content)
    assert raw.startswith(b"\xef\xbb\xbf")
    return raw.decode("utf-8")


def test_the_csv_export_has_every_column_of_the_filtered_rows(client_for, staff_a, world):
    t1, t2, _t3 = world["transfers"]
    client = client_for(staff_a)
    text = export(client)
    lines = list(csv.reader(io.StringIO(text.removeprefix("\ufeff")), delimiter=";"))
    header, *rows = lines
    assert len(header) == 18
    assert header[4:6] == ["SHA-256", "InfRef"]
    assert header[10:13] == ["SendersFileId", "TransactionId", "FileTransferUUID"]
    assert [row[2] for row in rows] == ["skole.csv", "elever.csv", "Borgere Marts.csv"]
    assert rows[1][1] == str(Transfer.State.FAILED.label)
    assert rows[1] == [
        "2025-03-02 00:30:00",  # Copenhagen time
        rows[1][1],
        "elever.csv",
        str(t2.size),
        t2.sha256,
        "FagsystemdefineredeDataRefGDPR11_1",
        "Odense Kommune",
        "461",
        "Alfa Omsorg",
        "Beta Journal",
        str(t2.senders_file_id),
        str(t2.transaction_id),
        "",
        "0",
        "106",
        "Nej",
        "",
        "",
    ]
    assert rows[2][12] == str(t1.file_transfer_uuid)

    filtered = export(client, state="failed")
    assert len(list(csv.reader(io.StringIO(filtered), delimiter=";"))) == 2


# CSV injection: every start of a cell that Excel or LibreOffice may read as a formula or a DDE
# call (OWASP "CSV Injection", ASVS 1.2.10), the same after spaces or a line break that a
# spreadsheet may trim on import, and the payloads of the security probe.
FORMULA_CELLS = {
    "equals": "=1+1",
    "plus": "+1+1",
    "minus": "-1+1",
    "at": "@SUM(1+1)",
    "tab": "\t=1+1",
    "carriage-return": "\r=1+1",
    "line-feed": "\n=1+1",
    "space": " =1+1",
    "spaces-at": "   @SUM(1+1)",
    "no-break-space": "\u00a0=1+1",
    "hyperlink": '=HYPERLINK("http://x","y")',
    "dde-plus": "+cmd|' /C calc'!A0",
    "dde-equals": "=cmd|' /C calc'!A0",
    "arithmetic": "-2+3",
}
# The columns a person or a remote party fills: the file name, the municipality's and the IT
# systems' names (kept by administrators and vendors) and KOMBIT's error text.
TYPED_COLUMNS = {2: "File", 6: "Municipality", 8: "Sender", 9: "Receiver", 15: "KOMBIT error text"}


def _exported_row(client, world, text: str) -> list[str]:
    """The export's row of a new transfer whose every typed column holds `text`."""
    route, account = world["routes"][0], world["accounts"][0]
    ItSystem.objects.filter(pk=route.sender_id).update(name=text)
    ItSystem.objects.filter(pk=route.receiver_id).update(name=text)
    Organisation.objects.filter(pk=route.municipality_id).update(name=text)
    transfer = make_transfer(
        route, account, text, BASE + timedelta(days=9), state="failed", error_text=text
    )
    lines = list(
        csv.reader(io.StringIO(export(client).removeprefix("\ufeff"), newline=""), delimiter=";")
    )
    header, newest = lines[0], lines[1]
    assert len(header) == len(newest) == 18, newest  # nothing in the text started a new cell
    assert newest[4] == transfer.sha256
    return newest


@pytest.mark.parametrize("text", FORMULA_CELLS.values(), ids=FORMULA_CELLS.keys())
def test_a_csv_cell_is_never_a_formula(client_for, staff_a, world, text):
    row = _exported_row(client_for(staff_a), world, text)
    wrong = {
        name: row[column] for column, name in TYPED_COLUMNS.items() if row[column] != "'" + text
    }
    assert not wrong, f"written as a formula, not as text after an apostrophe: {wrong}"


@pytest.mark.parametrize(
    "text",
    [
        "borgere.csv",
        " borgere.csv",
        "a=b.csv",
        "2025-03-01.csv",
        "'citeret.csv",
        "x;=1+1",
        'x";=1+1',
    ],
)
def test_text_that_is_no_formula_is_written_as_it_is(client_for, staff_a, world, text):
    """No apostrophe where none is needed; a delimiter or quote in a cell never starts another
    cell, so a formula cannot begin inside one."""
    row = _exported_row(client_for(staff_a), world, text)
    assert {row[column] for column in TYPED_COLUMNS} == {text}


def test_a_nul_before_a_formula_is_text_too():
    """ASVS names NUL too; PostgreSQL cannot store it, so the row is written from values."""
    values = (None, "failed", "\0=1+1", 1, "0" * 64, "FagsystemdefineredeDataRefGDPR11_1")
    values += ("\0=1+1", "751", "\0=1+1", "\0=1+1", None, None, None, 1, 3, "\0=1+1", None, None)
    row = list_export.cells(list_export.columns(), values)
    assert [row[column] for column in TYPED_COLUMNS] == ["'\0=1+1"] * len(TYPED_COLUMNS)


def test_splitting_a_vendors_file_keeps_its_cells_as_they_are(db, tmp_path):
    """The other CSV writer (transfers/split.py) is no export for people: it cuts a vendor's data
    file into one file per municipality for the receiving IT system. An apostrophe there would
    change the data sent, so formula-looking cells pass as they are."""
    source = tmp_path / "borgere.csv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(["kommunekode", "note"])
        writer.writerows(["751", text] for text in FORMULA_CELLS.values())
    out = tmp_path / "out"
    out.mkdir()
    parts = split_csv(source, "kommunekode", out)
    with parts["751"].open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    assert [note for _code, note in rows[1:]] == list(FORMULA_CELLS.values())


def test_the_live_rows_fragment(client_for, staff_a, world):
    client = client_for(staff_a)
    t1, _t2, t3 = world["transfers"]
    url = reverse("transfers:rows")
    response = client.get(url, {"state": "failed"}, **HTMX)
    assert response.status_code == 200
    assert names(response) == ["elever.csv"]
    body = response.content.decode()
    assert "<html" not in body
    assert 'hx-trigger="every 15s"' in body  # every row on the page is final
    assert "state=failed" in body and "shown=" in body
    assert response["Cache-Control"].startswith("max-age=0")

    response = client.get(url, **HTMX)
    assert 'hx-trigger="every 2s"' in response.content.decode()
    assert 'hx-swap-oob="innerHTML"' not in response.content.decode()

    # The page last showed skole.csv sending; it is delivered now, and that is announced.
    Transfer.objects.filter(pk=t3.pk).update(state="delivered")
    response = client.get(url, {"shown": f"{t3.pk}:sending,{t1.pk}:delivered,x:y"}, **HTMX)
    body = response.content.decode()
    assert response.context["changes"] == [t3]
    assert 'id="transfer-rows-announcer" hx-swap-oob="innerHTML"' in body
    assert 'hx-trigger="every 15s"' in body


def test_the_rows_fragment_without_htmx_is_the_list_page(client, client_for, staff_a, world):
    url = reverse("transfers:rows")
    response = client_for(staff_a).get(url, {"state": "failed", "shown": "1:queued"})
    assert response.status_code == 302
    assert response["Location"] == reverse("transfers:list") + "?state=failed"
    client.logout()
    response = client.get(url, **HTMX, HTTP_HX_CURRENT_URL="http://testserver/transfers/")
    assert response["HX-Redirect"].startswith(reverse("login"))
    assert response.content == b""


@pytest.mark.parametrize(
    "who", ["staff_a", "staff_b", "architect", "odense_architect", "operator", "superuser"]
)
def test_the_options_are_those_of_the_transfers_seen(request, world, odense, who):
    from portal.accounts.access import visible

    if who == "odense_architect":
        user = make_user("architect-odense", odense)
    else:
        user = request.getfixturevalue(who)
    options = list_options.filter_options(user)
    seen = visible(user, Transfer.objects.all())
    for name in ("infref", "municipality", "sender", "receiver"):
        offered = {pk for pk, _label in getattr(options, name)}
        assert offered == set(seen.values_list(f"route__{name}_id", flat=True)), name


def test_a_route_is_chosen_from_the_routes_page_and_shown_in_words(client_for, staff_a, world):
    r1 = world["routes"][1]
    routes_page = client_for(staff_a).get(reverse("transfers:routes")).content.decode()
    assert f'href="{reverse("transfers:list")}?route={r1.pk}"' in routes_page

    response = client_for(staff_a).get(
        reverse("transfers:list"), {"route": r1.pk, "state": "failed"}
    )
    assert names(response) == ["elever.csv"]
    page = response.content.decode()
    label = f"{r1.infref.name}: {r1.sender.name} → {r1.receiver.name} · {r1.municipality.name}"
    assert label in page
    assert f'<input type="hidden" name="route" value="{r1.pk}"' in page  # kept when filtering on
    assert f'href="{reverse("transfers:list")}?state=failed"' in page  # every route again


def test_a_route_out_of_sight_is_named_by_its_number_and_shows_nothing(client_for, stranger, world):
    route = world["routes"][0]
    response = client_for(stranger).get(reverse("transfers:list"), {"route": route.pk})
    assert names(response) == []
    page = response.content.decode()
    assert f"Rute {route.pk}" in page
    assert route.infref.name not in page


def test_kombit_sees_routes_without_links_to_transfers(client_for, operator, world):
    page = client_for(operator).get(reverse("transfers:routes")).content.decode()
    assert world["routes"][0].infref.name in page
    assert "?route=" not in page


def test_the_csv_streams_in_pieces_without_losing_a_row(client_for, staff_a, world, monkeypatch):
    monkeypatch.setattr(list_export, "CSV_CHUNK", 2)
    response = client_for(staff_a).get(reverse("transfers:export"))
    pieces = [piece.decode() for piece in response.streaming_content]
    assert len(pieces) == 2
    rows = list(csv.reader(io.StringIO("".join(pieces)), delimiter=";"))[1:]
    assert [row[2] for row in rows] == ["skole.csv", "elever.csv", "Borgere Marts.csv"]


@pytest.mark.parametrize("value", ["0", "-1", "9223372036854775807", "9" * 30, "1e3", "x"])
def test_an_id_out_of_range_filters_nothing_and_does_not_crash(client_for, staff_a, world, value):
    for name in ("route", "infref", "municipality", "sender", "receiver"):
        response = client_for(staff_a).get(reverse("transfers:list"), {name: value})
        assert response.status_code == 200
        rows = client_for(staff_a).get(reverse("transfers:rows"), {name: value}, **HTMX)
        assert rows.status_code == 200
        export(client_for(staff_a), **{name: value})


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "2025-02-30", "2025-13-01"])
def test_a_date_at_the_end_of_the_calendar_does_not_crash(client_for, staff_a, world, day):
    for name in ("queued_from", "queued_to"):
        response = client_for(staff_a).get(reverse("transfers:list"), {name: day})
        assert response.status_code == 200
        export(client_for(staff_a), **{name: day})
