from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from portal.accounts.models import Organisation


class OutgoingMail(models.Model):
    """One message the portal sends; the row is the truth, the task queue only carries its id."""

    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    to = models.JSONField(_("to"), help_text=_("List of recipient addresses."))
    subject = models.CharField(_("subject"), max_length=255)
    body = models.TextField(_("body"))
    # Fixed when the row is created, so every attempt sends the same Message-ID and a receiver
    # can recognise a message that a retry delivered twice.
    message_id = models.CharField(_("Message-ID"), max_length=255, unique=True)
    state = models.CharField(
        _("state"), max_length=16, choices=State.choices, default=State.QUEUED, db_index=True
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    # When a worker claimed the row; a row left in "sending" long after this lost its worker.
    claimed_at = models.DateTimeField(_("claimed at"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    created = models.DateTimeField(_("created"), auto_now_add=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    organisation = models.ForeignKey(
        Organisation,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="outgoing_mails",
        verbose_name=_("sent on behalf of"),
    )
    # KOMBIT's operators see what is addressed to KOMBIT; kept as a column so the access rule
    # is a plain filter on every database.
    addressed_to_kombit = models.BooleanField(_("addressed to KOMBIT"), default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )

    class Meta:
        verbose_name = _("outgoing mail")
        verbose_name_plural = _("outgoing mails")
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.subject

    def save(self, *args, **kwargs) -> None:
        self.addressed_to_kombit = settings.KOMBIT_MAIL_ADDRESS.lower() in (
            address.lower() for address in self.to
        )
        super().save(*args, **kwargs)


class MailAttachment(models.Model):
    mail = models.ForeignKey(
        OutgoingMail, on_delete=models.CASCADE, related_name="attachments", verbose_name=_("mail")
    )
    filename = models.CharField(_("file name"), max_length=255)
    content_type = models.CharField(_("content type"), max_length=100)
    content = models.BinaryField(_("content"))
    sha256 = models.CharField(_("SHA-256"), max_length=64)

    class Meta:
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")

    def __str__(self) -> str:
        return self.filename
