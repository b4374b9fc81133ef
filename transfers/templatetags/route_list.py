"""`{% route_rows rows %}`: the routes page's rows, drawn in one call.

A page holds fifty routes, each with its state, what blocks a send on it and (for KOMBIT) a form
to set its state: drawn by the template engine, each value looked up through the template's
context and each sentence translated again for every row, they cost the page more than its
queries. Here each row is one `format_html`, and each word translated once a page.
"""

from django import template
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext

from portal.core import dates
from portal.core.templatetags.row_urls import row_url
from transfers.models import Route

register = template.Library()

_ROW = """
    <tr>
      <td>{infref}</td><td>{sender} → {receiver}</td><td>{municipality}</td>
      <td>{environment}</td>
      <td>{state}
        {next_step}
        {form}
      </td>
      <td>{blockers}</td>
      {transfers}
    </tr>
    """
_FORM = (
    '<form method="post" action="{action}">{csrf}<select class="form-select" name="state" '
    'aria-label="{label}">{options}</select><button class="button button-secondary" '
    'type="submit">{save}</button></form>'
)
_TRANSFERS = (
    '<td><a href="{url}?route={pk}">{transfers}<span class="sr-only"> {which}</span></a></td>'
)


def _csrf(context: template.Context) -> SafeString | str:
    """What `{% csrf_token %}` writes."""
    value = context.get("csrf_token")
    if not value or value == "NOTPROVIDED":
        return ""
    return format_html('<input type="hidden" name="csrfmiddlewaretoken" value="{}">', value)


def _next_step(route: Route, is_kombit: bool, words: dict) -> SafeString | str:
    if route.state == Route.State.ORDERED and not is_kombit:
        # With the line break the template had after it, so the page stays as it was.
        return format_html('<p class="route-next">{}</p>\n        ', words["kombit_establishes"])
    if route.state == Route.State.SUSPENDED:
        moment = dates.date_format(timezone.localtime(route.changed_at), "SHORT_DATETIME_FORMAT")
        # As {% blocktranslate %} has it: the value escaped, the sentence as translated.
        sentence = SafeString(words["suspended"] % {"date": format_html("{}", moment)})
        return format_html('<p class="route-next">{}</p>', sentence)
    return ""


def _blockers(blockers: list[str], words: dict) -> SafeString:
    if blockers:
        return format_html(
            "<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((b,) for b in blockers))
        )
    return format_html('<span class="badge badge-success">{}</span>', words["ready"])


@register.simple_tag(takes_context=True)
def route_rows(context: template.Context, rows: list) -> SafeString:
    is_kombit, sees_transfers = context.get("is_kombit"), context.get("sees_transfers")
    states = [(value, str(label)) for value, label in context.get("states", ())]
    words = {
        "kombit_establishes": gettext("KOMBIT establishes the route on Serviceplatformen."),
        "suspended": gettext("The route was suspended on %(date)s; no files are sent on it."),
        "ready": gettext("Ready"),
        "state": gettext("State"),
        "save": gettext("Save"),
        "transfers": gettext("Transfers"),
        "which": gettext("on the route of %(infref)s for %(municipality)s"),
    }
    environments = {
        value: str(label) for value, label in Route._meta.get_field("environment").choices
    }
    route_states = {value: str(label) for value, label in Route.State.choices}
    list_url = reverse("transfers:list")
    csrf = _csrf(context) if is_kombit else ""
    drawn = []
    for route, blockers in rows:
        form = transfers = ""
        if is_kombit:
            options = format_html_join(
                "",
                '<option value="{}"{}>{}</option>',
                (
                    (value, " selected" if value == route.state else "", label)
                    for value, label in states
                ),
            )
            form = format_html(
                _FORM,
                action=row_url(context, "transfers:route_state", route.pk),
                csrf=csrf,
                label=words["state"],
                options=options,
                save=words["save"],
            )
        if sees_transfers:
            which = words["which"] % {
                "infref": format_html("{}", route.infref.name),
                "municipality": format_html("{}", route.municipality.name),
            }
            transfers = format_html(
                _TRANSFERS,
                url=list_url,
                pk=route.pk,
                transfers=words["transfers"],
                which=SafeString(which),
            )
        drawn.append(
            format_html(
                _ROW,
                infref=route.infref.name,
                sender=route.sender.name,
                receiver=route.receiver.name,
                municipality=route.municipality.name,
                environment=environments.get(route.environment, route.environment),
                state=route_states.get(route.state, route.state),
                next_step=_next_step(route, is_kombit, words),
                form=form,
                blockers=_blockers(blockers, words),
                transfers=transfers,
            )
        )
    return SafeString("".join(drawn))
