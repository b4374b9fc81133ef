from django.contrib import admin

from portal.itsystems.models import ItSystem


@admin.register(ItSystem)
class ItSystemAdmin(admin.ModelAdmin):
    list_display = ["name", "vendor", "uuid", "is_sender", "is_receiver"]
    list_filter = ["is_sender", "is_receiver"]
    search_fields = ["name", "uuid", "vendor__name"]
    autocomplete_fields = ["vendor"]
