from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save
from django.utils.translation import gettext_lazy as _


def _integration_of(instance, path: str):
    """The integration a saved or deleted record belongs to, if it still exists."""
    from portal.onboarding.models import Integration

    integration_id = instance
    for step in path.split("."):
        integration_id = getattr(integration_id, step, None)
        if integration_id is None:
            return None
    return Integration.objects.filter(pk=integration_id).first()


class OnboardingConfig(AppConfig):
    name = "portal.onboarding"
    label = "onboarding"
    verbose_name = _("Onboarding")

    def ready(self) -> None:
        from gdpr.models import InfRefRequest
        from gdpr.signals import infref_changed
        from portal.onboarding import follow
        from portal.onboarding.models import (
            Consent,
            Integration,
            IntegrationMunicipality,
            ProcessingAgreement,
        )
        from portal.specs.models import SpecificationVersion
        from transfers.models import Route, SftpAccount

        infref_changed.connect(
            lambda sender, infref, **kwargs: follow.follow_infref(infref),
            dispatch_uid="onboarding-follows-infref",
            weak=False,
        )

        def by_path(path: str):
            def receiver(sender, instance, **kwargs) -> None:
                integration = _integration_of(instance, path)
                if integration is not None:
                    follow.follow_records(integration)

            return receiver

        def by_it_system(path: str):
            def receiver(sender, instance, **kwargs) -> None:
                follow.follow_it_system(getattr(instance, path))

            return receiver

        def by_route(sender, instance, **kwargs) -> None:
            for integration in follow.integrations_of_route(instance):
                follow.follow_records(integration)

        followed = [
            (Integration, by_path("pk")),
            (IntegrationMunicipality, by_path("integration_id")),
            (ProcessingAgreement, by_path("integration_id")),
            (Consent, by_path("integration_id")),
            (SpecificationVersion, by_path("specification.integration_id")),
            (InfRefRequest, by_it_system("it_system_id")),
            (SftpAccount, by_it_system("it_system_id")),
            (Route, by_route),
        ]
        for model, receiver in followed:
            for signal in (post_save, post_delete):
                signal.connect(
                    receiver,
                    sender=model,
                    weak=False,
                    dispatch_uid=f"onboarding-follows-{model._meta.label}-{signal is post_save}",
                )
