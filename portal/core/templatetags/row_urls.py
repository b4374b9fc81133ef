"""`{% row_url %}`: the URL of a row's own page, for every row of a list at the cost of one.

A list links each of its rows to the same view, and `{% url %}` resolves the pattern again for
every row: on a page of a hundred rows that costs more than the rest of their cells. Here the
view's path is reversed once per render with a marker in place of the key, and each row's path
is made from the two halves around it.
"""

from django import template
from django.urls import reverse

register = template.Library()

# A key no row has, where the reversed path is split.
_MARKER = "918273645546372819"
_HALVES = "row_urls.halves"


@register.simple_tag(takes_context=True)
def row_url(context: template.Context, view_name: str, pk: int) -> str:
    halves = context.render_context.get(_HALVES)
    if halves is None:
        halves = context.render_context[_HALVES] = {}
    if view_name not in halves:
        head, _marker, tail = reverse(view_name, args=[int(_MARKER)]).partition(_MARKER)
        halves[view_name] = (head, tail)
    head, tail = halves[view_name]
    return f"{head}{int(pk)}{tail}"
