from django.apps import AppConfig
from django.core import checks
from django.utils.translation import gettext_lazy as _


class TransfersConfig(AppConfig):
    name = "transfers"
    verbose_name = _("Transfers")

    def ready(self) -> None:
        from transfers.endpoints import check_allowed_hosts

        # A typo in SFTP_ALLOWED_HOSTS stops `check`, `migrate` and the servers at start-up.
        checks.register(check_allowed_hosts)
