"""The dashboard's pictures, drawn on the server as SVG: no script, no library, no CDN.

Each chart comes from one aggregate query whose cost does not grow with the number of rows the
page shows: the database counts and sums per day and state (or per integration), and Python only
lays out the at most 30 days × 6 states (or the few integrations) it gets back. The geometry is
computed here; the markup is in templates/core/_chart_*.html.

No chart speaks by colour alone: every series has its own pattern and a text label in the legend,
each bar carries a tooltip, and a visually hidden table holds the same numbers for screen readers.
The colours have a contrast of at least 4.5:1 against white (WCAG AA; `contrast_ratio`).
"""

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import connections
from django.db.models import Count, IntegerField, Q, QuerySet, Sum
from django.db.models.expressions import RawSQL
from django.template.defaultfilters import filesizeformat
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from portal.accounts.access import routes_of_transfers_seen, scope_of, visible
from portal.core import dates
from portal.onboarding.models import Integration, OnboardingTask
from transfers.models import Transfer, TransferHour

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
DAYS = 30
# Onboarding bars drawn at most; the rest is a link to the list of integrations.
MAX_INTEGRATIONS = 25

# Plot geometry of the day charts, in SVG user units (the picture scales to its container).
WIDTH = 720
HEIGHT = 260
LEFT = 64
RIGHT = 12
TOP = 16
BOTTOM = 56
PLOT_WIDTH = WIDTH - LEFT - RIGHT
PLOT_HEIGHT = HEIGHT - TOP - BOTTOM


@dataclass(frozen=True)
class Style:
    """How a series looks: a colour, and a pattern so it is told apart without colour."""

    key: str
    label: str
    colour: str
    pattern: str  # "solid", "stripes" or "dots"


DELIVERED = Style("delivered", gettext_lazy("Delivered"), "#00703c", "solid")
FAILED = Style("failed", gettext_lazy("Failed"), "#b10e1e", "stripes")
OTHER = Style(
    "other", gettext_lazy("Other (queued, sending, sent, no receipt, cancelled)"), "#1d5d90", "dots"
)
TRANSFER_SERIES = (DELIVERED, FAILED, OTHER)
BYTES = Style("bytes", gettext_lazy("Bytes"), "#4c2c92", "solid")
SETTLED = Style("settled", gettext_lazy("Settled tasks"), "#00703c", "solid")
# The outline of an onboarding bar's track: the part still open is white inside it.
TRACK_OUTLINE = "#505a5f"
AXIS = "#505a5f"
PALETTE = (DELIVERED, FAILED, OTHER, BYTES, SETTLED)


