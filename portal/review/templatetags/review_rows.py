"""`{% flow_rows flows %}`: the review's table of data flows, drawn in one call.

A busy municipality has a route or more in each of dozens of flows; drawn by the template
engine, each route's eight cells (its IT systems and their vendors, labels, counts and last
moment, each looked up through the template's context) cost the page as much as everything
else it shows. Here each row is one `format_html`, and each word translated once a page.
"""

from django import template
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext

from portal.core import dates
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
    return dates.date_format(timezone.localtime(totals.last_queued_at), "SHORT_DATETIME_FORMAT")


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


_FILE_ROW = """
      <tr>
        <td class="review-file">
          {name}
          {digest}
        </td>
        <td>{integration} · <span class="break-all">{infref}</span><br>
          <span class="text-small">{environment}</span></td>
        <td class="review-sender">
          {sender}<br>
          {sent}
        </td>
        <td class="review-receiver">
          {receiver}<br>
          {fetched}
        </td>
        <td class="review-size">{size}</td>
        <td class="ran-under-version">
          {version}
        </td>
        <td class="ran-under-declaration">
          {declaration}
        </td>
      </tr>
      """
_DIGEST = """
          <details class="text-small">
            <summary>SHA-256 <code>{short}</code>…</summary>
            <code class="break-all">{digest}</code>
            {at_receiver}
          </details>
          """
# Two line breaks at the top: the label, made with {% blocktranslate asvar %}, had a line
# of its own that drew nothing.
_DECLARATION = (
    "\n          \n          {label}\n          ({submitted})\n          {not_named}"
    "\n          {outdated}\n          {differs}\n          "
)
_WARNING = '<br><span class="badge badge-warning">{}</span>'
# The line break and indent the template left after a cell's text where more followed it.
_BREAK = "\n          "


def _moment(value, form: str = "SHORT_DATETIME_FORMAT") -> str:
    """As the template's `date` filter writes it: local time, nothing for no moment."""
    if value is None:
        return ""
    return dates.date_format(timezone.localtime(value), form)


def _file_name(context: template.Context, passage, words: dict) -> SafeString:
    transfer, received = passage.transfer, passage.received
    if transfer:
        url = row_url(context, "transfers:detail", transfer.pk)
        link = format_html('<a class="break-all" href="{}">{}</a>', url, transfer.original_name)
        return SafeString(link + _BREAK)
    return received_name(context, received)


def _digest(context: template.Context, passage, words: dict) -> SafeString | str:
    if not passage.sha256:
        return ""
    at_receiver = ""
    if passage.transfer and passage.received:
        at_receiver = format_html(
            "<br>{}: {}", words["at_receiver"], received_name(context, passage.received)
        )
    return format_html(
        _DIGEST, short=passage.sha256[:12], digest=passage.sha256, at_receiver=at_receiver
    )


def _sent(passage, words: dict) -> SafeString:
    transfer = passage.transfer
    if not transfer:
        return format_html('<span class="text-small">{}</span>', words["not_sent"])
    badge = {"delivered": " badge-success", "failed": " badge-error"}.get(transfer.state, "")
    return format_html(
        '<span class="badge{}">{}</span><br>\n          <span class="text-small">{}</span>'
        + _BREAK,
        badge,
        transfer.get_state_display(),
        _moment(passage.sent_at),
    )


def _fetched(passage, words: dict) -> SafeString:
    transfer, received = passage.transfer, passage.received
    if received and received.state == "received":
        deleted = ""
        if received.file_deleted_at:
            deleted = format_html('<br><span class="text-small">({})</span>', words["deleted"])
        return format_html(
            '<span class="badge badge-success">{}</span><br>\n          '
            '<span class="text-small">{}</span>\n          {}' + _BREAK,
            words["fetched"],
            _moment(received.received_at),
            deleted,
        )
    if received:
        reason = ""
        if received.reason:
            reason = format_html(' <span class="text-small">{}</span>', received.reason)
        return format_html(
            '<span class="badge badge-error">{}</span>{}' + _BREAK,
            received.get_state_display(),
            reason,
        )
    if transfer and transfer.state in ("sent", "delivered"):
        return format_html('<span class="text-small">{}</span>' + _BREAK, words["not_fetched"])
    return SafeString('<span class="text-small">–</span>')


def _version(context: template.Context, passage, words: dict) -> SafeString:
    route, ran = passage.route, passage.ran_under
    if not route.integration_id:
        return format_html("{}" + _BREAK, words["no_integration"])
    if ran.version:
        if ran.version_visible:
            url = row_url(context, "specs:version", ran.version.pk)
            return format_html('<a href="{}">{}</a>' + _BREAK, url, ran.version.label)
        return format_html("{}" + _BREAK, ran.version.label)
    return format_html('<span class="badge badge-warning">{}</span>', words["no_version"])


def _declaration(context: template.Context, passage, not_named: str, words: dict) -> SafeString:
    ran = passage.ran_under
    declaration = ran.declaration
    if not declaration:
        return format_html('<span class="badge badge-error">{}</span>', words["none_submitted"])
    # As {% blocktranslate %} has them: the values escaped, the sentences as translated.
    label = SafeString(words["version"] % {"version": format_html("{}", declaration.version)})
    if ran.declaration_visible:
        url = row_url(context, "gdpr:declaration", declaration.pk)
        label = format_html('<a href="{}">{}</a>', url, label)
    submitted = words["submitted"] % {
        "date": format_html("{}", _moment(declaration.submitted_at, "SHORT_DATE_FORMAT"))
    }
    differs = ""
    if ran.declared_version_differs:
        declared = words["declares"] % {
            "declared": format_html("{}", declaration.data_specification_version)
        }
        differs = format_html(_WARNING, SafeString(declared))
    return format_html(
        _DECLARATION,
        label=label,
        submitted=SafeString(submitted),
        not_named="" if ran.names_municipality else format_html(_WARNING, not_named),
        outdated=format_html(_WARNING, words["outdated"]) if ran.declaration_outdated else "",
        differs=differs,
    )


@register.simple_tag(takes_context=True)
def file_rows(context: template.Context, passages: list, not_named: str) -> SafeString:
    """The review's page of files, each row as the template drew it."""
    words = {
        "at_receiver": gettext("At the receiver"),
        "no_integration": gettext("No integration"),
        "not_sent": gettext("Not sent through the portal"),
        "fetched": gettext("Fetched"),
        "deleted": gettext("deleted after the retention period"),
        "not_fetched": gettext("Not fetched yet"),
        "no_version": gettext("No version yet"),
        "none_submitted": gettext("None submitted before the transfer"),
        "version": gettext("Version %(version)s"),
        "submitted": gettext("submitted %(date)s"),
        "outdated": gettext("Marked outdated before the transfer"),
        "declares": gettext("Declares specification version %(declared)s"),
    }
    rows = []
    for passage in passages:
        route = passage.route
        integration = route.integration.name if route.integration else ""
        row = format_html(
            _FILE_ROW,
            name=_file_name(context, passage, words),
            digest=_digest(context, passage, words),
            integration=integration or words["no_integration"],
            infref=route.infref.name,
            environment=route.get_environment_display(),
            sender=route.sender.name,
            sent=_sent(passage, words),
            receiver=route.receiver.name,
            fetched=_fetched(passage, words),
            size="–" if passage.size is None else filesizeformat(passage.size),
            version=_version(context, passage, words),
            declaration=_declaration(context, passage, not_named, words),
        )
        rows.append(f"\n      {row}\n      ")
    return SafeString("".join(rows))
