from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SpecsConfig(AppConfig):
    name = "portal.specs"
    label = "specs"
    verbose_name = _("Data specifications")
