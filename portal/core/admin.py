from django.contrib import admin


class RecordAdmin(admin.ModelAdmin):
    """A record the portal keeps itself (the audit log, the hourly counts): shown to superusers,
    never added, edited or deleted by hand."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
