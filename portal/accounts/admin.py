from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from portal.accounts.models import Membership, Organisation


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "cvr", "municipality_code"]
    list_filter = ["kind"]
    search_fields = ["name", "cvr", "municipality_code"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organisation", "role_label", "created"]
    list_filter = ["organisation__kind"]
    search_fields = ["user__username", "user__email", "organisation__name"]
    autocomplete_fields = ["user", "organisation"]

    @admin.display(description=_("role"))
    def role_label(self, membership: Membership) -> str:
        return membership.role.label
