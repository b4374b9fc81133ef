"""The data specification of an integration: versioned major.minor, with fields and documents.

The sending and receiving vendors agree on it with the municipalities. A minor version is always
backward compatible with the one before it (see `compatibility`); a version, once created, is a
record: only documents may be added to it later.
"""

import uuid
from pathlib import PurePath

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils.translation import gettext_lazy as _

from portal.core.text import single_line
from portal.onboarding.models import Integration

User = settings.AUTH_USER_MODEL


class DataSpecification(models.Model):
    """The one data specification of an integration; its content lives in its versions."""

    integration = models.OneToOneField(
        Integration,
        on_delete=models.CASCADE,
        related_name="data_specification",
        verbose_name=_("integration"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("data specification")
        verbose_name_plural = _("data specifications")
        ordering = ["integration__name"]

    def __str__(self) -> str:
        return str(self.integration)

    def latest_version(self) -> "SpecificationVersion | None":
        return self.versions.first()


class SpecificationVersion(models.Model):
    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        JSON = "json", "JSON"
        XML = "xml", "XML"
        FIXED_WIDTH = "fixed_width", _("Fixed width")
        OTHER = "other", _("Other")

    class Encoding(models.TextChoices):
        UTF_8 = "utf-8", "UTF-8"
        ISO_8859_1 = "iso-8859-1", "ISO-8859-1"
        WINDOWS_1252 = "windows-1252", "Windows-1252"

    class Delimiter(models.TextChoices):
        SEMICOLON = ";", _("Semicolon (;)")
        COMMA = ",", _("Comma (,)")
        TAB = "\t", _("Tab")
        PIPE = "|", _("Vertical bar (|)")

    # Formats whose readers find a field by its place in the record, not by its name.
    POSITIONAL_FORMATS = (Format.CSV, Format.FIXED_WIDTH)

    specification = models.ForeignKey(
        DataSpecification,
        on_delete=models.CASCADE,
        related_name="versions",
        verbose_name=_("data specification"),
    )
    major = models.PositiveIntegerField(_("major version"))
    minor = models.PositiveIntegerField(_("minor version"))
    format = models.CharField(_("file format"), max_length=16, choices=Format.choices)
    encoding = models.CharField(
        _("character encoding"), max_length=16, choices=Encoding.choices, default=Encoding.UTF_8
    )
    delimiter = models.CharField(
        _("delimiter"),
        max_length=1,
        choices=Delimiter.choices,
        blank=True,
        help_text=_("For CSV files only."),
    )
    frequency = models.CharField(
        _("delivery frequency"),
        max_length=200,
        validators=[single_line],
        help_text=_("When files are delivered, for example “daily at 02:00” or “on change”."),
    )
    notes = models.TextField(_("notes"), blank=True)
    publish_to_catalogue = models.BooleanField(
        _("publish on digitaliseringskataloget.dk"),
        default=False,
        help_text=_("Mark the version for publication on digitaliseringskataloget.dk."),
    )
    created_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", verbose_name=_("created by")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("specification version")
        verbose_name_plural = _("specification versions")
        ordering = ["specification", "-major", "-minor"]
        constraints = [
            models.UniqueConstraint(
                name="specification_version_once", fields=["specification", "major", "minor"]
            ),
            models.CheckConstraint(
                name="specification_version_above_zero",
                condition=models.Q(major__gt=0) | models.Q(minor__gt=0),
                violation_error_message=_("A version is at least 0.1."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.specification} {self.label}"

    def clean(self) -> None:
        # The delimiter belongs to CSV; left over from a format chosen before, it is dropped.
        if self.format != self.Format.CSV:
            self.delimiter = ""
        elif not self.delimiter:
            raise ValidationError({"delimiter": _("A CSV file needs a delimiter.")})

    @property
    def label(self) -> str:
        return f"{self.major}.{self.minor}"

    @property
    def number(self) -> tuple[int, int]:
        return (self.major, self.minor)

    @property
    def integration(self) -> Integration:
        return self.specification.integration


class SpecificationField(models.Model):
    """One field of the records a version describes, in its place."""

    class Type(models.TextChoices):
        STRING = "string", _("Text")
        INTEGER = "integer", _("Integer")
        DECIMAL = "decimal", _("Decimal number")
        DATE = "date", _("Date")
        DATETIME = "datetime", _("Date and time")
        BOOLEAN = "boolean", _("Yes/no")
        CPR = "cpr", _("CPR number")
        OTHER = "other", _("Other")

    version = models.ForeignKey(
        SpecificationVersion,
        on_delete=models.CASCADE,
        related_name="fields",
        verbose_name=_("specification version"),
    )
    position = models.PositiveIntegerField(_("position"))
    name = models.CharField(_("name"), max_length=100, validators=[single_line])
    type = models.CharField(_("type"), max_length=16, choices=Type.choices)
    required = models.BooleanField(_("required"), default=False)
    description = models.TextField(_("description"), blank=True)

    class Meta:
        verbose_name = _("field")
        verbose_name_plural = _("fields")
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(
                name="specification_field_name_once", fields=["version", "name"]
            ),
            models.UniqueConstraint(
                name="specification_field_position_once", fields=["version", "position"]
            ),
        ]

    def __str__(self) -> str:
        return self.name


def document_path(document: "SpecificationDocument", filename: str) -> str:
    """A random name on disk: the name the user gave is kept in `original_name` only."""
    return f"specifications/{uuid.uuid4().hex}{PurePath(filename).suffix.lower()}"


class SpecificationDocument(models.Model):
    """A document describing a version, accepted only after its content was checked."""

    class Kind(models.TextChoices):
        PDF = "pdf", "PDF"
        DOCX = "docx", _("Word document")
        XLSX = "xlsx", _("Excel workbook")
        CSV = "csv", "CSV"
        XSD = "xsd", _("XML Schema (XSD)")
        JSON_SCHEMA = "json_schema", "JSON Schema"
        MARKDOWN = "markdown", "Markdown"

    version = models.ForeignKey(
        SpecificationVersion,
        on_delete=models.CASCADE,
        related_name="documents",
        verbose_name=_("specification version"),
    )
    file = models.FileField(_("file"), upload_to=document_path, max_length=255)
    original_name = models.CharField(_("file name"), max_length=255)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    size = models.PositiveBigIntegerField(_("size in bytes"))
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    uploaded_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", verbose_name=_("uploaded by")
    )
    uploaded_at = models.DateTimeField(_("uploaded at"), auto_now_add=True)

    class Meta:
        verbose_name = _("specification document")
        verbose_name_plural = _("specification documents")
        ordering = ["version", "original_name", "pk"]

    def __str__(self) -> str:
        return self.original_name


@receiver(post_delete, sender=SpecificationDocument, dispatch_uid="specs-delete-document-file")
def _delete_file(sender, instance: SpecificationDocument, **kwargs) -> None:
    """The file goes with its record, once the deletion is committed."""
    if instance.file:
        storage, name = instance.file.storage, instance.file.name
        transaction.on_commit(lambda: storage.delete(name))
