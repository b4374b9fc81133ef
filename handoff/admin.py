from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from handoff import tokens
from handoff.models import (
    ApiSend,
    ApiToken,
    DeliveryFolder,
    FolderDelivery,
    FolderPickup,
    WatchedFolder,
)


def make_directory(request, folder) -> None:
    try:
        folder.directory.mkdir(parents=True, exist_ok=True)
    except (OSError, ValidationError) as error:
        messages.warning(request, f"The folder is saved, but could not be created: {error}")


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnly):
    # Made on the IT system's page, where the token is shown once; never here.
    list_display = ["name", "prefix", "it_system", "created_at", "expires_at", "revoked_at"]
    list_filter = ["it_system"]
    exclude = ["digest"]
    actions = ["revoke"]

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset) -> None:
        for token in queryset:
            tokens.revoke(token, request.user)


@admin.register(WatchedFolder)
class WatchedFolderAdmin(admin.ModelAdmin):
    list_display = ["path", "route", "settle_seconds", "name_pattern", "enabled"]
    raw_id_fields = ["route"]
    readonly_fields = ["changed_by", "changed_at"]

    def save_model(self, request, obj, form, change) -> None:
        obj.changed_by = request.user
        super().save_model(request, obj, form, change)
        make_directory(request, obj)


@admin.register(DeliveryFolder)
class DeliveryFolderAdmin(admin.ModelAdmin):
    list_display = ["path", "it_system", "enabled"]
    raw_id_fields = ["it_system"]
    readonly_fields = ["changed_by", "changed_at"]

    def save_model(self, request, obj, form, change) -> None:
        obj.changed_by = request.user
        super().save_model(request, obj, form, change)
        make_directory(request, obj)


admin.site.register(ApiSend, ReadOnly)
admin.site.register(FolderPickup, ReadOnly)
admin.site.register(FolderDelivery, ReadOnly)
