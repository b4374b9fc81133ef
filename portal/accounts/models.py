from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from portal.accounts.cvr import validate_cvr
from portal.core.text import single_line


class Organisation(models.Model):
    """A vendor, one of the 98 municipalities, or KOMBIT."""

    class Kind(models.TextChoices):
        VENDOR = "vendor", _("Vendor")
        MUNICIPALITY = "municipality", _("Municipality")
        KOMBIT = "kombit", "KOMBIT"

    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    name = models.CharField(_("name"), max_length=200, validators=[single_line])
    cvr = models.CharField(_("CVR number"), max_length=8, unique=True, validators=[validate_cvr])
    municipality_code = models.CharField(
        _("municipality code"),
        max_length=3,
        unique=True,
        null=True,
        blank=True,
        validators=[RegexValidator(r"^[0-9]{3}$", _("A municipality code is three digits."))],
        help_text=_("Three-digit code (kommunekode); municipalities only."),
    )

    class Meta:
        verbose_name = _("organisation")
        verbose_name_plural = _("organisations")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                name="municipality_code_iff_municipality",
                condition=(
                    models.Q(kind="municipality", municipality_code__isnull=False)
                    | (~models.Q(kind="municipality") & models.Q(municipality_code__isnull=True))
                ),
            ),
            models.UniqueConstraint(
                name="one_kombit", fields=["kind"], condition=models.Q(kind="kombit")
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.municipality_code == "":
            self.municipality_code = None
        if self.kind == self.Kind.MUNICIPALITY and not self.municipality_code:
            raise ValidationError(
                {"municipality_code": _("A municipality must have its municipality code.")}
            )
        if self.kind != self.Kind.MUNICIPALITY and self.municipality_code:
            raise ValidationError(
                {"municipality_code": _("Only municipalities have a municipality code.")}
            )

    @property
    def role(self) -> "Role":
        return ROLE_OF_KIND[self.kind]


class Role(models.TextChoices):
    VENDOR_STAFF = "vendor_staff", _("Vendor staff")
    MUNICIPAL_ARCHITECT = "municipal_architect", _("Municipal architect")
    KOMBIT_OPERATOR = "kombit_operator", _("KOMBIT operator")


# A member's role follows from the kind of organisation, so the two can never disagree.
ROLE_OF_KIND = {
    Organisation.Kind.VENDOR: Role.VENDOR_STAFF,
    Organisation.Kind.MUNICIPALITY: Role.MUNICIPAL_ARCHITECT,
    Organisation.Kind.KOMBIT: Role.KOMBIT_OPERATOR,
}


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="memberships",
        verbose_name=_("user"),
    )
    organisation = models.ForeignKey(
        Organisation,
        on_delete=models.CASCADE,
        related_name="memberships",
        verbose_name=_("organisation"),
    )
    created = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        ordering = ["organisation__name", "user__username"]
        constraints = [
            models.UniqueConstraint(
                name="one_membership_per_organisation", fields=["user", "organisation"]
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} – {self.organisation} ({self.role.label})"

    @property
    def role(self) -> Role:
        return ROLE_OF_KIND[self.organisation.kind]
