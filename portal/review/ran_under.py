"""What a file ran under: the data-specification version and the GDPR declaration in force
when it flowed.

"Ran under" is derived from the time a transfer was queued (a file from outside the portal:
received): the latest version of the integration's data specification created before it, and
the declaration of the route's InfRef submitted most recently before it (a superseded one
counts: it was in force then). The versions and declarations of the integrations and InfRefs of
a page's files are read once and matched in Python, so a page costs the same number of queries
however many files it shows.
"""

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Generic, TypeVar

from django.db.models import Exists, F, OuterRef

from gdpr.models import GdprDeclaration
from portal.accounts.access import visible
from portal.accounts.models import Organisation
from portal.specs.models import SpecificationVersion

if TYPE_CHECKING:
    from portal.review.passages import FilePassage

SENT = (GdprDeclaration.Status.SUBMITTED, GdprDeclaration.Status.SUPERSEDED)
Item = TypeVar("Item")


@dataclass(frozen=True)
class RanUnder:
    """What a file that flowed at `moment` ran under: a specification version and a GDPR
    declaration, or none. Both are read with `is_visible` (may the user open it), and the
    declaration with `names_municipality` (as data controller)."""

    moment: datetime
    version: SpecificationVersion | None = None
    declaration: GdprDeclaration | None = None

    @property
    def version_visible(self) -> bool:
        return self.version is not None and self.version.is_visible

    @property
    def declaration_visible(self) -> bool:
        return self.declaration is not None and self.declaration.is_visible

    @property
    def names_municipality(self) -> bool:
        return self.declaration is not None and self.declaration.names_municipality

    @property
    def declaration_outdated(self) -> bool:
        """The declaration had been marked outdated (the specification moved on) before."""
        outdated_at = self.declaration.outdated_at if self.declaration else None
        return outdated_at is not None and outdated_at < self.moment

    @property
    def declared_version_differs(self) -> bool:
        declared = self.declaration.data_specification_version if self.declaration else ""
        return bool(self.version and declared and declared != self.version.label)


@dataclass
class _Timeline(Generic[Item]):
    """Items in the order they came into force, each with the moment it did."""

    items: list[Item] = field(default_factory=list)
    moments: list[datetime] = field(default_factory=list)

    def add(self, item: Item, moment: datetime) -> None:
        self.items.append(item)
        self.moments.append(moment)

    def at(self, moment: datetime) -> Item | None:
        """The last item in force strictly before `moment`."""
        index = bisect_left(self.moments, moment)
        return self.items[index - 1] if index else None


def _visible_to(user, model) -> Exists:
    """Whether `user` may see the row, as a column of the query that reads it."""
    return Exists(visible(user, model.objects.filter(pk=OuterRef("pk"))))


def attach_ran_under(user, municipality: Organisation, passages: Iterable["FilePassage"]) -> None:
    """Set `ran_under` on each passage, for `user` reviewing `municipality`: two queries,
    however many passages.

    The versions and declarations are chosen among all of them, not only those `user` may open:
    which one was in force is a fact about a file the user sees. Only the link to a record
    follows `visible`, asked of each row in the same query.
    """
    passages = list(passages)
    integration_ids = {p.route.integration_id for p in passages if p.route.integration_id}
    infref_ids = {p.route.infref_id for p in passages}

    versions: dict[int, _Timeline[SpecificationVersion]] = defaultdict(_Timeline)
    if integration_ids:
        rows = (
            SpecificationVersion.objects.filter(specification__integration_id__in=integration_ids)
            .annotate(
                integration_pk=F("specification__integration_id"),
                is_visible=_visible_to(user, SpecificationVersion),
            )
            .only("pk", "specification_id", "major", "minor", "created_at")
            .order_by("created_at", "major", "minor", "pk")
        )
        for version in rows:
            versions[version.integration_pk].add(version, version.created_at)

    declarations: dict[int, _Timeline[GdprDeclaration]] = defaultdict(_Timeline)
    if infref_ids:
        naming = GdprDeclaration.controllers.through.objects.filter(
            gdprdeclaration_id=OuterRef("pk"), organisation_id=municipality.pk
        )
        rows = (
            GdprDeclaration.objects.filter(
                infref_id__in=infref_ids, status__in=SENT, submitted_at__isnull=False
            )
            .annotate(
                names_municipality=Exists(naming), is_visible=_visible_to(user, GdprDeclaration)
            )
            .only(
                "pk",
                "infref_id",
                "version",
                "status",
                "submitted_at",
                "outdated_at",
                "data_specification_version",
            )
            .order_by("submitted_at", "version", "pk")
        )
        for declaration in rows:
            declarations[declaration.infref_id].add(declaration, declaration.submitted_at)

    for passage in passages:
        route, moment = passage.route, passage.moment
        passage.ran_under = RanUnder(
            moment=moment,
            version=versions[route.integration_id].at(moment) if route.integration_id else None,
            declaration=declarations[route.infref_id].at(moment),
        )
