"""Scheduled: find routes whose expected file has not come."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone

from portal.alerts import service
from transfers.models import Route, Transfer

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
Frequency = Route.Frequency


def period_start(frequency: str, today: date) -> date | None:
    """The first day of the period whose file is due: today, the last weekday or this Monday."""
    if frequency == Frequency.DAILY:
        return today
    if frequency == Frequency.WEEKDAYS:
        # On a Saturday or Sunday the last weekday was Friday.
        return today - timedelta(days=max(today.weekday() - 4, 0))
    if frequency == Frequency.WEEKLY:
        return today - timedelta(days=today.weekday())
    return None


def deadline_of(route: Route, day: date) -> datetime:
    """When the file for the period starting `day` is due, in Danish time."""
    if route.expected_by is None:
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=COPENHAGEN)
    return datetime.combine(day, route.expected_by, tzinfo=COPENHAGEN)


def check_expected_deliveries(now: datetime | None = None) -> int:
    """Raise a missed-delivery alert, once per period, for each route whose file is late."""
    now = now or timezone.now()
    today = now.astimezone(COPENHAGEN).date()
    routes = (
        Route.objects.filter(state=Route.State.ESTABLISHED)
        .exclude(expected_frequency="")
        .select_related("sender", "receiver", "municipality")
    )
    raised = 0
    for route in routes:
        day = period_start(route.expected_frequency, today)
        if day is None:
            continue
        deadline = deadline_of(route, day)
        if now < deadline:
            continue
        start = datetime.combine(day, time(0), tzinfo=COPENHAGEN)
        if Transfer.objects.filter(route=route, queued_at__gte=start).exists():
            continue
        _alert, created = service.missed_delivery(route, day, deadline)
        raised += created
    return raised
