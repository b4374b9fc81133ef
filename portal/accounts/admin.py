from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django_otp.plugins.otp_totp.admin import TOTPDeviceAdmin
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal.accounts.models import Invitation, Membership, Organisation


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "is_administrator"]


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "cvr", "municipality_code"]
    list_filter = ["kind"]
    search_fields = ["name", "cvr", "municipality_code"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    # A superuser makes an organisation's first administrator here; its administrators run the
    # rest of its people on the organisation's page.
    list_display = ["user", "organisation", "role_label", "is_administrator", "created"]
    list_filter = ["organisation__kind", "is_administrator"]
    search_fields = ["user__username", "user__email", "organisation__name"]
    autocomplete_fields = ["user", "organisation"]
    fields = ["user", "organisation", "is_administrator"]

    @admin.display(description=_("role"))
    def role_label(self, membership: Membership) -> str:
        return membership.role.label


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Read only: an invitation is made on its organisation's page, which mails the link (the
    token itself is never stored, so it could not be shown here)."""

    list_display = ["email", "organisation", "is_administrator", "created_at", "expires_at"]
    list_filter = ["is_administrator", "organisation__kind"]
    search_fields = ["email", "organisation__name"]
    readonly_fields = [
        "organisation",
        "email",
        "is_administrator",
        "invited_by",
        "created_at",
        "expires_at",
        "accepted_at",
        "accepted_by",
        "cancelled_at",
    ]
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Invitation | None = None) -> bool:
        return False


# Devices are made only by their owner on the setup page, so no one else ever sees a secret;
# a superuser may list them and delete one to reset a lost phone (the owner sets up anew).
admin.site.unregister(TOTPDevice)


@admin.register(TOTPDevice)
class TwoFactorDeviceAdmin(TOTPDeviceAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: TOTPDevice | None = None) -> bool:
        return False
