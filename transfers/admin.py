from django.contrib import admin

from portal.core.admin import RecordAdmin
from transfers.models import ReceivedFile, Route, RouteTally, SftpAccount, Transfer, TransferHour


@admin.register(SftpAccount)
class SftpAccountAdmin(admin.ModelAdmin):
    list_display = ["username", "it_system", "environment", "host", "port", "key_fingerprint"]
    list_filter = ["environment"]
    search_fields = ["username", "it_system__name"]
    autocomplete_fields = ["it_system"]
    # The private key never leaves the workers, not even to a superuser's screen.
    exclude = ["private_key_encrypted"]
    readonly_fields = ["key_fingerprint", "key_created_at", "host_key_fingerprint"]


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    list_display = ["infref", "sender", "receiver", "municipality", "environment", "state"]
    list_filter = ["environment", "state"]
    search_fields = ["infref__name", "sender__name", "receiver__name", "municipality__name"]
    autocomplete_fields = ["infref", "sender", "receiver", "municipality", "integration"]


@admin.register(Transfer)
class TransferAdmin(admin.ModelAdmin):
    list_display = ["remote_name", "route", "state", "size", "attempts", "queued_at"]
    list_filter = ["state"]
    search_fields = ["remote_name", "original_name", "senders_file_id", "transaction_id"]
    raw_id_fields = ["route", "account", "created_by"]
    # The state moves only as transfers.states allows, by the workers, cancel and send again.
    readonly_fields = ["state", "sha256", "remote_name", "senders_file_id", "transaction_id"]


@admin.register(ReceivedFile)
class ReceivedFileAdmin(admin.ModelAdmin):
    list_display = ["remote_name", "account", "state", "size", "received_at"]
    list_filter = ["state"]
    search_fields = ["remote_name", "infref_name", "file_transfer_uuid"]
    raw_id_fields = ["account", "route"]


@admin.register(TransferHour)
class TransferHourAdmin(RecordAdmin):
    """The database's triggers keep the counts."""

    list_display = ["hour", "state", "count", "bytes"]
    list_filter = ["state"]
    date_hierarchy = "hour"


@admin.register(RouteTally)
class RouteTallyAdmin(RecordAdmin):
    """The database's triggers keep the counts."""

    list_display = ["route", "state", "count"]
    list_filter = ["state"]
    list_select_related = ["route__infref", "route__receiver", "route__municipality"]
    raw_id_fields = ["route"]
