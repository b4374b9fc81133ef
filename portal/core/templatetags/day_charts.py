"""The day charts' thirty days, drawn in one call each: `{% transfer_days charts %}` and
`{% byte_days charts %}` draw the bars, `{% transfer_day_rows charts %}` and
`{% byte_day_rows charts %}` the rows of the tables that hold the same numbers for screen
readers.

The markup around them is in templates/core/_chart_*.html; what each day shows is worked out in
`portal.core.charts`. Drawn by the template engine, the four loops over thirty days (each value
looked up through the template's context, each day's sentence translated again) cost the
overview as much as its queries. Numbers are written as `{% localize off %}` writes them.
"""

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext

from portal.core.charts import DayCharts

register = template.Library()

_LABEL = """
      <line x1="{center}" x2="{center}" y1="{baseline}" y2="{tick_end}" stroke="{axis}"/>
      <text x="{center}" y="{label_y}" text-anchor="middle" fill="#1a1a1a">{label}</text>
      """
_SEGMENT = """
      <rect x="{x}" y="{y}" width="{width}" height="{height}" fill="url(#chart-fill-{key})" \
stroke="#ffffff" stroke-width="0.75"/>
      """
_TRANSFER_DAY = """
    <g>
      <title>{long_label}: {counts}</title>
      {segments}
      {label}
    </g>
    """
_BYTE_BAR = '<rect x="{x}" y="{y}" width="{width}" height="{height}" fill="{colour}"/>'
_BYTE_DAY = """
    <g>
      <title>{long_label}: {bytes_label}</title>
      {bar}
      {label}
    </g>
    """
_TRANSFER_ROW = """
      <tr><th scope="row">{long_label}</th><td>{delivered}</td><td>{failed}</td><td>{other}</td>\
<td>{total}</td></tr>
      """
_BYTE_ROW = """
      <tr><th scope="row">{long_label}</th><td>{bytes_label}</td><td>{bytes}</td></tr>
      """


def _day_label(charts: DayCharts, day) -> SafeString | str:
    if not day.show_label:
        return ""
    return format_html(
        _LABEL,
        center=day.center,
        baseline=charts.baseline,
        tick_end=charts.tick_mark_end,
        axis=charts.axis_colour,
        label_y=charts.day_label_y,
        label=day.label,
    )


@register.simple_tag
def transfer_days(charts: DayCharts) -> SafeString:
    counts = gettext("%(delivered)s delivered, %(failed)s failed, %(other)s other")
    days = []
    for day in charts.days:
        segments = "".join(
            format_html(
                _SEGMENT,
                x=day.x,
                y=segment.y,
                width=day.width,
                height=segment.height,
                key=segment.style.key,
            )
            for segment in day.segments
        )
        days.append(
            format_html(
                _TRANSFER_DAY,
                long_label=day.long_label,
                # As {% blocktranslate %} has it: the numbers put into the sentence translated.
                counts=SafeString(counts % {key: str(value) for key, value in day.counts.items()}),
                segments=SafeString(segments),
                label=_day_label(charts, day),
            )
        )
    return SafeString("".join(days))


@register.simple_tag
def byte_days(charts: DayCharts) -> SafeString:
    days = []
    for day in charts.days:
        bar = ""
        if day.bytes:
            bar = format_html(
                _BYTE_BAR,
                x=day.x,
                y=day.bytes_y,
                width=day.width,
                height=day.bytes_height,
                colour=charts.bytes_style.colour,
            )
        days.append(
            format_html(
                _BYTE_DAY,
                long_label=day.long_label,
                bytes_label=day.bytes_label,
                bar=bar,
                label=_day_label(charts, day),
            )
        )
    return SafeString("".join(days))


@register.simple_tag
def transfer_day_rows(charts: DayCharts) -> SafeString:
    return SafeString(
        "".join(
            format_html(
                _TRANSFER_ROW,
                long_label=day.long_label,
                delivered=day.counts["delivered"],
                failed=day.counts["failed"],
                other=day.counts["other"],
                total=day.total,
            )
            for day in charts.days
        )
    )


@register.simple_tag
def byte_day_rows(charts: DayCharts) -> SafeString:
    return SafeString(
        "".join(
            format_html(
                _BYTE_ROW, long_label=day.long_label, bytes_label=day.bytes_label, bytes=day.bytes
            )
            for day in charts.days
        )
    )
