from django import forms
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat
from django.utils.functional import lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from portal.core.text import single_line
from portal.specs.diff import STRUCTURE_FIELDS, FieldSpec, structure_of
from portal.specs.documents import MAX_DOCUMENT_BYTES, accepted_extensions, inspect_document
from portal.specs.models import SpecificationField, SpecificationVersion

MAX_DOCUMENTS_PER_UPLOAD = 10
MAX_FIELDS = 500


class MultipleFileInput(forms.FileInput):
    allow_multiple_selected = True


def _documents_help_text() -> str:
    return _(
        "PDF, Word (.docx), Excel (.xlsx), CSV, XSD, JSON Schema (.json) or Markdown (.md), at "
        "most %(limit)s each. Each file is checked by its content."
    ) % {"limit": filesizeformat(MAX_DOCUMENT_BYTES)}


class DocumentsField(forms.FileField):
    """Any number of files, each checked by its content; cleans to (upload, inspection) pairs."""

    widget = MultipleFileInput

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("label", gettext_lazy("Documents"))
        kwargs.setdefault("help_text", lazy(_documents_help_text, str)())
        super().__init__(**kwargs)
        self.widget.attrs["accept"] = ",".join(accepted_extensions())

    def clean(self, data, initial=None):
        uploads = data if isinstance(data, list | tuple) else [data] if data else []
        if self.required and not uploads:
            raise ValidationError(self.error_messages["required"], code="required")
        if len(uploads) > MAX_DOCUMENTS_PER_UPLOAD:
            raise ValidationError(
                _("Upload at most %(count)s files at a time.")
                % {"count": MAX_DOCUMENTS_PER_UPLOAD},
                code="too_many",
            )
        cleaned, errors = [], []
        for upload in uploads:
            upload = super().clean(upload, initial)
            try:
                cleaned.append((upload, inspect_document(upload)))
            except ValidationError as error:
                errors.extend(f"{upload.name}: {message}" for message in error.messages)
        if errors:
            raise ValidationError(errors)
        return cleaned


class VersionForm(forms.ModelForm):
    documents = DocumentsField()

    class Meta:
        model = SpecificationVersion
        fields = [
            "major",
            "minor",
            "format",
            "encoding",
            "delimiter",
            "frequency",
            "notes",
            "publish_to_catalogue",
        ]
        widgets = {"notes": forms.Textarea(attrs={"rows": 4})}

    def __init__(self, *args, previous: SpecificationVersion | None = None, **kwargs):
        if previous is not None:
            kwargs.setdefault(
                "initial",
                {**structure_of(previous), "major": previous.major, "minor": previous.minor + 1},
            )
        else:
            kwargs.setdefault("initial", {"major": 1, "minor": 0})
        super().__init__(*args, **kwargs)
        for name in ("major", "minor"):
            self.fields[name].widget.attrs.update({"min": 0, "class": "input-width-xs"})

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("format") != SpecificationVersion.Format.CSV:
            cleaned["delimiter"] = ""
        return cleaned

    @property
    def structure(self) -> dict:
        return {name: self.cleaned_data[name] for name in STRUCTURE_FIELDS}


class FieldForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=100, validators=[single_line])
    type = forms.ChoiceField(label=gettext_lazy("Type"), choices=SpecificationField.Type.choices)
    required = forms.BooleanField(label=gettext_lazy("Required"), required=False)
    description = forms.CharField(
        label=gettext_lazy("Description"), required=False, validators=[single_line]
    )

    def has_changed(self) -> bool:
        # A browser always posts the type select's first choice: a row with nothing else filled
        # in is an empty row, skipped as the page says, not a field without a name.
        return any(name != "type" for name in self.changed_data)


class BaseFieldFormSet(forms.BaseFormSet):
    def add_fields(self, form, index):
        super().add_fields(form, index)
        form.fields["ORDER"].label = gettext_lazy("Position")
        form.fields["ORDER"].widget.attrs.update({"min": 1, "class": "input-width-xs"})
        form.order_fields(["ORDER", "name", "type", "required", "description", "DELETE"])
        # The rows sit in a table whose column headings name the fields; screen readers are told
        # each input's name too.
        for field in form.fields.values():
            field.widget.attrs["aria-label"] = field.label

    def clean(self):
        super().clean()
        # Without its management form (a crafted POST) the rows cannot be read, and Django has
        # already said so; ordered_forms would raise.
        if any(self.errors) or not self.management_form.is_valid():
            return
        seen = set()
        for form in self.ordered_forms:
            name = form.cleaned_data["name"]
            if name in seen:
                raise ValidationError(
                    _("The field %(name)s is listed twice.") % {"name": name}, code="duplicate"
                )
            seen.add(name)
        if not seen:
            raise ValidationError(_("A specification has at least one field."), code="empty")

    def field_specs(self) -> list[FieldSpec]:
        """The fields in the order given, without those marked for deletion or left empty."""
        return [
            FieldSpec(
                name=form.cleaned_data["name"],
                type=form.cleaned_data["type"],
                required=form.cleaned_data["required"],
                description=form.cleaned_data["description"],
            )
            for form in self.ordered_forms
        ]


FieldFormSet = forms.formset_factory(
    FieldForm,
    formset=BaseFieldFormSet,
    extra=3,
    can_order=True,
    can_delete=True,
    max_num=MAX_FIELDS,
    validate_max=True,
    absolute_max=MAX_FIELDS,
)


def field_formset(data=None, *, previous: SpecificationVersion | None = None) -> BaseFieldFormSet:
    """The field rows, prefilled from the previous version when first shown.

    Bound, the rows are what was posted and nothing else: compared with a prefill, an unchanged
    extra row would count as empty and its field would be lost.
    """
    if data is not None or previous is None:
        return FieldFormSet(data, prefix="fields")
    initial = [
        {
            "name": field.name,
            "type": field.type,
            "required": field.required,
            "description": field.description,
            "ORDER": position,
        }
        for position, field in enumerate(previous.fields.all(), 1)
    ]
    return FieldFormSet(initial=initial, prefix="fields")


class DocumentUploadForm(forms.Form):
    documents = DocumentsField(required=True)


class DiffForm(forms.Form):
    """Two versions of one specification, by id, as ?from=…&to=…"""

    def __init__(self, *args, versions, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["from"] = forms.ModelChoiceField(
            queryset=versions, label=gettext_lazy("From version"), empty_label=None
        )
        self.fields["to"] = forms.ModelChoiceField(
            queryset=versions, label=gettext_lazy("To version"), empty_label=None
        )
        for field in self.fields.values():
            field.label_from_instance = lambda version: version.label
