from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ReviewConfig(AppConfig):
    name = "portal.review"
    label = "review"
    verbose_name = _("Municipal review")
