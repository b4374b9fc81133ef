from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from portal.accounts.models import Organisation
from transfers.models import ReceivedFile, Route, Transfer


class Alert(models.Model):
    """Something a person should look at: a missed delivery, a failed transfer, a quarantine.

    `dedupe_key` names the occurrence, so raising the same alert again changes nothing.
    """

    class Kind(models.TextChoices):
        MISSED_DELIVERY = "missed_delivery", _("Expected file not sent")
        TRANSFER_FAILED = "transfer_failed", _("Transfer failed")
        FETCH_QUARANTINED = "fetch_quarantined", _("Received file quarantined")
        NO_RECEIPT = "no_receipt", _("No receipt from KOMBIT")
        PLATFORM_UNREACHABLE = "platform_unreachable", _("Serviceplatformen cannot be reached")

    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices, db_index=True)
    dedupe_key = models.CharField(_("key"), max_length=200, unique=True)
    route = models.ForeignKey(
        Route,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alerts",
        verbose_name=_("route"),
    )
    transfer = models.ForeignKey(
        Transfer,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alerts",
        verbose_name=_("transfer"),
    )
    received_file = models.ForeignKey(
        ReceivedFile,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alerts",
        verbose_name=_("received file"),
    )
    message = models.TextField(_("message"))
    raised_at = models.DateTimeField(_("raised at"), auto_now_add=True, db_index=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("resolved by"),
    )
    concerns = models.ManyToManyField(
        Organisation, related_name="alerts", verbose_name=_("concerns")
    )

    class Meta:
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        ordering = ["-raised_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.message[:80]}"

    @property
    def is_error(self) -> bool:
        return self.kind in (self.Kind.TRANSFER_FAILED, self.Kind.NO_RECEIPT)
