"""Data specifications as the tests make them: a version saved the way the page saves it, a
version made as a row at a given time, a structure and an XSD document to upload.

A GDPR declaration names a data-specification version that exists (`first_spec_version`).
"""

from django.core.files.uploadedfile import SimpleUploadedFile

from portal.specs.diff import FieldSpec
from portal.specs.models import DataSpecification, SpecificationVersion
from portal.specs.versions import create_version

SPEC_STRUCTURE = {"format": "csv", "encoding": "utf-8", "delimiter": ";", "frequency": "Dagligt"}
SPEC_FIELDS = [FieldSpec("cpr", "cpr", True, "Borgerens CPR-nummer"), FieldSpec("navn", "string")]

# The structure the specification pages are filled in with.
STRUCTURE = {
    "format": "csv",
    "encoding": "utf-8",
    "delimiter": ";",
    "frequency": "Dagligt kl. 02:00",
    "notes": "",
    "publish_to_catalogue": False,
}

XSD = b"""<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="borger"><xs:complexType><xs:sequence>
    <xs:element name="cpr" type="xs:string"/>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>"""


def spec_version(integration, major: int, minor: int, user=None, fields=SPEC_FIELDS):
    """A version of the integration's data specification, saved the way the page saves it."""
    return create_version(
        integration,
        major=major,
        minor=minor,
        structure=SPEC_STRUCTURE,
        fields=fields,
        user=user or integration.created_by,
    )


def first_spec_version(integration) -> None:
    """Version 1.0 of the integration's data specification, unless it has one: a declaration
    names a version that exists."""
    if not SpecificationVersion.objects.filter(specification__integration=integration).exists():
        spec_version(integration, 1, 0)


def make_version(integration, major, minor, created_at, user):
    """A version made as a row, dated `created_at`, with no fields: for the pages that list
    which version ran when."""
    specification, _created = DataSpecification.objects.get_or_create(integration=integration)
    version = SpecificationVersion.objects.create(
        specification=specification,
        major=major,
        minor=minor,
        format="csv",
        delimiter=";",
        frequency="Dagligt",
        created_by=user,
    )
    SpecificationVersion.objects.filter(pk=version.pk).update(created_at=created_at)
    return version


def upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content)
