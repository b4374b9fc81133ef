from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django_otp.plugins.otp_totp.admin import TOTPDeviceAdmin
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal.accounts import members
from portal.accounts.models import Invitation, Membership, Organisation


class MembershipInline(admin.TabularInline):
    """The organisation's people, to look at: a membership is made and changed on its own admin
    page, which keeps the rules and the audit log (portal.accounts.members)."""

    model = Membership
    extra = 0
    fields = ["user", "is_administrator"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class MembershipForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["user", "organisation", "is_administrator"]

    def clean(self) -> dict:
        cleaned = super().clean()
        demoted = self.instance.pk and self.instance.is_administrator
        if demoted and not cleaned.get("is_administrator"):
            refusal = members.last_administrator_refusal(self.instance)
            if refusal:
                raise forms.ValidationError(str(refusal))
        return cleaned


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
    form = MembershipForm

    @admin.display(description=_("role"))
    def role_label(self, membership: Membership) -> str:
        return membership.role.label

    def get_readonly_fields(self, request: HttpRequest, obj: Membership | None = None) -> list:
        # Another person or organisation is another membership: made anew, this one removed.
        return ["user", "organisation"] if obj else []

    def get_actions(self, request: HttpRequest) -> dict:
        # One at a time, through the rules: a bulk delete could take an organisation's last
        # administrator with the others.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request: HttpRequest, obj: Membership | None = None) -> bool:
        allowed = super().has_delete_permission(request, obj)
        return allowed and not (obj and members.last_administrator_refusal(obj))

    def save_model(self, request: HttpRequest, obj: Membership, form, change: bool) -> None:
        if change and "is_administrator" in form.changed_data:
            # Changed as an administrator changes it, with its audit event.
            members.change_role(request.user, obj, administrator=obj.is_administrator)
        else:
            super().save_model(request, obj, form, change)

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        members.remove(request.user, obj)


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
