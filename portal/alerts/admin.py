from django.contrib import admin

from portal.alerts.models import Alert


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["raised_at", "kind", "message", "resolved_at"]
    list_filter = ["kind", ("resolved_at", admin.EmptyFieldListFilter)]
    search_fields = ["message", "dedupe_key"]
    raw_id_fields = ["route", "transfer", "received_file", "resolved_by"]
    filter_horizontal = ["concerns"]
    readonly_fields = ["dedupe_key", "raised_at"]
