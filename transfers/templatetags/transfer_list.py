"""`{% transfer_rows rows %}`: the transfer list's rows, drawn in one call.

Fifty rows of eight cells each, drawn by the template engine, cost the list more than its
queries (each variable looked up through the template's context, each date and size formatted
through the active language again, each state's label translated again): here each row is one
string filled in, each value escaped by `html.escape` as Django's `escape` does but without
its checks for lazy and safe strings (six hundred of them a page), the detail link made from the
two halves of one reversed path, and what is the same for every row (each state's badge, the
time zone, the date formats) made once a page.
"""

from html import escape

from django import template
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.safestring import SafeString

from portal.core import dates
from portal.core.templatetags.row_urls import row_url
from transfers.models import Transfer
from transfers.templatetags.transfer_states import state_badge

register = template.Library()

_ROW = """
    <tr data-transfer="{pk}" data-state="{state}">
      <td><a id="transfer-link-{pk}" href="{url}">{name}</a></td>
      <td>{badge}{progress}</td>
      <td>{infref}</td>
      <td>{sender}</td>
      <td>{receiver}</td>
      <td>{municipality}</td>
      <td>{size}</td>
      <td><time datetime="{iso}">{queued}</time></td>
    </tr>
    """


def _progress(transfer: Transfer) -> str:
    """The share sent of a file being sent, as `{% widthratio bytes_done size 100 %}` has it."""
    if transfer.state != Transfer.State.SENDING:
        return ""
    try:
        share = str(round(float(transfer.bytes_done) / float(transfer.size) * 100))
    except ZeroDivisionError:
        share = "0"
    return f" {share} %"


@register.simple_tag(takes_context=True)
def transfer_rows(context: template.Context, rows: list[Transfer]) -> SafeString:
    badges = {value: state_badge(value, label) for value, label in Transfer.State.choices}
    zone = timezone.get_current_timezone()
    iso, short = dates.formatter("c"), dates.formatter("SHORT_DATETIME_FORMAT")
    drawn = []
    for transfer in rows:
        route = transfer.route
        queued = transfer.queued_at.astimezone(zone)
        drawn.append(
            _ROW.format(
                pk=int(transfer.pk),
                state=escape(transfer.state),
                url=escape(row_url(context, "transfers:detail", transfer.pk)),
                name=escape(transfer.original_name),
                badge=badges.get(transfer.state) or state_badge(transfer.state, transfer.state),
                progress=_progress(transfer),
                infref=escape(route.infref.name),
                sender=escape(route.sender.name),
                receiver=escape(route.receiver.name),
                municipality=escape(route.municipality.name),
                size=escape(filesizeformat(transfer.size)),
                iso=escape(iso(queued)),
                queued=escape(short(queued)),
            )
        )
    return SafeString("".join(drawn))
