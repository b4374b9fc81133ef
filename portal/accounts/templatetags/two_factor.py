from django import template

from portal.accounts.two_factor_manage import status

register = template.Library()


@register.inclusion_tag("accounts/two_factor_status.html", takes_context=True)
def two_factor_status(context) -> dict:
    """The user's two-step login at a glance, with the way to change it."""
    return status(context["request"])
