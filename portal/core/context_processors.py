from django.http import HttpRequest

from portal.accounts.access import memberships_of, scope_of
from portal.core.navigation import menu_for


def navigation(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    scope = scope_of(user)
    return {
        "menu": menu_for(request.path, scope),
        "memberships": memberships_of(user),
        "access": scope,
    }
