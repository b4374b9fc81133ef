from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from portal.accounts.models import Organisation
from portal.core.text import single_line


class ItSystem(models.Model):
    """An IT system as registered in KOMBIT's Administrationsmodul, owned by one vendor."""

    uuid = models.UUIDField(
        _("UUID"),
        unique=True,
        help_text=_("The IT system's UUID in KOMBIT's Administrationsmodul."),
    )
    name = models.CharField(_("name"), max_length=200, validators=[single_line])
    vendor = models.ForeignKey(
        Organisation,
        on_delete=models.PROTECT,
        related_name="it_systems",
        limit_choices_to={"kind": Organisation.Kind.VENDOR},
        verbose_name=_("vendor"),
    )
    is_sender = models.BooleanField(_("sender"), default=False)
    is_receiver = models.BooleanField(_("receiver"), default=False)
    created = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("IT system")
        verbose_name_plural = _("IT systems")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                name="sender_or_receiver",
                condition=models.Q(is_sender=True) | models.Q(is_receiver=True),
            ),
            models.UniqueConstraint(name="unique_name_per_vendor", fields=["vendor", "name"]),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        if self.vendor_id and self.vendor.kind != Organisation.Kind.VENDOR:
            errors["vendor"] = _("An IT system is owned by a vendor.")
        if not (self.is_sender or self.is_receiver):
            errors["is_sender"] = _("An IT system is a sender, a receiver or both.")
        if errors:
            raise ValidationError(errors)

    @property
    def directions(self) -> list[str]:
        return [
            str(label)
            for flag, label in ((self.is_sender, _("sender")), (self.is_receiver, _("receiver")))
            if flag
        ]
