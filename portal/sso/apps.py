import logging

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SsoConfig(AppConfig):
    name = "portal.sso"
    label = "sso"
    verbose_name = _("Single sign-on")

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        user_logged_in.connect(_forget_sso, dispatch_uid="sso-forget-at-login")
        # pysaml2 logs each person's NameID at INFO, and xmlschema its schema loading: only
        # their warnings and errors (a bad signature, an unreadable answer), unless LOG_LEVEL
        # is DEBUG, which is for finding out why an identity provider is not understood.
        if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            for name in ("saml2", "xmlschema"):
                logging.getLogger(name).setLevel(logging.WARNING)


def _forget_sso(sender, request, user, **kwargs) -> None:
    """Every login starts without the mark; the single sign-on view sets it after its own."""
    from portal.sso import SESSION_KEY

    session = getattr(request, "session", None)
    if session is not None:
        session.pop(SESSION_KEY, None)
