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
    # Set by the organisation's administrators: every member confirms each login with a code
    # (members who sign in through the organisation's identity provider are not asked).
    requires_two_factor = models.BooleanField(_("two-step login required"), default=False)
    # Single sign-on: a member whose assertion carries this value in its roles attribute is made
    # an administrator of the organisation; any other member of the CVR number a member.
    sso_administrator_role = models.CharField(
        _("administrator role from the identity provider"),
        max_length=200,
        blank=True,
        validators=[single_line],
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
    # An organisation administrator invites colleagues and runs the organisation's members.
    is_administrator = models.BooleanField(_("organisation administrator"), default=False)

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


class Invitation(models.Model):
    """An administrator's invitation of a colleague by e-mail: a link valid once, for a while.

    Only the SHA-256 of the link's token is kept, so the table alone opens no account.
    """

    organisation = models.ForeignKey(
        Organisation,
        on_delete=models.CASCADE,
        related_name="invitations",
        verbose_name=_("organisation"),
    )
    email = models.EmailField(_("e-mail address"))
    is_administrator = models.BooleanField(_("organisation administrator"), default=False)
    token_sha256 = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("invited by"),
    )
    created_at = models.DateTimeField(_("invited at"), auto_now_add=True)
    expires_at = models.DateTimeField(_("valid until"))
    accepted_at = models.DateTimeField(_("accepted at"), null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("accepted by"),
    )
    cancelled_at = models.DateTimeField(_("withdrawn at"), null=True, blank=True)

    class Meta:
        verbose_name = _("invitation")
        verbose_name_plural = _("invitations")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.email} → {self.organisation}"
