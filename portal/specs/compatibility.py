"""The numbering rules of specification versions, and what a minor version may change.

Versions go up, never back, and none is made twice. A minor version (same major, higher minor)
is always backward compatible: a file that was valid under the version before it is valid under
it too. So no field may be removed, change type or become required, and no new field may be
required. A new major version may change anything.
"""

from collections.abc import Iterable, Mapping

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from portal.specs.diff import (
    compare_fields,
    compare_structure,
    display_value,
    field_specs,
    structure_of,
)
from portal.specs.models import DataSpecification, SpecificationVersion

# Structured fields a minor version must keep: a reader of the earlier version relies on them.
BINDING_STRUCTURE = ("format", "encoding", "delimiter")


def check_minor_compatible(
    previous: SpecificationVersion, fields: Iterable, *, structure: Mapping | None = None
) -> list[str]:
    """What would make `fields` (and `structure`, if given) break files made for `previous`."""
    fields = field_specs(fields)
    previous_fields = field_specs(previous.fields.all())
    diff = compare_fields(previous_fields, fields)
    problems = [
        _("The field %(name)s is removed.") % {"name": field.name} for _pos, field in diff.removed
    ]
    for change in diff.changed:
        if change.type_changed:
            problems.append(
                _("The field %(name)s changes type from %(old)s to %(new)s.")
                % {"name": change.name, "old": change.old.type_label, "new": change.new.type_label}
            )
        if change.new.required and not change.old.required:
            problems.append(_("The field %(name)s becomes required.") % {"name": change.name})
    problems.extend(
        _("The new field %(name)s is required; a field added in a minor version must be optional.")
        % {"name": field.name}
        for _pos, field in diff.added
        if field.required
    )
    new_format = previous.format
    if structure is not None:
        new_format = structure.get("format", previous.format)
        binding = {name: structure[name] for name in BINDING_STRUCTURE if name in structure}
        problems.extend(
            _("The %(what)s changes from %(old)s to %(new)s.")
            % {
                "what": change.label,
                "old": display_value(change.name, change.old),
                "new": display_value(change.name, change.new),
            }
            for change in compare_structure(structure_of(previous), binding)
            if change.name in binding
        )
    if (
        new_format in SpecificationVersion.POSITIONAL_FORMATS
        and previous.format in SpecificationVersion.POSITIONAL_FORMATS
    ):
        names = [f.name for f in fields]
        kept = [f.name for f in previous_fields if f.name in names]
        if names[: len(kept)] != kept:
            problems.append(
                _(
                    "In a %(format)s file fields are found by their position: the fields of "
                    "%(version)s must keep their order, and new fields must come after them."
                )
                % {
                    "format": display_value("format", new_format),
                    "version": previous.label,
                }
            )
    return problems


def validate_new_version(
    specification: DataSpecification | None,
    major: int,
    minor: int,
    fields: Iterable,
    *,
    structure: Mapping | None = None,
) -> SpecificationVersion | None:
    """Refuse a version number or content the rules do not allow; return the version before.

    `specification` is None for an integration that has no specification yet.
    """
    if major < 0 or minor < 0 or (major, minor) == (0, 0):
        raise ValidationError(
            _("A version is major.minor, at least 0.1, for example 1.0."), code="number"
        )
    latest = specification.latest_version() if specification is not None else None
    if latest is None:
        return None
    label = f"{major}.{minor}"
    if specification.versions.filter(major=major, minor=minor).exists():
        raise ValidationError(
            _("Version %(version)s already exists.") % {"version": label}, code="duplicate"
        )
    if (major, minor) < latest.number:
        raise ValidationError(
            _(
                "Version %(version)s is lower than the latest version, %(latest)s. "
                "Versions only go up."
            )
            % {"version": label, "latest": latest.label},
            code="lower",
        )
    if major == latest.major:
        problems = check_minor_compatible(latest, fields, structure=structure)
        if problems:
            advice = _(
                "Minor version %(version)s must be backward compatible with %(latest)s. "
                "Make these changes in a new major version, %(major)s.0, or undo them."
            ) % {"version": label, "latest": latest.label, "major": major + 1}
            raise ValidationError([*problems, advice], code="incompatible")
    return latest
