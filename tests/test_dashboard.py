"""The dashboard's pictures: what each role's charts count, by Danish day, at a fixed cost.

Assertions read English text: each test client chooses English.
"""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from portal.accounts.access import scope_of
from portal.core import charts
from portal.core.navigation import menu_for
from portal.onboarding import rules
from portal.onboarding.models import OnboardingTask
from tests.conftest import make_user
from tests.support.clients import english
from tests.support.records import make_integration, make_route, make_transfers
from transfers.models import Transfer


@pytest.fixture
def integration(system_a, system_b, staff_a, aarhus):
    return make_integration(system_a, system_b, staff_a, [aarhus])


@pytest.fixture
def aarhus_route(integration, aarhus, operator):
    return make_route(integration, aarhus, operator)


def sr_table(html: str, caption: str) -> list[list[str]]:
    """The rows of the visually hidden data table with this caption, as cell texts."""
    start = html.index(f"<caption>{caption}</caption>")
    body = html[start : html.index("</table>", start)]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    return [
        [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        for row in rows
    ]


# --- What the charts count -------------------------------------------------------------------


def test_a_transfer_counts_on_its_danish_day(staff_a, aarhus_route):
    now = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)
    # 23:30 on the 14th in Copenhagen (summer time, UTC+2) …
    make_transfers(aarhus_route, 1, at=datetime(2026, 6, 14, 21, 30, tzinfo=UTC))
    # … and 00:30 on the 15th, though still the 14th in UTC.
    make_transfers(aarhus_route, 2, state="failed", at=datetime(2026, 6, 14, 22, 30, tzinfo=UTC))
    # Outside the 30 days: the first day shown is 17 May.
    make_transfers(aarhus_route, 5, at=datetime(2026, 5, 16, 12, 0, tzinfo=UTC))
    made = charts.day_charts(staff_a, now=now)
    by_day = {d.day.isoformat(): d for d in made.days}
    assert made.days[0].day.isoformat() == "2026-05-17" and len(made.days) == 30
    assert by_day["2026-06-14"].counts == {"delivered": 1, "failed": 0, "other": 0}
    assert by_day["2026-06-15"].counts == {"delivered": 0, "failed": 2, "other": 0}
    assert by_day["2026-06-15"].bytes == 2000
    assert made.totals == {"delivered": 1, "failed": 2, "other": 0}
    assert made.total_bytes == 3000


def test_states_other_than_delivered_and_failed_are_other(staff_a, aarhus_route):
    for state in ("queued", "sending", "sent", "cancelled"):
        make_transfers(aarhus_route, 1, state=state, name=state)
    made = charts.day_charts(staff_a)
    assert made.totals == {"delivered": 0, "failed": 0, "other": 4}
    today = made.days[-1]
    assert [s.style.key for s in today.segments] == ["other"]
    # The stack stands on the baseline and reaches the top of its axis.
    segment = today.segments[0]
    assert segment.y + segment.height == pytest.approx(made.baseline)


def test_each_role_counts_only_the_transfers_it_may_see(
    staff_a, staff_b, architect, operator, superuser, integration, aarhus, odense
):
    rules.add_municipality(integration, odense)
    make_transfers(make_route(integration, aarhus, operator), 3)
    make_transfers(make_route(integration, odense, operator), 4)
    odense_architect = make_user("architect-odense", odense)
    stranger = make_user("staff-c", None)
    assert charts.day_charts(staff_a).total_transfers == 7  # the sending vendor
    assert charts.day_charts(staff_b).total_transfers == 7  # the receiving vendor
    assert charts.day_charts(architect).total_transfers == 3
    assert charts.day_charts(odense_architect).total_transfers == 4
    assert charts.day_charts(superuser).total_transfers == 7
    assert charts.day_charts(stranger).total_transfers == 0
    # KOMBIT sees no transfers at all (they carry municipal data).
    assert charts.day_charts(operator).total_transfers == 0


def test_onboarding_counts_settled_tasks_once_per_task(
    staff_a, staff_b, architect, operator, integration, aarhus, odense, system_a, system_b
):
    # Two municipalities: a rule joining them must not count a task twice.
    rules.add_municipality(integration, odense)
    tasks = OnboardingTask.objects.filter(integration=integration)
    total = tasks.count()
    tasks.filter(number=10).update(state=OnboardingTask.State.DONE)
    tasks.filter(number=20).update(state=OnboardingTask.State.NOT_RELEVANT)
    tasks.filter(number=50).update(state=OnboardingTask.State.IN_PROGRESS)
    other = make_integration(system_a, system_b, staff_a, [odense], name="Kun Odense")
    for user in (staff_a, staff_b, operator):
        rows = {row.integration.pk: row for row in charts.onboarding_chart(user).rows}
        assert (rows[integration.pk].settled, rows[integration.pk].total) == (2, total)
        assert other.pk in rows
    seen = [row.integration for row in charts.onboarding_chart(architect).rows]
    assert seen == [integration]  # Aarhus is not in "Kun Odense"


