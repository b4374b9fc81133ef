"""Demo data specifications: every integration with an InfRef has a version, so its declaration
names a real version, and its routes, transfers and the municipal review show the specification
they run under."""

from django.db.models import Exists, OuterRef

from portal.onboarding.models import Integration
from portal.specs.diff import FieldSpec
from portal.specs.models import SpecificationVersion
from portal.specs.versions import create_version

# Version 1.0: what the demo's GDPR declarations say they cover.
STRUCTURE = {
    "format": "csv",
    "encoding": "utf-8",
    "delimiter": ";",
    "frequency": "Dagligt kl. 02:00",
    "notes": "Én fil pr. kommune pr. døgn.",
    "publish_to_catalogue": False,
}
FIELDS = [
    FieldSpec("cpr", "cpr", True, "Borgerens CPR-nummer"),
    FieldSpec("navn", "string", True, "Fulde navn"),
    FieldSpec("forloeb", "string", False, "Aktive forløb, adskilt af komma"),
]


def seed_specifications() -> None:
    """Version 1.0 for each integration with an InfRef and no version yet; a later run adds none."""
    specified = SpecificationVersion.objects.filter(specification__integration=OuterRef("pk"))
    linked = Integration.objects.filter(infref__isnull=False).exclude(Exists(specified))
    for integration in linked.select_related("created_by"):
        create_version(
            integration,
            major=1,
            minor=0,
            structure=STRUCTURE,
            fields=FIELDS,
            user=integration.created_by,
        )
