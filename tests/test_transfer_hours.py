"""The transfers per hour and state that the database keeps (TransferHour), and the day charts
of a superuser that read them: they agree with counting the transfers, however they are written.
"""

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from portal.core import charts
from tests.support.counts import hours_counted, hours_kept
from tests.support.records import make_integration, make_route, make_transfers
from transfers.models import Transfer

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 3, 30, 9, 0, tzinfo=UTC)  # the day after the change to summer time


@pytest.fixture
def route(system_a, system_b, staff_a, aarhus, operator):
    return make_route(make_integration(system_a, system_b, staff_a, [aarhus]), aarhus, operator)


def test_every_way_of_writing_a_transfer_is_counted(route, staff_a):
    ids = make_transfers(route, 5, state="queued", size=700, at=NOW - timedelta(hours=3))
    assert hours_kept() == hours_counted() == {(NOW - timedelta(hours=3), "queued"): (5, 3500)}

    # A conditional update, as the workers claim a send, and a save of the whole row.
    Transfer.objects.filter(pk=ids[0], state="queued").update(state="sending")
    transfer = Transfer.objects.get(pk=ids[1])
    transfer.state = "delivered"
    transfer.save()
    # A heartbeat changes nothing that is counted.
    Transfer.objects.filter(pk=ids[0]).update(heartbeat_at=NOW, bytes_done=100)
    # Moved in time and resized, one row and many at once.
    Transfer.objects.filter(pk=ids[2]).update(queued_at=NOW - timedelta(days=40), size=1)
    Transfer.objects.filter(pk__in=ids[3:]).update(state="failed", queued_at=NOW)
    assert hours_kept() == hours_counted()
    assert hours_kept()[(NOW, "failed")] == (2, 1400)

    # Deleted one by one and in bulk (retention deletes in bulk).
    Transfer.objects.get(pk=ids[0]).delete()
    Transfer.objects.filter(pk__in=ids[3:]).delete()
    assert hours_kept() == hours_counted()
    Transfer.objects.all().delete()
    assert hours_kept() == Counter()


def test_the_hour_is_the_utc_hour_on_any_connection_time_zone(route):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite keeps UTC text; only PostgreSQL has a session time zone")
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'Asia/Kolkata'")  # half an hour off UTC
        try:
            make_transfers(route, 1, at=datetime(2026, 3, 1, 10, 45, tzinfo=UTC))
        finally:
            cursor.execute("SET TIME ZONE 'UTC'")
    assert hours_kept() == {(datetime(2026, 3, 1, 10, tzinfo=UTC), "delivered"): (1, 1000)}


def test_the_superusers_days_agree_with_counting_the_transfers(route, superuser):
    """Hours added up into Copenhagen days give what counting every transfer gives, across the
    night the clocks went forward and at the edges of the thirty days."""
    rng = random.Random(3)  # noqa: S311 - test data
    _first, start, end = charts.day_window(NOW)
    span = int((end - start).total_seconds())
    moments = [start, end - timedelta(microseconds=1), start - timedelta(microseconds=1), end]
    moments += [start + timedelta(seconds=rng.randrange(span)) for _ in range(120)]
    states = ["delivered", "failed", "queued", "sent", "cancelled"]
    for at in moments:
        make_transfers(route, 1, state=rng.choice(states), size=rng.randrange(1, 10**6), at=at)

    from_hours = charts.hours_per_day(now=NOW)
    from_rows = charts.transfers_per_day(Transfer.objects.all(), now=NOW)

    def by_day(rows):
        return {(row["day"], row["state"]): (row["count"], row["bytes"]) for row in rows}

    assert by_day(from_hours) == by_day(from_rows)
    assert sum(row["count"] for row in from_hours) == 122  # the two just outside are not shown
    assert charts.day_charts(superuser, now=NOW).total_transfers == 122
