from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ItSystemsConfig(AppConfig):
    name = "portal.itsystems"
    label = "itsystems"
    verbose_name = _("IT systems")
