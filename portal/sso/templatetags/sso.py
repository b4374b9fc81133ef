from django import template

from portal.sso.config import is_configured

register = template.Library()


@register.simple_tag
def sso_configured() -> bool:
    """Whether single sign-on is on: `{% sso_configured as on %}`."""
    return is_configured()
