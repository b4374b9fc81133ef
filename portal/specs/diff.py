"""What differs between two versions of a data specification: fields and structured fields."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from difflib import SequenceMatcher

from django.utils.translation import gettext as _

from portal.specs.models import SpecificationField, SpecificationVersion

# The structured fields of a version, in the order pages show them.
STRUCTURE_FIELDS = ("format", "encoding", "delimiter", "frequency", "notes", "publish_to_catalogue")


@dataclass(frozen=True)
class FieldSpec:
    """A field as the rules compare it, whether saved or only entered in a form."""

    name: str
    type: str
    required: bool = False
    description: str = ""

    @property
    def type_label(self) -> str:
        return str(dict(SpecificationField.Type.choices).get(self.type, self.type))


def field_specs(items: Iterable) -> list[FieldSpec]:
    """Fields in order, from SpecificationFields, FieldSpecs or mappings (a form's cleaned data)."""
    specs = []
    for item in items:
        if isinstance(item, FieldSpec):
            specs.append(item)
        elif isinstance(item, Mapping):
            specs.append(
                FieldSpec(
                    name=item["name"],
                    type=item["type"],
                    required=bool(item.get("required")),
                    description=item.get("description") or "",
                )
            )
        else:
            specs.append(FieldSpec(item.name, item.type, item.required, item.description))
    return specs


@dataclass(frozen=True)
class FieldChange:
    old: FieldSpec
    new: FieldSpec
    old_position: int
    new_position: int
    moved: bool

    @property
    def name(self) -> str:
        return self.new.name

    @property
    def type_changed(self) -> bool:
        return self.old.type != self.new.type

    @property
    def required_changed(self) -> bool:
        return self.old.required != self.new.required

    @property
    def description_changed(self) -> bool:
        return self.old.description != self.new.description


@dataclass(frozen=True)
class FieldDiff:
    added: list[tuple[int, FieldSpec]]
    removed: list[tuple[int, FieldSpec]]
    changed: list[FieldChange]
    unchanged: list[FieldSpec]

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def compare_fields(old: Iterable, new: Iterable) -> FieldDiff:
    """Fields are matched by name; positions count from 1.

    A field is `moved` when its place among the fields both versions have changed, so that one
    field inserted in the middle does not mark every field after it as moved.
    """
    old_fields, new_fields = field_specs(old), field_specs(new)
    old_by_name = {f.name: (position, f) for position, f in enumerate(old_fields, 1)}
    new_by_name = {f.name: (position, f) for position, f in enumerate(new_fields, 1)}
    common_old = [f.name for f in old_fields if f.name in new_by_name]
    common_new = [f.name for f in new_fields if f.name in old_by_name]
    matcher = SequenceMatcher(a=common_old, b=common_new, autojunk=False)
    in_place = {
        name
        for block in matcher.get_matching_blocks()
        for name in common_old[block.a : block.a + block.size]
    }
    changed, unchanged = [], []
    for name in common_new:
        old_position, old_field = old_by_name[name]
        new_position, new_field = new_by_name[name]
        moved = name not in in_place
        if old_field == new_field and not moved:
            unchanged.append(new_field)
        else:
            changed.append(FieldChange(old_field, new_field, old_position, new_position, moved))
    return FieldDiff(
        added=[new_by_name[f.name] for f in new_fields if f.name not in old_by_name],
        removed=[old_by_name[f.name] for f in old_fields if f.name not in new_by_name],
        changed=changed,
        unchanged=unchanged,
    )


def structure_of(version: SpecificationVersion) -> dict:
    return {name: getattr(version, name) for name in STRUCTURE_FIELDS}


@dataclass(frozen=True)
class StructureChange:
    name: str
    old: object
    new: object

    @property
    def label(self) -> str:
        return str(SpecificationVersion._meta.get_field(self.name).verbose_name)

    @property
    def old_display(self) -> str:
        return display_value(self.name, self.old)

    @property
    def new_display(self) -> str:
        return display_value(self.name, self.new)


def display_value(name: str, value) -> str:
    """A structured field's value as a person reads it: choice labels, not codes."""
    field = SpecificationVersion._meta.get_field(name)
    if field.choices:
        return str(dict(field.flatchoices).get(value, value or "–"))
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    return str(value) if value not in (None, "") else "–"


def compare_structure(old: Mapping, new: Mapping) -> list[StructureChange]:
    return [
        StructureChange(name, old.get(name), new.get(name))
        for name in STRUCTURE_FIELDS
        if old.get(name) != new.get(name)
    ]


@dataclass(frozen=True)
class VersionDiff:
    old: SpecificationVersion
    new: SpecificationVersion
    fields: FieldDiff
    structure: list[StructureChange]

    @property
    def is_empty(self) -> bool:
        return self.fields.is_empty and not self.structure


def diff_versions(old: SpecificationVersion, new: SpecificationVersion) -> VersionDiff:
    return VersionDiff(
        old=old,
        new=new,
        fields=compare_fields(old.fields.all(), new.fields.all()),
        structure=compare_structure(structure_of(old), structure_of(new)),
    )
