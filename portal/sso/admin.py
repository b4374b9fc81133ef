from django.contrib import admin
from django.http import HttpRequest

from portal.sso.models import SsoIdentity


@admin.register(SsoIdentity)
class SsoIdentityAdmin(admin.ModelAdmin):
    """Who signs in through which identity provider. Made by sign-ins alone; a superuser may
    delete one, and the person's next sign-in then makes a new account."""

    list_display = ["user", "issuer", "name_id", "created_at", "last_sign_in_at"]
    search_fields = ["user__username", "user__email", "user__last_name", "name_id"]
    readonly_fields = ["user", "issuer", "name_id", "created_at", "last_sign_in_at"]
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
