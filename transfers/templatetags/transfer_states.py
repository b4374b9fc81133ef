"""`{% state_badge state label %}`: a transfer's state as a badge, in one call. The list draws
fifty of them, and an include per row cost it more than the rest of the row's cells."""

from django import template
from django.utils.html import format_html

register = template.Library()

# The design system's badge for each state; the others are plain.
_BADGES = {
    "delivered": " badge-success",
    "failed": " badge-error",
    "no_receipt": " badge-error",
    "sending": " badge-info",
    "sent": " badge-info",
    "queued": " badge-warning",
}


@register.simple_tag
def state_badge(state: str, label: str) -> str:
    return format_html('<span class="badge{}">{}</span>', _BADGES.get(state, ""), label)
