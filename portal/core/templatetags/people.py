"""`{{ user|person }}`: how a page names a person, whatever is known of them."""

from django import template

register = template.Library()


@register.filter
def person(user) -> str:
    """The full name, else the user name; a dash where no one is recorded.

    Many records keep who did something as a nullable link; `get_full_name|default:x.username`
    fails to render when the link is empty, and did so on the audit log.
    """
    if user is None:
        return "–"
    return user.get_full_name() or user.get_username()