def contrast_ratio(colour: str, background: str = "#ffffff") -> float:
    """WCAG 2 contrast ratio of two sRGB colours given as #rrggbb."""

    def luminance(hex_colour: str) -> float:
        channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    lighter, darker = sorted((luminance(colour), luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


# --- Scales ----------------------------------------------------------------------------------


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 or 10 times a power of ten that is at least `value`."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def tick_values(top: float) -> list[float]:
    """Four to six evenly spaced ticks from 0 to `top`, a value `nice_ceiling` gave."""
    mantissa = top / 10 ** math.floor(math.log10(top))
    parts = 4 if math.isclose(mantissa, 2) else 5
    step = top / parts
    return [round(i * step, 9) for i in range(parts + 1)]


def _number(value: float) -> str:
    if value == int(value):
        return formats.number_format(int(value))
    return formats.number_format(value, decimal_pos=len(f"{value:.6g}".partition(".")[2]))


def count_ticks(maximum: int) -> tuple[int, list[int]]:
    """The top of a count axis and its ticks: whole numbers, at most six of them."""
    top = max(int(nice_ceiling(maximum)), 1)
    if top <= 5:
        return top, list(range(top + 1))
    return top, [int(v) for v in tick_values(top)]


BYTE_UNITS = ("B", "KB", "MB", "GB", "TB")


def byte_ticks(maximum: int) -> tuple[int, list[tuple[int, str]]]:
    """The top of a byte axis and its ticks with labels in one binary unit (KB = 1024 bytes)."""
    exponent = 0
    while exponent < len(BYTE_UNITS) - 1 and maximum >= 1024 ** (exponent + 1):
        exponent += 1
    unit = 1024**exponent
    if exponent == 0:
        top, values = count_ticks(maximum)
        return top, [(v, f"{_number(v)} B") for v in values]
    top_in_units = nice_ceiling(maximum / unit)
    return round(top_in_units * unit), [
        (round(v * unit), f"{_number(v)} {BYTE_UNITS[exponent]}") for v in tick_values(top_in_units)
    ]


# --- Transfers per day -----------------------------------------------------------------------


@dataclass
class Segment:
    style: Style
    value: int
    y: float
    height: float


@dataclass
class Day:
    day: date
    label: str  # short, on the axis
    long_label: str  # in the table and the tooltip
    x: float
    width: float
    center: float
    counts: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    segments: list[Segment] = field(default_factory=list)
    total: int = 0
    show_label: bool = False
    # The bytes bar
    bytes_y: float = 0
    bytes_height: float = 0
    bytes_label: str = ""


@dataclass
class Tick:
    y: float
    label: str


@dataclass
class DayCharts:
    """Both day charts, built from one query."""

    days: list[Day]
    count_ticks: list[Tick]
    byte_ticks: list[Tick]
    totals: dict[str, int]
    total_transfers: int
    total_bytes: int
    total_bytes_label: str
    first: date
    last: date
    series: tuple[Style, ...] = TRANSFER_SERIES
    bytes_style: Style = BYTES
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    plot_width: int = PLOT_WIDTH
    plot_height: int = PLOT_HEIGHT
    baseline: int = TOP + PLOT_HEIGHT
    right_edge: int = LEFT + PLOT_WIDTH
    axis_colour: str = AXIS
    # Where the axis texts stand
    tick_label_x: int = LEFT - 6
    tick_mark_end: int = TOP + PLOT_HEIGHT + 4
    day_label_y: int = TOP + PLOT_HEIGHT + 18
    x_title_y: int = HEIGHT - 8
    y_title_y: int = TOP + 4

    @property
    def is_empty(self) -> bool:
        return self.total_transfers == 0


def _state_group(state: str) -> str:
    if state == Transfer.State.DELIVERED:
        return DELIVERED.key
    if state == Transfer.State.FAILED:
        return FAILED.key
    return OTHER.key


def day_window(now: datetime | None = None, days: int = DAYS) -> tuple[date, datetime, datetime]:
    """The first day shown, and the span from its midnight to the next, in Copenhagen."""
    now = now or timezone.now()
    today = now.astimezone(COPENHAGEN).date()
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, time.min, tzinfo=COPENHAGEN)
    end = datetime.combine(today + timedelta(days=1), time.min, tzinfo=COPENHAGEN)
    return first, start, end


def _day_number(
    column: str, midnights: list[datetime], first: int, last: int
) -> tuple[str, list[datetime]]:
    """Which of the days `first` to `last` the moment in `column` falls on, by halving the span:
    five comparisons a row, not up to thirty. `midnights[n - 1]` is the start of day n.

    Written as SQL with the midnights as its parameters: built of Django's Case and When, the
    thirty-leaf expression took longer to build and compile than the database took to run it.
    """
    if first == last:
        return str(first), []
    middle = (first + last + 1) // 2
    before, before_params = _day_number(column, midnights, first, middle - 1)
    after, after_params = _day_number(column, midnights, middle, last)
    sql = f"CASE WHEN {column} < %s THEN {before} ELSE {after} END"
    return sql, [midnights[middle - 1], *before_params, *after_params]


def _per_day(rows: QuerySet, column: str, first: date, count, size) -> list[dict]:
    """`rows`, narrowed to the window already, summed per Copenhagen day and state in one
    query: `count` and `size` are the aggregates of each day and state.

    The day is found by comparing `column` with the window's midnights, not by converting each
    row's time: SQLite converts through a Python function, once for each row.
    """
    midnights = [
        datetime.combine(first + timedelta(days=index), time.min, tzinfo=COPENHAGEN)
        for index in range(1, DAYS)
    ]
    sql, moments = _day_number(column, midnights, 0, DAYS - 1)
    adapt = connections[rows.db].ops.adapt_datetimefield_value  # as a filter's value is
    # Our SQL; the midnights go in as parameters.
    day_number = RawSQL(  # noqa: S611
        sql, [adapt(moment) for moment in moments], output_field=IntegerField()
    )
    totals = (
        rows.annotate(day_number=day_number)
        .order_by()
        .values("day_number", "state")
        .annotate(count=count, bytes=size)
    )
    return [
        {
            "day": first + timedelta(days=row["day_number"]),
            "state": row["state"],
            "count": row["count"],
            "bytes": row["bytes"],
        }
        for row in totals
    ]


def transfers_per_day(transfers: QuerySet, *, now: datetime | None = None) -> list[dict]:
    """One query: the number and the bytes of transfers per Copenhagen day and state."""
    first, start, end = day_window(now)
    return _per_day(
        transfers.filter(queued_at__gte=start, queued_at__lt=end),
        '"transfers_transfer"."queued_at"',
        first,
        # COUNT(*), not of the id: the id is not in the index the database reads alone.
        Count("*"),
        Sum("size"),
    )


def hours_per_day(*, now: datetime | None = None) -> list[dict]:
    """Every transfer's number and bytes per Copenhagen day and state, from the counts the
    database keeps per hour (TransferHour): a month of hours, whatever the number of rows,
    summed per day by the database (a month's thousand hours each read and converted in Python
    cost the superuser's overview more than the query)."""
    first, start, end = day_window(now)
    hours = TransferHour.objects.filter(hour__gte=start, hour__lt=end, count__gt=0)
    return _per_day(hours, '"transfers_transferhour"."hour"', first, Sum("count"), Sum("bytes"))


def day_charts(user, *, now: datetime | None = None) -> DayCharts:
    """Transfers per day by state, and bytes per day, of the transfers `user` may see."""
    if scope_of(user).is_superuser:
        rows = hours_per_day(now=now)
    else:
        # Asked by the user's routes, not by each transfer's: SQLite then reads their month
        # through the route index instead of every transfer of the month, and PostgreSQL
        # does not join each transfer's route to its IT systems again (bench/pages.py
        # measures it at a million transfers).
        transfers = Transfer.objects.filter(route__in=routes_of_transfers_seen(user))
        rows = transfers_per_day(transfers, now=now)
    first, _start, _end = day_window(now)
    slot = PLOT_WIDTH / DAYS
    bar_width = round(slot * 0.7, 2)
    days = []
    for index in range(DAYS):
        day = first + timedelta(days=index)
        days.append(
            Day(
                day=day,
                label=dates.date_format(day, "j/n"),
                long_label=dates.date_format(day, "DATE_FORMAT"),
                x=round(LEFT + index * slot + (slot - bar_width) / 2, 2),
                width=bar_width,
                center=round(LEFT + index * slot + slot / 2, 2),
                counts={style.key: 0 for style in TRANSFER_SERIES},
                # Every seventh day, counted back from today, so today is always labelled.
                show_label=(DAYS - 1 - index) % 7 == 0,
            )
        )
    by_day = {d.day: d for d in days}
    for row in rows:
        entry = by_day.get(row["day"])
        if entry is None:  # pragma: no cover - the filter keeps to the window
            continue
        entry.counts[_state_group(row["state"])] += row["count"]
        entry.bytes += row["bytes"] or 0

    top_count, count_values = count_ticks(max((sum(d.counts.values()) for d in days), default=0))
    top_bytes, byte_values = byte_ticks(max((d.bytes for d in days), default=0))
    baseline = TOP + PLOT_HEIGHT
    for entry in days:
        entry.total = sum(entry.counts.values())
        y = baseline
        for style in TRANSFER_SERIES:
            value = entry.counts[style.key]
            if value:
                height = PLOT_HEIGHT * value / top_count
                y -= height
                entry.segments.append(Segment(style, value, round(y, 2), round(height, 2)))
        height = PLOT_HEIGHT * entry.bytes / top_bytes if top_bytes else 0
        entry.bytes_y = round(baseline - height, 2)
        entry.bytes_height = round(height, 2)
        entry.bytes_label = filesizeformat(entry.bytes)

    totals = {style.key: sum(d.counts[style.key] for d in days) for style in TRANSFER_SERIES}
    total_bytes = sum(d.bytes for d in days)
    return DayCharts(
        days=days,
        count_ticks=[
            Tick(round(baseline - PLOT_HEIGHT * v / top_count, 2), formats.number_format(v))
            for v in count_values
        ],
        byte_ticks=[
            Tick(round(baseline - PLOT_HEIGHT * v / top_bytes, 2), label)
            for v, label in byte_values
        ],
        totals=totals,
        total_transfers=sum(totals.values()),
        total_bytes=total_bytes,
        total_bytes_label=filesizeformat(total_bytes),
        first=first,
        last=days[-1].day,
    )


# --- Onboarding progress ---------------------------------------------------------------------

ROW_HEIGHT = 46
BAR_HEIGHT = 16
BAR_LEFT = 8
BAR_WIDTH = 560
ONBOARDING_WIDTH = 720


@dataclass
class Progress:
    integration: Integration
    settled: int
    total: int
    y: float  # top of the row
    bar_y: float
    width: float  # of the settled part
    percent: int
    name_label: str


@dataclass
class OnboardingChart:
    rows: list[Progress]
    more: bool
    style: Style = SETTLED
    track_outline: str = TRACK_OUTLINE
    width: int = ONBOARDING_WIDTH
    bar_left: int = BAR_LEFT
    bar_width: int = BAR_WIDTH
    bar_height: int = BAR_HEIGHT
    text_x: int = BAR_LEFT + BAR_WIDTH + 10

    @property
    def height(self) -> int:
        return len(self.rows) * ROW_HEIGHT + 8

    @property
    def settled(self) -> int:
        return sum(row.settled for row in self.rows)

    @property
    def total(self) -> int:
        return sum(row.total for row in self.rows)


def _rows_seen(user, queryset: QuerySet) -> QuerySet:
    """The rows of `queryset` that `user` may see, safe to aggregate over.

    A visibility rule that follows a many-valued relation joins it (and adds DISTINCT), which
    would multiply the rows a Count sees; a subquery of primary keys keeps them single.
    """
    seen = visible(user, queryset)
    if seen.query.distinct:
        return queryset.filter(pk__in=seen.values("pk"))
    return seen


def onboarding_chart(user, *, limit: int = MAX_INTEGRATIONS) -> OnboardingChart:
    """One query: settled tasks of all tasks, for each integration `user` may see."""
    settled_states = (OnboardingTask.State.DONE, OnboardingTask.State.NOT_RELEVANT)
    integrations = list(
        _rows_seen(user, Integration.objects.all())
        .annotate(
            task_total=Count("tasks"),
            task_settled=Count("tasks", filter=Q(tasks__state__in=settled_states)),
        )
        .only("pk", "name")
        .order_by("name", "pk")[: limit + 1]
    )
    rows = []
    for index, integration in enumerate(integrations[:limit]):
        total, settled = integration.task_total, integration.task_settled
        share = settled / total if total else 0
        y = index * ROW_HEIGHT + 4
        rows.append(
            Progress(
                integration=integration,
                settled=settled,
                total=total,
                y=y,
                bar_y=y + 22,
                width=round(BAR_WIDTH * share, 2),
                percent=round(100 * share),
                name_label=integration.name
                if len(integration.name) <= 80
                else integration.name[:79] + "…",
            )
        )
    return OnboardingChart(rows=rows, more=len(integrations) > limit)


def describe_day_charts(charts: DayCharts) -> dict[str, str]:
    """The one-sentence summaries the pictures carry as their accessible names."""
    return {
        "transfers": _(
            "Transfers per day from %(first)s to %(last)s, stacked by state: "
            "%(delivered)s delivered, %(failed)s failed, %(other)s other."
        )
        % {
            "first": formats.date_format(charts.first, "DATE_FORMAT"),
            "last": formats.date_format(charts.last, "DATE_FORMAT"),
            "delivered": charts.totals[DELIVERED.key],
            "failed": charts.totals[FAILED.key],
            "other": charts.totals[OTHER.key],
        },
        "bytes": _("Bytes per day from %(first)s to %(last)s: %(total)s in all.")
        % {
            "first": formats.date_format(charts.first, "DATE_FORMAT"),
            "last": formats.date_format(charts.last, "DATE_FORMAT"),
            "total": charts.total_bytes_label,
        },
    }
