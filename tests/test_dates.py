"""portal.core.dates writes every moment as Django's date_format does, in both languages."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import formats, timezone, translation

from portal.core import dates

FORMATS = (
    "SHORT_DATETIME_FORMAT",
    "DATETIME_FORMAT",
    "SHORT_DATE_FORMAT",
    "DATE_FORMAT",
    "TIME_FORMAT",
    "YEAR_MONTH_FORMAT",
    "MONTH_DAY_FORMAT",
    "j/n",
    "c",
    r"d.m.y G:i:s \k\l. H",
)
# Every month, single and double digits, midnight and noon, a year before 1000.
MOMENTS = [
    datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC) + timedelta(days=31 * month, hours=7 * month)
    for month in range(14)
] + [datetime(987, 6, 5, 4, 3, 2, 123456, tzinfo=UTC)]


@pytest.mark.parametrize("language", ["da", "en"])
@pytest.mark.parametrize("form", FORMATS)
def test_moments_are_written_as_django_writes_them(language, form):
    with translation.override(language):
        for moment in MOMENTS:
            local = timezone.localtime(moment)
            assert dates.date_format(local, form) == formats.date_format(local, form)


@pytest.mark.parametrize("language", ["da", "en"])
@pytest.mark.parametrize(
    "form", ["SHORT_DATE_FORMAT", "DATE_FORMAT", "j/n", "c", "MONTH_DAY_FORMAT"]
)
def test_days_are_written_as_django_writes_them(language, form):
    with translation.override(language):
        for moment in MOMENTS:
            day = moment.date()
            assert dates.date_format(day, form) == formats.date_format(day, form)


def test_a_day_with_a_time_of_day_is_refused_as_django_refuses_it():
    with pytest.raises(TypeError):
        dates.date_format(date(2026, 12, 7), "H:i")


def test_a_letter_not_written_here_is_left_to_django():
    moment = timezone.localtime(datetime(2026, 12, 7, 13, 5, tzinfo=UTC))
    assert dates.date_format(moment, "l jS F Y, P e") == formats.date_format(
        moment, "l jS F Y, P e"
    )
