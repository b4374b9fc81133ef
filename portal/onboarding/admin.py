from django.contrib import admin

from portal.onboarding.models import (
    Consent,
    Integration,
    IntegrationMunicipality,
    IntegrationTest,
    OnboardingTask,
    ProcessingAgreement,
)


class MunicipalityInline(admin.TabularInline):
    model = IntegrationMunicipality
    extra = 0
    autocomplete_fields = ["municipality"]


@admin.register(Integration)
class IntegrationAdmin(admin.ModelAdmin):
    list_display = ["name", "sender", "receiver", "infref", "legal_basis_reviewed_on"]
    search_fields = ["name", "sender__name", "receiver__name", "infref__name"]
    autocomplete_fields = ["sender", "receiver", "infref", "created_by"]
    inlines = [MunicipalityInline]


@admin.register(OnboardingTask)
class OnboardingTaskAdmin(admin.ModelAdmin):
    list_display = ["integration", "number", "municipality", "state", "due_date", "changed_at"]
    list_filter = ["number", "state"]
    search_fields = ["integration__name", "municipality__name"]
    autocomplete_fields = ["integration", "municipality", "changed_by"]


@admin.register(IntegrationMunicipality)
class IntegrationMunicipalityAdmin(admin.ModelAdmin):
    list_display = ["integration", "municipality", "joined_at"]
    autocomplete_fields = ["integration", "municipality"]


@admin.register(ProcessingAgreement)
class ProcessingAgreementAdmin(admin.ModelAdmin):
    list_display = ["title", "integration", "signed_on"]
    autocomplete_fields = ["integration"]
    filter_horizontal = ["parties"]


@admin.register(IntegrationTest)
class IntegrationTestAdmin(admin.ModelAdmin):
    list_display = ["integration", "result"]
    list_filter = ["result"]
    autocomplete_fields = ["integration"]


@admin.register(Consent)
class ConsentAdmin(admin.ModelAdmin):
    """Read-only: a party's yes is given and withdrawn by that party in the portal."""

    list_display = ["integration", "subject", "organisation", "municipality", "given_at"]
    list_filter = ["subject"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
