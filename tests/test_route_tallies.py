"""The transfers per route and state that the database keeps (RouteTally), and the municipal
review's route totals that read them: they agree with counting the transfers, however the
transfers are written."""

import threading
import time

import pytest
from django.db import DatabaseError, connection, connections

from tests.support.clients import english
from tests.support.counts import hours_counted, hours_kept, tallies_counted, tallies_kept
from tests.support.records import make_integration, make_route, make_transfers
from transfers.models import RouteTally, Transfer

pytestmark = pytest.mark.django_db


@pytest.fixture
def integration(system_a, system_b, staff_a, aarhus):
    return make_integration(system_a, system_b, staff_a, [aarhus])


@pytest.fixture
def route(integration, aarhus, operator):
    return make_route(integration, aarhus, operator)


def test_every_way_of_writing_a_transfer_is_counted(route, integration, aarhus, operator):
    other = make_route(integration, aarhus, operator)
    ids = make_transfers(route, 5, state="queued")
    assert tallies_kept() == tallies_counted() == {(route.pk, "queued"): 5}

    # A conditional update, as the workers claim a send, and a save of the whole row.
    Transfer.objects.filter(pk=ids[0], state="queued").update(state="sending")
    transfer = Transfer.objects.get(pk=ids[1])
    transfer.state = "delivered"
    transfer.save()
    # A heartbeat changes nothing that is counted.
    Transfer.objects.filter(pk=ids[0]).update(bytes_done=100)
    # Moved to another route, one row and many at once with a new state.
    Transfer.objects.filter(pk=ids[2]).update(route=other)
    Transfer.objects.filter(pk__in=ids[3:]).update(state="failed", route=other)
    assert (
        tallies_kept()
        == tallies_counted()
        == {
            (route.pk, "sending"): 1,
            (route.pk, "delivered"): 1,
            (other.pk, "queued"): 1,
            (other.pk, "failed"): 2,
        }
    )

    # Deleted one by one and in bulk (retention deletes in bulk); a route without transfers
    # left may go, and its tallies with it.
    Transfer.objects.get(pk=ids[0]).delete()
    Transfer.objects.filter(route=other).delete()
    assert tallies_kept() == tallies_counted()
    other.delete()
    assert tallies_kept() == tallies_counted() == {(route.pk, "delivered"): 1}
    assert not RouteTally.objects.filter(route_id=other.pk).exists()


def test_the_review_shows_the_tallies_and_the_last_transfer(
    client_for, architect, route, integration, aarhus, operator
):
    quiet = make_route(integration, aarhus, operator)
    make_transfers(route, 3, state="delivered")
    make_transfers(route, 2, state="failed")
    newest = Transfer.objects.get(pk=make_transfers(route, 1, state="queued")[0])
    response = english(client_for(architect)).get("/review/")
    routes = {r.pk: r for flow in response.context["flows"] for r in flow.routes}
    shown = routes[route.pk]
    assert (shown.transfer_count, shown.delivered_count, shown.failed_count) == (6, 3, 2)
    assert shown.last_queued_at == newest.queued_at
    assert (routes[quiet.pk].transfer_count, routes[quiet.pk].last_queued_at) == (0, None)


@pytest.mark.django_db(transaction=True)
def test_transfers_crossing_between_states_at_once_do_not_deadlock(route):
    """A claim (queued → sending) beside a retry (sending → queued) on the same route and
    hour, over and over: each moves two counts of both tallies, and must never wait for a count
    the other holds while holding one it waits for."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite writes one at a time; the suite's PostgreSQL pass runs this")
    first, second = make_transfers(route, 2, state="queued")
    Transfer.objects.filter(pk=second).update(state="sending")
    failures = []

    def flip(pk: int, states: tuple[str, str]) -> None:
        ends = time.monotonic() + 3
        try:
            while time.monotonic() < ends:
                for state in states:
                    Transfer.objects.filter(pk=pk).update(state=state)
        except DatabaseError as error:
            failures.append(error)
        finally:
            connections.close_all()

    crossing = [
        threading.Thread(target=flip, args=(first, ("sending", "queued"))),
        threading.Thread(target=flip, args=(second, ("queued", "sending"))),
    ]
    for thread in crossing:
        thread.start()
    for thread in crossing:
        thread.join()
    assert failures == []
    assert tallies_kept() == tallies_counted()
    assert hours_kept() == hours_counted()
