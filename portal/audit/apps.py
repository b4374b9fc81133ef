from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuditConfig(AppConfig):
    name = "portal.audit"
    label = "audit"
    verbose_name = _("Audit log")

    def ready(self) -> None:
        from portal.audit import logins

        # Every login, and every failed one, is an audit event (portal/audit/logins.py).
        logins.connect()
