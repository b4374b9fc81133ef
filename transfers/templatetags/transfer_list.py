"""`{% transfer_rows rows %}`: the transfer list's rows, drawn in one call.

Fifty rows of eight cells each, drawn by the template engine, cost the list more than its
queries (each variable looked up through the template's context, each date and size formatted
through the active language again, each state's label translated again): here each row is one
`format_html`, the detail link made from the two halves of one reversed path, and each state's
label translated once a page.
"""

from django import template
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.html import format_html
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
    labels = {value: str(label) for value, label in Transfer.State.choices}
    cells = []
    for transfer in rows:
        route = transfer.route
        queued = timezone.localtime(transfer.queued_at)
        cells.append(
            {
                "pk": transfer.pk,
                "state": transfer.state,
                "url": row_url(context, "transfers:detail", transfer.pk),
                "name": transfer.original_name,
                "badge": state_badge(transfer.state, labels.get(transfer.state, transfer.state)),
                "progress": _progress(transfer),
                "infref": route.infref.name,
                "sender": route.sender.name,
                "receiver": route.receiver.name,
                "municipality": route.municipality.name,
                "size": filesizeformat(transfer.size),
                "iso": dates.date_format(queued, "c"),
                "queued": dates.date_format(queued, "SHORT_DATETIME_FORMAT"),
            }
        )
    return SafeString("".join(format_html(_ROW, **cell) for cell in cells))
