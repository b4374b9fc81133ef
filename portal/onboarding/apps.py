from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OnboardingConfig(AppConfig):
    name = "portal.onboarding"
    label = "onboarding"
    verbose_name = _("Onboarding")

    def ready(self) -> None:
        from gdpr.signals import infref_changed
        from portal.onboarding.rules import follow_infref

        infref_changed.connect(
            lambda sender, infref, **kwargs: follow_infref(infref),
            dispatch_uid="onboarding-follows-infref",
            weak=False,
        )
