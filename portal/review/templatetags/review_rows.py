"""`{% flow_rows flows %}`: the review's table of data flows, drawn in one call.

A busy municipality has a route or more in each of dozens of flows; drawn by the template
engine, each route's eight cells (its IT systems and their vendors, labels, counts and last
moment, each looked up through the template's context) cost the page as much as everything
else it shows. Here each row is one `format_html`, and each word translated once a page.
"""

from django import template
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext

from portal.core.templatetags.row_urls import row_url
from portal.review.flows import Flow, RouteTotals
from transfers.models import ReceivedFile

register = template.Library()

_HEAD = """
        <th scope="rowgroup" rowspan="{count}">
          {integration}
          · {infref}
          <br><a href="?{query}#files-heading">{only_this}</a>
        </th>
        """
_ROW = """
      <tr>
        {head}
        <td>{sender} ({sender_vendor}) → {receiver} ({receiver_vendor})</td>
        <td>{environment}</td>
        <td>{state}</td>
        <td>{transfers}</td>
        <td>{delivered}</td>
        <td>{failed}</td>
        <td>{last}</td>
      </tr>
      """


def _last(totals: RouteTotals) -> str:
    if totals.last_queued_at is None:
        return "–"
    return formats.date_format(timezone.localtime(totals.last_queued_at), "SHORT_DATETIME_FORMAT")


def _head(context: template.Context, flow: Flow, words: dict[str, str]) -> SafeString:
    if flow.integration:
        integration = format_html(
            '<a href="{}">{}</a>',
            row_url(context, "onboarding:detail", flow.integration.pk),
            flow.integration.name,
        )
    else:
        integration = words["none"]
    return format_html(
        _HEAD,
        count=len(flow.routes),
        integration=integration,
        infref=flow.infref.name,
        query=flow.query,
        only_this=words["only_this"],
    )


@register.simple_tag(takes_context=True)
def flow_rows(context: template.Context, flows: list[Flow]) -> SafeString:
    words = {"none": gettext("No integration"), "only_this": gettext("Show only this flow")}
    parts = []
    for flow in flows:
        rows = []
        for index, totals in enumerate(flow.routes):
            route = totals.route
            rows.append(
                format_html(
                    _ROW,
                    head=_head(context, flow, words) if index == 0 else "",
                    sender=route.sender.name,
                    sender_vendor=route.sender.vendor.name,
                    receiver=route.receiver.name,
                    receiver_vendor=route.receiver.vendor.name,
                    environment=totals.environment_label,
                    state=totals.state_label,
                    transfers=totals.transfer_count,
                    delivered=totals.delivered_count,
                    failed=totals.failed_count,
                    last=_last(totals),
                )
            )
        # The whitespace the template's loops left around each row and each group.
        inner = "".join(f"\n      {row}\n      " for row in rows)
        parts.append(f"\n    <tbody>\n      {inner}\n    </tbody>\n    ")
    return SafeString("".join(parts))


@register.simple_tag(takes_context=True)
def received_name(context: template.Context, file: ReceivedFile) -> SafeString:
    """What review/_received_name.html draws, without an include for each of a page's files:
    the file's own name at the receiver in <bdi>, a download link while the file is kept."""
    if file.state == "received" and not file.file_deleted_at:
        url = row_url(context, "transfers:received_download", file.pk)
        return format_html(
            '<a class="break-all" href="{}"><bdi>{}</bdi></a>', url, file.remote_name
        )
    return format_html('<bdi class="break-all">{}</bdi>', file.remote_name)
