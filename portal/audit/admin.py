from django.contrib import admin

from portal.audit.models import AuditEvent
from portal.core.admin import RecordAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(RecordAdmin):
    list_display = ["at", "actor", "action", "summary"]
    list_filter = ["action"]
    search_fields = ["summary", "object_id", "actor__username"]
