from django.contrib import admin

from gdpr.models import DeclarationDownload, GdprDeclaration, InfRef, InfRefRequest


@admin.register(InfRef)
class InfRefAdmin(admin.ModelAdmin):
    list_display = ["name", "it_system", "assigned_at", "created_on_serviceplatform_at"]
    search_fields = ["name", "it_system__name", "it_system__vendor__name"]
    readonly_fields = ["number", "version", "assigned_at"]
    autocomplete_fields = ["it_system", "assigned_by", "created_on_serviceplatform_by"]


@admin.register(InfRefRequest)
class InfRefRequestAdmin(admin.ModelAdmin):
    list_display = ["__str__", "it_system", "requested_by", "requested_at"]
    search_fields = ["infref__name", "it_system__name", "description"]
    readonly_fields = ["requested_at"]
    autocomplete_fields = ["it_system", "requested_by", "infref"]
    raw_id_fields = ["request_mail"]


@admin.register(GdprDeclaration)
class GdprDeclarationAdmin(admin.ModelAdmin):
    list_display = ["infref", "version", "status", "submitted_at", "outdated_at"]
    list_filter = ["status"]
    search_fields = ["infref__name"]
    filter_horizontal = ["controllers", "receiving_it_systems"]
    autocomplete_fields = ["infref", "created_by", "submitted_by"]
    raw_id_fields = ["submission_mail"]
    readonly_fields = ["content_sha256", "created_at", "updated_at"]

    def has_change_permission(self, request, obj=None) -> bool:
        # Submitted versions are the record sent to KOMBIT; the admin cannot rewrite them either.
        if obj is not None and not obj.is_editable:
            return False
        return super().has_change_permission(request, obj)


@admin.register(DeclarationDownload)
class DeclarationDownloadAdmin(admin.ModelAdmin):
    list_display = ["declaration", "user", "at", "sha256"]
    search_fields = ["declaration__infref__name", "user__username"]
    readonly_fields = ["declaration", "user", "at", "sha256"]

    def has_add_permission(self, request) -> bool:
        return False
