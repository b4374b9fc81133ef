import logging
from collections.abc import Callable
from datetime import date, datetime

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.formats import date_format
from django.utils.functional import Promise
from django.utils.timezone import localtime
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from portal.accounts.models import Organisation
from transfers.models import ReceivedFile, Route, Transfer

log = logging.getLogger(__name__)


class Alert(models.Model):
    """Something a person should look at: a missed delivery, a failed transfer, a quarantine.

    `dedupe_key` names the occurrence, so raising the same alert again changes nothing. What it
    says is kept as its kind and `params`, plain values, and worded only when read (`message`),
    so each reader gets it in their own language.
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
    params = models.JSONField(_("details"), null=True, blank=True, editable=False)
    # Alerts raised before `params` hold their words, in Danish, in the column `message`; so do
    # rows written straight into the table (the bench's scale fill) and callers with text of
    # their own. The column keeps its name so that such writers go on working.
    legacy_message = models.TextField(_("message"), blank=True, db_column="message")
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
        indexes = [
            # The overview counts the open alerts and shows the newest: a few hundred among
            # tens of thousands resolved, read from this index alone instead of the table.
            models.Index(
                F("raised_at").desc(),
                F("id").desc(),
                name="alert_open_newest",
                condition=Q(resolved_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.message[:80]}"

    @property
    def is_error(self) -> bool:
        return self.kind in (self.Kind.TRANSFER_FAILED, self.Kind.NO_RECEIPT)

    @property
    def message(self) -> str:
        """What the alert says, in the active language."""
        if self.params is None:
            return self.legacy_message
        try:
            template, prepare = _WORDING[self.kind]
            return str(template) % (prepare(self.params) if prepare else self.params)
        except (KeyError, TypeError, ValueError):
            # One malformed row must not take the overview down with it.
            log.exception("alert %s cannot be worded from %r", self.pk, self.params)
            return self.legacy_message or str(self.get_kind_display())


def _no_receipt(params: dict) -> dict:
    if params.get("unreadable"):
        reason = gettext("KOMBIT's receipt could not be read; it is kept on the transfer's page.")
    else:
        reason = gettext("No receipt from KOMBIT %(minutes)d minutes after it was sent.") % {
            "minutes": params["minutes"]
        }
    return {**params, "reason": reason}


def _missed_delivery(params: dict) -> dict:
    # Dates are kept in ISO form and written in the reader's own format, which names the month:
    # an all-number date reads the wrong way round to some (portal/formats).
    return {
        **params,
        "day": date_format(date.fromisoformat(params["day"]), "SHORT_DATE_FORMAT"),
        "by": date_format(
            localtime(datetime.fromisoformat(params["deadline"])), "SHORT_DATETIME_FORMAT"
        ),
    }


Kind = Alert.Kind
# Each kind's sentence and what turns its `params` into the sentence's values. These msgids are
# the ones the alerts were first raised with, so their translations carry over.
_WORDING: dict[str, tuple[Promise, Callable[[dict], dict] | None]] = {
    Kind.TRANSFER_FAILED: (_("%(file)s for %(municipality)s failed: %(reason)s"), None),
    Kind.NO_RECEIPT: (
        _(
            "%(file)s for %(municipality)s: %(reason)s Whether it was delivered is not known; "
            "it can be sent again from its page."
        ),
        _no_receipt,
    ),
    Kind.PLATFORM_UNREACHABLE: (
        _(
            "%(account)s cannot reach %(host)s:%(port)s (%(reason)s). Sends wait and are tried "
            "again by themselves, for up to %(hours)d hours; fetches are tried again every "
            "minute."
        ),
        None,
    ),
    Kind.FETCH_QUARANTINED: (_("%(file)s on %(account)s was quarantined: %(reason)s"), None),
    Kind.MISSED_DELIVERY: (
        _("No file was sent for %(municipality)s since %(day)s (expected by %(by)s)."),
        _missed_delivery,
    ),
}
