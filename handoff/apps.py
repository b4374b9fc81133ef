from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class HandoffConfig(AppConfig):
    name = "handoff"
    verbose_name = _("Hand-off without a person")
