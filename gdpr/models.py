import contextlib
import hashlib
import json
from datetime import date

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.signals import m2m_changed
from django.dispatch import receiver
from django.utils.translation import gettext_lazy as _

from gdpr.infref import parse_infref, validate_infref_name
from portal.accounts.models import Organisation
from portal.core.text import single_line
from portal.itsystems.models import ItSystem
from portal.outbox.models import OutgoingMail

User = settings.AUTH_USER_MODEL


class InfRef(models.Model):
    """The data-classification element KOMBIT assigns to one vendor IT system's data."""

    name = models.CharField(
        _("InfRef"), max_length=64, unique=True, validators=[validate_infref_name]
    )
    # Parsed from the name on save; unique so no two InfRefs share a number, whatever version.
    number = models.PositiveIntegerField(
        _("number"),
        unique=True,
        editable=False,
        error_messages={"unique": _("This InfRef number is already in use.")},
    )
    version = models.PositiveIntegerField(_("version"), editable=False)
    it_system = models.ForeignKey(
        ItSystem,
        on_delete=models.PROTECT,
        related_name="infrefs",
        verbose_name=_("IT system"),
    )
    assigned_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", verbose_name=_("assigned by")
    )
    assigned_at = models.DateTimeField(_("assigned at"), auto_now_add=True)
    created_on_serviceplatform_by = models.ForeignKey(
        User,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created on Serviceplatformen by"),
    )
    created_on_serviceplatform_at = models.DateTimeField(
        _("created on Serviceplatformen at"), null=True, blank=True
    )

    class Meta:
        verbose_name = _("InfRef")
        verbose_name_plural = _("InfRefs")
        ordering = ["number"]
        constraints = [
            models.CheckConstraint(name="infref_number_positive", condition=models.Q(number__gt=0)),
            models.CheckConstraint(
                name="infref_version_positive", condition=models.Q(version__gt=0)
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        # A malformed name never reaches the database, whichever path it came by.
        self.number, self.version = parse_infref(self.name)
        super().save(*args, **kwargs)

    def clean(self) -> None:
        # Parsed here too, so full_clean's uniqueness check sees the number before save.
        with contextlib.suppress(ValidationError):  # clean_fields reports a malformed name
            self.number, self.version = parse_infref(self.name)
        if self.it_system_id and not self.it_system.is_sender:
            raise ValidationError({"it_system": _("An InfRef is assigned to a sending IT system.")})

    @property
    def vendor(self) -> Organisation:
        return self.it_system.vendor

    def current_declaration(self) -> "GdprDeclaration | None":
        return self.declarations.filter(status=GdprDeclaration.Status.SUBMITTED).first()


# A request holds its IT system from the moment it is made until it is withdrawn; an assigned
# request cannot be withdrawn, so it holds the IT system for good.
HOLDS_IT_SYSTEM = models.Q(withdrawn_at__isnull=True)


class InfRefRequest(models.Model):
    """A vendor's request for an InfRef, through KOMBIT's four steps (seed, chapter 2)."""

    class Step(models.IntegerChoices):
        REQUESTED = 1, _("Requested from KOMBIT")
        ASSIGNED = 2, _("InfRef assigned")
        DECLARED = 3, _("GDPR declaration submitted")
        CREATED = 4, _("Created on Serviceplatformen")

    it_system = models.ForeignKey(
        ItSystem,
        on_delete=models.PROTECT,
        related_name="infref_requests",
        verbose_name=_("sending IT system"),
    )
    description = models.TextField(
        _("what the data are"),
        help_text=_("The data the IT system will deliver, and to which receiving IT systems."),
    )
    requested_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", verbose_name=_("requested by")
    )
    requested_at = models.DateTimeField(_("requested at"), auto_now_add=True)
    request_mail = models.ForeignKey(
        OutgoingMail,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("request mail"),
    )
    infref = models.OneToOneField(
        InfRef,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="request",
        verbose_name=_("InfRef"),
    )
    # Set only by workflow.withdraw_request, which also tells KOMBIT and the audit log.
    withdrawn_by = models.ForeignKey(
        User,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
        verbose_name=_("withdrawn by"),
    )
    withdrawn_at = models.DateTimeField(_("withdrawn at"), null=True, blank=True, editable=False)
    withdrawal_mail = models.ForeignKey(
        OutgoingMail,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
        verbose_name=_("withdrawal mail"),
    )

    class Meta:
        verbose_name = _("InfRef request")
        verbose_name_plural = _("InfRef requests")
        ordering = ["-requested_at"]
        constraints = [
            # KOMBIT is asked once per IT system: a second request waits for the first to go.
            models.UniqueConstraint(
                name="one_open_or_assigned_request_per_it_system",
                fields=["it_system"],
                condition=HOLDS_IT_SYSTEM,
            ),
            models.CheckConstraint(
                name="withdrawal_names_who_and_when",
                condition=models.Q(withdrawn_by__isnull=True, withdrawn_at__isnull=True)
                | models.Q(withdrawn_by__isnull=False, withdrawn_at__isnull=False),
            ),
            models.CheckConstraint(
                name="withdrawn_request_has_no_infref",
                condition=models.Q(withdrawn_at__isnull=True) | models.Q(infref__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return (
            self.infref.name if self.infref else f"{self.it_system} ({self.requested_at:%Y-%m-%d})"
        )

    @property
    def vendor(self) -> Organisation:
        return self.it_system.vendor

    @property
    def step(self) -> "InfRefRequest.Step":
        if self.infref is None:
            return self.Step.REQUESTED
        if self.infref.created_on_serviceplatform_at:
            return self.Step.CREATED
        # A list reads it for all its rows in its own query (with_declared); else one query.
        declared = getattr(self, "declared", None)
        if declared is None:
            declared = self.infref.current_declaration() is not None
        if declared:
            return self.Step.DECLARED
        return self.Step.ASSIGNED

    @staticmethod
    def with_declared(requests: models.QuerySet) -> models.QuerySet:
        """The requests, each knowing whether its InfRef has a submitted declaration."""
        submitted = GdprDeclaration.objects.filter(
            infref=models.OuterRef("infref"), status=GdprDeclaration.Status.SUBMITTED
        )
        return requests.annotate(declared=models.Exists(submitted))

    def get_step_label(self) -> str:
        """The step as a list names it; a withdrawn request stopped for good at step 1."""
        if self.is_withdrawn:
            return str(_("Withdrawn"))
        return str(self.step.label)

    @property
    def is_withdrawn(self) -> bool:
        return self.withdrawn_at is not None


_VERSION = RegexValidator(
    r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$",
    _("A data-specification version is major.minor, for example 1.0 or 2.3."),
)


class GdprDeclaration(models.Model):
    """One version of the GDPR declaration behind an InfRef; submitted versions never change."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SUBMITTED = "submitted", _("Submitted")
        SUPERSEDED = "superseded", _("Superseded")

    class Frequency(models.TextChoices):
        ONCE = "once", _("Once")
        DAILY = "daily", _("Daily")
        WEEKLY = "weekly", _("Weekly")
        MONTHLY = "monthly", _("Monthly")
        ON_DEMAND = "on_demand", _("When needed")

    ART6_BASES = [
        ("a", _("Art. 6(1)(a): consent")),
        ("b", _("Art. 6(1)(b): contract")),
        ("c", _("Art. 6(1)(c): legal obligation")),
        ("d", _("Art. 6(1)(d): vital interests")),
        ("e", _("Art. 6(1)(e): public task or official authority")),
        ("f", _("Art. 6(1)(f): legitimate interests")),
    ]
    ART9_BASES = [
        ("a", _("Art. 9(2)(a): explicit consent")),
        ("b", _("Art. 9(2)(b): employment and social security law")),
        ("c", _("Art. 9(2)(c): vital interests")),
        ("f", _("Art. 9(2)(f): legal claims")),
        ("g", _("Art. 9(2)(g): substantial public interest")),
        ("h", _("Art. 9(2)(h): health or social care")),
        ("j", _("Art. 9(2)(j): archiving, research or statistics")),
    ]

    infref = models.ForeignKey(
        InfRef, on_delete=models.PROTECT, related_name="declarations", verbose_name=_("InfRef")
    )
    version = models.PositiveIntegerField(_("version"))
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.DRAFT
    )
    outdated_reason = models.TextField(_("why a new declaration is required"), blank=True)
    outdated_at = models.DateTimeField(_("outdated at"), null=True, blank=True)
    # A backward-compatible change of the data asks for a new declaration by this day; sends
    # go on until then (gdpr.workflow.ask_for_renewal).
    renew_by = models.DateField(_("to be renewed by"), null=True, blank=True)
    renew_reason = models.TextField(_("why it is to be renewed"), blank=True)
    # When the vendor was last reminded of renew_by (gdpr.reminders): a week before it, and
    # once it has passed; each at most once.
    renewal_reminded_at = models.DateTimeField(
        _("reminded of the renewal at"), null=True, blank=True, editable=False
    )

    # Parties and systems
    controllers = models.ManyToManyField(
        Organisation,
        related_name="gdpr_declarations",
        limit_choices_to={"kind": Organisation.Kind.MUNICIPALITY},
        verbose_name=_("data controllers (municipalities)"),
        blank=True,
    )
    receiving_it_systems = models.ManyToManyField(
        ItSystem,
        related_name="received_under_declarations",
        limit_choices_to={"is_receiver": True},
        verbose_name=_("receiving IT systems"),
        blank=True,
    )
    # The data
    purpose = models.TextField(_("purpose of the transfer"), blank=True)
    data_subject_categories = models.TextField(_("categories of data subjects"), blank=True)
    personal_data_categories = models.TextField(_("categories of personal data"), blank=True)
    includes_cpr = models.BooleanField(_("CPR numbers are included"), default=False)
    includes_special_categories = models.BooleanField(
        _("special categories of personal data are included (art. 9)"), default=False
    )
    special_categories_detail = models.TextField(_("which special categories"), blank=True)
    includes_criminal_offence_data = models.BooleanField(
        _("data on criminal convictions and offences are included (art. 10)"), default=False
    )
    criminal_offence_detail = models.TextField(_("which criminal-offence data"), blank=True)
    # Legal basis
    legal_basis_art6 = models.JSONField(_("legal basis, art. 6"), default=list, blank=True)
    legal_basis_art9 = models.JSONField(_("legal basis, art. 9"), default=list, blank=True)
    legal_basis_detail = models.TextField(
        _("legal basis in national law"),
        blank=True,
        help_text=_("The acts and sections the processing rests on."),
    )
    # Agreement and specification
    dpa_title = models.CharField(
        _("data-processing agreement"),
        max_length=255,
        blank=True,
        validators=[single_line],
        help_text=_("The data-processing agreement (databehandleraftale) the transfer rests on."),
    )
    dpa_signed_on = models.DateField(_("agreement signed on"), null=True, blank=True)
    data_specification_version = models.CharField(
        _("data-specification version"), max_length=16, blank=True, validators=[_VERSION]
    )
    # Handling
    retention = models.TextField(_("retention"), blank=True)
    deletion = models.TextField(_("deletion"), blank=True)
    security_measures = models.TextField(_("security measures"), blank=True)
    transfer_frequency = models.CharField(
        _("transfer frequency"), max_length=16, choices=Frequency.choices, blank=True
    )
    transfer_volume = models.CharField(
        _("transfer volume"),
        max_length=255,
        blank=True,
        validators=[single_line],
        help_text=_("For example: about 2,000 records, 5 MB per municipality per day."),
    )
    # People
    contact_name = models.CharField(
        _("contact person"), max_length=200, blank=True, validators=[single_line]
    )
    contact_email = models.EmailField(_("contact e-mail"), blank=True)
    contact_phone = models.CharField(
        _("contact phone"), max_length=40, blank=True, validators=[single_line]
    )
    signatory_name = models.CharField(
        _("signatory"), max_length=200, blank=True, validators=[single_line]
    )
    signatory_title = models.CharField(
        _("signatory's title"), max_length=200, blank=True, validators=[single_line]
    )
    signed_on = models.DateField(_("signed on"), null=True, blank=True)

    created_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", verbose_name=_("created by")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    submitted_by = models.ForeignKey(
        User,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("submitted by"),
    )
    submitted_at = models.DateTimeField(_("submitted at"), null=True, blank=True)
    content_sha256 = models.CharField(_("SHA-256 of the content"), max_length=64, blank=True)
    # What was declared, names of parties and systems included, frozen at submission: renaming
    # a vendor or a municipality later must not change what a submitted declaration says.
    submitted_content = models.JSONField(
        _("content as submitted"), null=True, blank=True, editable=False
    )
    submission_mail = models.ForeignKey(
        OutgoingMail,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("mail to KOMBIT"),
    )

    class Meta:
        verbose_name = _("GDPR declaration")
        verbose_name_plural = _("GDPR declarations")
        ordering = ["infref", "-version"]
        constraints = [
            models.UniqueConstraint(
                name="one_version_number_per_infref", fields=["infref", "version"]
            ),
            # At most one current and one draft per InfRef: the line of versions stays linear.
            models.UniqueConstraint(
                name="one_submitted_per_infref",
                fields=["infref"],
                condition=models.Q(status="submitted"),
            ),
            models.UniqueConstraint(
                name="one_draft_per_infref", fields=["infref"], condition=models.Q(status="draft")
            ),
            models.CheckConstraint(
                name="declaration_version_positive", condition=models.Q(version__gt=0)
            ),
            # A version that left draft is a record: who, when, what and its hash, always.
            models.CheckConstraint(
                name="submitted_declaration_is_complete",
                condition=models.Q(status="draft")
                | (
                    models.Q(
                        submitted_by__isnull=False,
                        submitted_at__isnull=False,
                        submitted_content__isnull=False,
                    )
                    & ~models.Q(content_sha256="")
                ),
            ),
        ]

    # Fields a submitted declaration may still change: its place in the line, and the flags
    # that the data specification moved on (outdated at once, or to be renewed by a day).
    MUTABLE_AFTER_SUBMISSION = frozenset(
        {
            "status",
            "outdated_reason",
            "outdated_at",
            "renew_by",
            "renew_reason",
            "renewal_reminded_at",
            "updated_at",
        }
    )

    def __str__(self) -> str:
        return f"{self.infref.name} v{self.version}"

    def save(self, *args, **kwargs) -> None:
        update_fields = kwargs.get("update_fields")
        if self.pk and (
            update_fields is None or set(update_fields) - self.MUTABLE_AFTER_SUBMISSION
        ):
            self.refuse_if_locked()
        super().save(*args, **kwargs)

    def refuse_if_locked(self) -> None:
        """Checked against the stored row, so an object loaded as a draft cannot slip through."""
        stored = type(self).objects.filter(pk=self.pk).values_list("status", flat=True).first()
        if stored in (self.Status.SUBMITTED, self.Status.SUPERSEDED):
            raise DeclarationLocked(self)

    @property
    def is_editable(self) -> bool:
        return self.status == self.Status.DRAFT

    @property
    def is_outdated(self) -> bool:
        return self.status == self.Status.SUBMITTED and self.outdated_at is not None

    @property
    def is_due_for_renewal(self) -> bool:
        return self.status == self.Status.SUBMITTED and self.renew_by is not None

    def renewal_overdue(self, today: date) -> bool:
        return self.is_due_for_renewal and self.renew_by < today

    def content(self) -> dict:
        """Every answer, in a stable form: what the PDF shows and the SHA-256 covers."""
        if self.submitted_content is not None:
            return self.submitted_content
        return self.live_content()

    def live_content(self) -> dict:
        """The content as the draft and the records it names stand now."""
        vendor = self.infref.vendor
        return {
            "infref": self.infref.name,
            "version": self.version,
            "processor": {"name": vendor.name, "cvr": vendor.cvr},
            "controllers": [
                {"name": o.name, "cvr": o.cvr, "municipality_code": o.municipality_code}
                for o in self.controllers.order_by("municipality_code")
            ],
            "sending_it_system": {
                "name": self.infref.it_system.name,
                "uuid": str(self.infref.it_system.uuid),
            },
            "receiving_it_systems": [
                {"name": s.name, "uuid": str(s.uuid), "vendor": s.vendor.name}
                for s in self.receiving_it_systems.select_related("vendor").order_by("name")
            ],
            **{name: _plain(getattr(self, name)) for name in ANSWER_FIELDS},
        }

    def compute_sha256(self) -> str:
        canonical = json.dumps(self.content(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


ANSWER_FIELDS = (
    "purpose",
    "data_subject_categories",
    "personal_data_categories",
    "includes_cpr",
    "includes_special_categories",
    "special_categories_detail",
    "includes_criminal_offence_data",
    "criminal_offence_detail",
    "legal_basis_art6",
    "legal_basis_art9",
    "legal_basis_detail",
    "dpa_title",
    "dpa_signed_on",
    "data_specification_version",
    "retention",
    "deletion",
    "security_measures",
    "transfer_frequency",
    "transfer_volume",
    "contact_name",
    "contact_email",
    "contact_phone",
    "signatory_name",
    "signatory_title",
    "signed_on",
)


@receiver(m2m_changed, sender=GdprDeclaration.controllers.through)
@receiver(m2m_changed, sender=GdprDeclaration.receiving_it_systems.through)
def _lock_submitted_parties(sender, instance, action, reverse, **kwargs) -> None:
    if action.startswith("pre_") and not reverse and isinstance(instance, GdprDeclaration):
        instance.refuse_if_locked()


def _plain(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


class DeclarationLocked(ValidationError):
    def __init__(self, declaration: GdprDeclaration):
        super().__init__(
            _("Version %(version)s is submitted and cannot be changed; start a new version."),
            code="declaration_locked",
            params={"version": declaration.version},
        )


class DeclarationDownload(models.Model):
    """Who downloaded which declaration PDF, and when."""

    declaration = models.ForeignKey(
        GdprDeclaration,
        on_delete=models.PROTECT,
        related_name="downloads",
        verbose_name=_("GDPR declaration"),
    )
    user = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", verbose_name=_("user")
    )
    at = models.DateTimeField(_("at"), auto_now_add=True)
    sha256 = models.CharField(_("SHA-256 of the PDF"), max_length=64)

    class Meta:
        verbose_name = _("declaration download")
        verbose_name_plural = _("declaration downloads")
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.declaration} – {self.user} – {self.at:%Y-%m-%d %H:%M}"
