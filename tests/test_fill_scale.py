"""The scale fill (python -m bench.scale) and the pages bench/pages.py measures on what it makes.

Small counts here; the bench fills a million. What must hold at any size: the counts asked for,
every state on the pages, and pages whose number of queries does not grow with the rows.
"""

import pytest

from bench.pages import count_queries, fetch, logged_in, pages_of, the_users
from bench.scale import Refused, traffic
from bench.scale.__main__ import main
from bench.scale.fill import fill as fill_portal
from portal.accounts.models import Organisation
from portal.alerts.models import Alert
from portal.audit.models import AuditEvent
from tests.support.counts import hours_counted, hours_kept, tallies_counted, tallies_kept
from transfers.models import ReceivedFile, Route, Transfer

SMALL = {"transfers": 2000, "vendors": 3, "routes": 40, "days": 365}
LARGER = {"transfers": 5000, "vendors": 4, "routes": 80, "days": 365}


def fill(clear: bool = False, **counts) -> None:
    """Through the command line, as the bench fills."""
    arguments = [f"--{name}={value}" for name, value in counts.items()]
    assert main([*arguments, *(["--clear"] if clear else [])]) == 0


def queries_per_page() -> dict[tuple[str, str], int]:
    """What each page the bench measures costs in queries, after one request to warm up."""
    users = the_users()
    clients, counts = {}, {}
    for page in pages_of(users):
        client = clients.setdefault(page.user, logged_in(users[page.user]))
        body = fetch(client, page).content.decode()
        assert page.expect in body, f"{page.name} ({page.user}) does not show {page.expect!r}"
        counts[(page.name, page.user)] = count_queries(client, page)
    return counts


def test_the_fill_makes_what_was_asked(db):
    fill(**SMALL)
    assert Transfer.objects.count() == SMALL["transfers"]
    assert Organisation.objects.filter(kind=Organisation.Kind.VENDOR).count() == 3
    assert Organisation.objects.filter(kind=Organisation.Kind.MUNICIPALITY).count() == 98
    assert Route.objects.count() == SMALL["routes"]
    assert set(Transfer.objects.values_list("state", flat=True)) == set(Transfer.State.values)
    delivered = Transfer.objects.filter(state=Transfer.State.DELIVERED).first()
    assert delivered.trigger_xml and delivered.receipt_xml and delivered.file_transfer_uuid
    assert ReceivedFile.objects.exists()
    assert Alert.objects.count() == Transfer.objects.filter(state=Transfer.State.FAILED).count()
    assert AuditEvent.objects.exists()
    # The hourly and per-route counts were made after the load, and their triggers are back.
    assert hours_kept() == hours_counted()
    assert tallies_kept() == tallies_counted()
    # Ids written by the fill leave room for the portal's own: the next row gets a new one.
    assert Transfer.objects.create(
        route=delivered.route,
        account=delivered.account,
        original_name="ny.csv",
        payload="unused",
        size=1,
        sha256="0" * 64,
        remote_name="ny_FDD_unused.csv",
    ).pk > max(Transfer.objects.exclude(original_name="ny.csv").values_list("pk", flat=True))
    assert hours_kept() == hours_counted()
    assert tallies_kept() == tallies_counted()


def test_a_filled_database_is_refused_unless_cleared(db, capsys):
    fill(**SMALL)
    with pytest.raises(Refused, match="--clear"):
        fill_portal(**SMALL)
    assert main([f"--{name}={value}" for name, value in SMALL.items()]) == 1
    assert "--clear" in capsys.readouterr().err
    fill(clear=True, **{**SMALL, "transfers": 300})
    assert Transfer.objects.count() == 300
    assert hours_kept() == hours_counted()
    assert tallies_kept() == tallies_counted()
    assert Organisation.objects.filter(kind=Organisation.Kind.VENDOR).count() == 3
    assert Organisation.objects.filter(kind=Organisation.Kind.MUNICIPALITY).count() == 98


def test_the_same_seed_makes_the_same_transfers(db):
    def oldest() -> list[tuple]:
        # The newest few depend on the moment of the fill (how far they have come), the rest not.
        rows = Transfer.objects.order_by("pk").values_list("state", "size", "original_name")
        return list(rows[: SMALL["transfers"] * 9 // 10])

    fill(**SMALL)
    first = oldest()
    fill(clear=True, **SMALL)
    assert oldest() == first


def test_the_measured_pages_cost_the_same_queries_at_both_sizes(db):
    fill(**SMALL)
    small = queries_per_page()
    fill(clear=True, **LARGER)
    assert Transfer.objects.count() == LARGER["transfers"]
    assert queries_per_page() == small


@pytest.mark.system  # the rows of a fill of several batches are made by a forked process
def test_rows_made_by_a_second_process_are_the_rows_made_here(db, monkeypatch):
    """A fill of one batch makes its rows in this process; a larger one has them made in a
    forked process while this one writes the batch before. The same seed, the same rows."""

    def oldest() -> list[tuple]:
        # The newest few depend on the moment of the fill (how far they have come), the rest not.
        rows = Transfer.objects.order_by("pk").values_list(
            "state", "size", "original_name", "remote_name", "sha256", "attempts", "error_code"
        )
        return list(rows[: SMALL["transfers"] * 9 // 10])

    fill(**SMALL)
    here = oldest()
    monkeypatch.setattr(traffic, "BATCH", SMALL["transfers"] // 3)
    fill(clear=True, **SMALL)
    assert Transfer.objects.count() == SMALL["transfers"]
    assert oldest() == here
    assert Alert.objects.count() == Transfer.objects.filter(state=Transfer.State.FAILED).count()
    assert hours_kept() == hours_counted()
    assert tallies_kept() == tallies_counted()