def test_the_onboarding_chart_is_bounded_and_says_there_is_more(staff_a, system_a, system_b):
    for n in range(4):
        make_integration(system_a, system_b, staff_a, [], name=f"Integration {n}")
    made = charts.onboarding_chart(staff_a, limit=3)
    assert [row.integration.name for row in made.rows] == [
        "Integration 0",
        "Integration 1",
        "Integration 2",
    ]
    assert made.more


# --- Scales and colours ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("maximum", "top", "ticks"),
    [
        (0, 1, [0, 1]),
        (3, 5, [0, 1, 2, 3, 4, 5]),
        (12, 20, [0, 5, 10, 15, 20]),
        (99, 100, [0, 20, 40, 60, 80, 100]),
        (12345, 20000, [0, 5000, 10000, 15000, 20000]),
    ],
)
def test_count_axes_end_on_a_round_number(maximum, top, ticks):
    assert charts.count_ticks(maximum) == (top, ticks)


def test_byte_axes_use_one_binary_unit():
    top, ticks = charts.byte_ticks(3 * 1024**3)
    assert top == 5 * 1024**3
    assert [label for _value, label in ticks] == ["0 GB", "1 GB", "2 GB", "3 GB", "4 GB", "5 GB"]


@pytest.mark.parametrize("style", charts.PALETTE, ids=lambda s: s.key)
def test_every_colour_has_aa_contrast_against_white(style):
    assert charts.contrast_ratio(style.colour) >= 4.5
    assert charts.contrast_ratio(charts.TRACK_OUTLINE) >= 4.5


def test_no_two_transfer_series_share_a_pattern():
    patterns = [style.pattern for style in charts.TRANSFER_SERIES]
    assert len(set(patterns)) == len(patterns)


# --- The page --------------------------------------------------------------------------------


def test_the_architects_dashboard_draws_accessible_charts(
    client_for, architect, aarhus_route, aarhus
):
    make_transfers(aarhus_route, 2)
    make_transfers(aarhus_route, 1, state="failed", size=2048)
    html = english(client_for(architect)).get(reverse("dashboard")).content.decode()
    # The existing content stays.
    assert "Aarhus" in html and "Your role: municipal architect" in html
    assert html.count('role="img"') == 3
    assert "<title>Transfers per day from" in html
    assert 'aria-label="Transfers per day from' in html
    assert "2 delivered, 1 failed, 0 other" in html
    assert "Legend" in html and "Delivered" in html and "Failed" in html
    assert 'fill="url(#chart-fill-failed)"' in html
    assert "Day queued (Danish time)" in html
    # The numbers, for screen readers.
    rows = sr_table(html, "Transfers per day by state")
    assert rows[0] == [
        "Day",
        "Delivered",
        "Failed",
        "Other (queued, sending, sent, no receipt, cancelled)",
        "Total",
    ]
    assert rows[-1][1:] == ["2", "1", "0", "3"]
    assert sr_table(html, "Bytes per day")[-1][2] == "4048"
    assert sr_table(html, "Onboarding progress per integration")[1][0] == "Alfa til Beta"
    assert reverse("review:overview") in html
    # Coordinates stay machine-readable in Danish too.
    danish = client_for(architect)
    danish.cookies["django_language"] = "da"
    assert not re.search(
        r'(x|y|width|height)="\d+,\d', danish.get(reverse("dashboard")).content.decode()
    )


def test_kombit_sees_onboarding_but_no_transfer_charts(client_for, operator, integration):
    html = english(client_for(operator)).get(reverse("dashboard")).content.decode()
    assert "Transfers per day by state" not in html
    assert "Onboarding progress" in html and "Alfa til Beta" in html


def test_a_quiet_month_says_so_instead_of_drawing(client_for, staff_a, integration):
    html = english(client_for(staff_a)).get(reverse("dashboard")).content.decode()
    assert "No files were queued in the last 30 days." in html
    assert "Transfers per day by state" not in html


def _dashboard_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("dashboard")).status_code == 200
    return len(queries)


@pytest.mark.parametrize("user_fixture", ["staff_a", "architect", "superuser"])
def test_the_dashboard_costs_the_same_queries_however_many_transfers(
    request, client_for, user_fixture, integration, aarhus_route, system_a, system_b, staff_a
):
    user = request.getfixturevalue(user_fixture)
    client = client_for(user)
    make_transfers(aarhus_route, 3)
    few = _dashboard_queries(client)
    for day in range(20):
        at = timezone.now() - timedelta(days=day)
        make_transfers(aarhus_route, 10, at=at)
        make_transfers(aarhus_route, 5, state="failed", at=at)
    make_integration(system_a, system_b, staff_a, [], name="En til")
    make_integration(system_a, system_b, staff_a, [], name="En mere")
    assert Transfer.objects.count() == 303
    assert _dashboard_queries(client) == few


# --- The menu --------------------------------------------------------------------------------


def test_the_review_is_in_the_menu_only_for_architects_and_superusers(
    staff_a, architect, operator, superuser
):
    def labels(user=None):
        with translation.override("en"):
            return [str(item["label"]) for item in menu_for("/", user and scope_of(user))]

    assert "Municipal review" in labels(architect)
    assert "Municipal review" in labels(superuser)
    assert "Municipal review" not in labels(staff_a)
    assert "Municipal review" not in labels(operator)
    assert "Municipal review" not in labels()
