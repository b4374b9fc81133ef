from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from portal.alerts.models import Alert


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["raised_at", "kind", "message", "resolved_at"]
    list_filter = ["kind", ("resolved_at", admin.EmptyFieldListFilter)]
    # `params` is searched as its JSON text: a file or account name is found there.
    search_fields = ["legacy_message", "params", "dedupe_key"]
    raw_id_fields = ["route", "transfer", "received_file", "resolved_by"]
    filter_horizontal = ["concerns"]
    # The portal writes what an alert says; `message` shows it, worded or as first written.
    exclude = ["legacy_message"]
    readonly_fields = ["dedupe_key", "raised_at", "message", "params"]

    @admin.display(description=_("message"))
    def message(self, alert: Alert) -> str:
        return alert.message
