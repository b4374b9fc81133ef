from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from portal.accounts.models import Organisation


class AuditEvent(models.Model):
    """Who did what to which record, and when. Rows are only ever added."""

    class Action(models.TextChoices):
        SEND = "send", _("File queued for sending")
        RESUBMIT = "resubmit", _("Transfer sent again")
        CANCEL = "cancel", _("Transfer cancelled")
        DOWNLOAD = "download", _("File downloaded")
        KEY_GENERATED = "key_generated", _("Key made")
        KEY_IMPORTED = "key_imported", _("Key imported")
        HOST_KEY_CONFIRMED = "host_key_confirmed", _("Host key confirmed")
        ROUTE_CHANGED = "route_changed", _("Route changed")
        DECLARATION_SUBMITTED = "declaration_submitted", _("GDPR declaration submitted")
        TASK_CHANGED = "task_changed", _("Onboarding task changed")
        RETENTION_DELETED = "retention_deleted", _("File deleted after the retention period")
        API_TOKEN_CREATED = "api_token_created", _("API token made")
        API_TOKEN_REVOKED = "api_token_revoked", _("API token revoked")
        INFREF_REQUEST_WITHDRAWN = "infref_request_withdrawn", _("InfRef request withdrawn")
        CONSENT_GIVEN = "consent_given", _("A party said yes")
        CONSENT_WITHDRAWN = "consent_withdrawn", _("A party withdrew its yes")
        INTEGRATION_CHANGED = "integration_changed", _("Integration changed")
        LOGIN = "login", _("Logged in")
        LOGIN_FAILED = "login_failed", _("Login failed")
        SSO_LOGIN = "sso_login", _("Signed in through the identity provider")
        SSO_REFUSED = "sso_refused", _("Sign-in through the identity provider refused")
        PASSWORD_CHANGED = "password_changed", _("Password changed")
        PASSWORD_RESET_REQUESTED = "password_reset_requested", _("Password reset asked for")
        PASSWORD_RESET = "password_reset", _("Password set by a reset link")
        INVITATION_SENT = "invitation_sent", _("Colleague invited")
        INVITATION_ACCEPTED = "invitation_accepted", _("Invitation accepted")
        INVITATION_WITHDRAWN = "invitation_withdrawn", _("Invitation withdrawn")
        MEMBER_ROLE_CHANGED = "member_role_changed", _("Member's role changed")
        MEMBER_REMOVED = "member_removed", _("Member removed")
        MEMBER_DEACTIVATED = "member_deactivated", _("Member deactivated")
        TWO_FACTOR_SET_UP = "two_factor_set_up", _("Two-step login set up")
        TWO_FACTOR_REMOVED = "two_factor_removed", _("Two-step login removed")
        BACKUP_CODES_MADE = "backup_codes_made", _("Backup codes made")
        TWO_FACTOR_POLICY = "two_factor_policy", _("Two-step login requirement changed")

    at = models.DateTimeField(_("at"), auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        related_name="+",
        verbose_name=_("who"),
    )
    action = models.CharField(_("action"), max_length=32, choices=Action.choices, db_index=True)
    object_type = models.CharField(_("record type"), max_length=100)
    object_id = models.CharField(_("record id"), max_length=64)
    summary = models.CharField(_("record"), max_length=500)
    details = models.JSONField(_("details"), default=dict, blank=True)
    concerns = models.ManyToManyField(
        Organisation, related_name="audit_events", verbose_name=_("concerns")
    )

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.get_action_display()}: {self.summary}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise PermissionError("The audit log is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("The audit log is append-only.")

    @property
    def who(self) -> str:
        """Who acted: the person, else what acted without one (record() notes it as `via`).

        A person the log names is never deleted (the foreign key protects them), so an event
        without an actor was made by a machine.
        """
        if self.actor is not None:
            return self.actor.get_full_name() or self.actor.get_username()
        via = self.details.get("via")
        if via == "API":
            return _("API token %(token)s") % {"token": self.details.get("token", "")}
        if via == "watched folder":
            return _("Watched folder %(folder)s") % {"folder": self.details.get("folder", "")}
        if via == "command line":
            return _("The command line")
        return _("The portal (scheduled)")
