"""`{% alert_cards alerts %}`: the overview's open alerts, drawn in one call.

Each alert drawn by the template engine (its kind's label twice, its route's name, its message,
two dates, two links, a form with its token, each looked up through the template's context)
cost the overview about two milliseconds for its ten; here each alert is one `format_html`, each
word translated once a page and each date written by `portal.core.dates`.
"""

from django import template
from django.template.defaulttags import CsrfTokenNode
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext

from portal.alerts.models import Alert
from portal.core import dates
from portal.core.templatetags.row_urls import row_url

register = template.Library()

# As templates/core/dashboard.html drew each alert, whitespace and all.
_CARD = """
  <div class="alert {tone}" id="alert-{pk}">
    <div class="alert-body">
      <p class="alert-heading">{kind}{route}</p>
      <p class="alert-text">{message}</p>
      <p class="alert-text"><time datetime="{iso}">{raised}</time>{transfer}</p>
      <form method="post" action="{resolve}">
        {csrf}
        <button type="submit" class="button button-secondary">{resolved}<span class="sr-only"> – {kind}</span></button>
      </form>
    </div>
  </div>
  """  # noqa: E501 - the markup's own line


@register.simple_tag(takes_context=True)
def alert_cards(context: template.Context, alerts: list[Alert]) -> SafeString:
    words = {"see": gettext("See the transfer"), "resolved": gettext("Mark as resolved")}
    csrf = CsrfTokenNode().render(context)
    return SafeString("".join(_card(context, alert, words, csrf) for alert in alerts))


def _card(context: template.Context, alert: Alert, words: dict[str, str], csrf: str) -> str:
    raised = timezone.localtime(alert.raised_at)
    transfer = ""
    if alert.transfer_id:
        transfer = format_html(
            ' · <a href="{}">{}</a>',
            row_url(context, "transfers:detail", alert.transfer_id),
            words["see"],
        )
    return format_html(
        _CARD,
        tone="alert-error" if alert.is_error else "alert-warning",
        pk=alert.pk,
        kind=alert.get_kind_display(),
        route=format_html(" · {}", alert.route) if alert.route else "",
        message=alert.message,
        iso=dates.date_format(raised, "c"),
        raised=dates.date_format(raised, "SHORT_DATETIME_FORMAT"),
        transfer=transfer,
        resolve=row_url(context, "alerts:resolve", alert.pk),
        csrf=csrf,
        resolved=words["resolved"],
    )
