"""The onboarding chart's bars and the rows of its table for screen readers, drawn in one call
each: `{% onboarding_bars onboarding %}` and `{% onboarding_table_rows onboarding %}`.

The markup around them is in templates/core/_chart_onboarding.html, the geometry in
`portal.core.charts.onboarding_chart`. Drawn by the template engine, up to twenty-five bars with
two translated sentences each cost the overview more than its query. Numbers are written as
`{% localize off %}` writes them.
"""

from django import template
from django.template.defaultfilters import add
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext

from portal.core.charts import OnboardingChart

register = template.Library()

_BAR = """
    <g>
      <title>{title}</title>
      <text x="{left}" y="{name_y}" fill="#1a1a1a" font-weight="600">{name}</text>
      <rect x="{left}" y="{bar_y}" width="{width}" height="{height}" fill="#ffffff" \
stroke="{outline}"/>
      {settled_bar}
      <text x="{text_x}" y="{text_y}" fill="#1a1a1a">{share}</text>
    </g>
    """
_SETTLED = '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"/>'
_ROW = """
      <tr><th scope="row">{}</th><td>{}</td><td>{}</td><td>{}</td></tr>
      """


def _sentence(text: str, **values) -> SafeString:
    """As {% blocktranslate %} has it: the values escaped, the sentence as translated."""
    return SafeString(text % {key: format_html("{}", value) for key, value in values.items()})


@register.simple_tag
def onboarding_bars(chart: OnboardingChart) -> SafeString:
    title = gettext("%(name)s: %(settled)s of %(total)s tasks settled")
    share = gettext("%(settled)s of %(total)s (%(percent)s %%)")
    bars = []
    for row in chart.rows:
        settled_bar = ""
        if row.settled:
            settled_bar = format_html(
                _SETTLED, chart.bar_left, row.bar_y, row.width, chart.bar_height, chart.style.colour
            )
        bars.append(
            format_html(
                _BAR,
                title=_sentence(
                    title, name=row.integration.name, settled=row.settled, total=row.total
                ),
                left=chart.bar_left,
                name_y=add(row.y, 14),
                name=row.name_label,
                bar_y=row.bar_y,
                width=chart.bar_width,
                height=chart.bar_height,
                outline=chart.track_outline,
                settled_bar=settled_bar,
                text_x=chart.text_x,
                text_y=add(row.bar_y, 13),
                share=_sentence(share, settled=row.settled, total=row.total, percent=row.percent),
            )
        )
    return SafeString("".join(bars))


@register.simple_tag
def onboarding_table_rows(chart: OnboardingChart) -> SafeString:
    return SafeString(
        "".join(
            format_html(_ROW, row.integration.name, row.settled, row.total, row.percent)
            for row in chart.rows
        )
    )
