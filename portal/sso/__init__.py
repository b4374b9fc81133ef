"""Single sign-on through an organisation's SAML 2.0 identity provider (views.py)."""

# Set in the session by a login through the identity provider, and only by one: any other login
# (a password, in the same session) clears it (apps.py).
SESSION_KEY = "sso"


def signed_in_by_sso(request) -> bool:
    """Whether this session's login came through the identity provider, which then decides how
    its users log in (two-step or not): the portal does not ask them for its own second step."""
    session = getattr(request, "session", None)
    return bool(session is not None and session.get(SESSION_KEY) is True)
