from django import forms
from django.utils.translation import gettext_lazy as _

from gdpr.forms import ScrollingCheckboxes
from gdpr.models import InfRef
from portal.accounts.models import Organisation
from portal.core.text import single_line
from portal.itsystems.models import ItSystem
from portal.onboarding.models import (
    Integration,
    IntegrationTest,
    OnboardingTask,
    ProcessingAgreement,
)
from portal.specs.documents import inspect_document

_DATE = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class IntegrationForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200, validators=[single_line])
    sender = forms.ModelChoiceField(ItSystem.objects.none(), label=_("Sending IT system"))
    receiver = forms.ModelChoiceField(
        ItSystem.objects.filter(is_receiver=True).select_related("vendor"),
        label=_("Receiving IT system"),
    )
    infref = forms.ModelChoiceField(
        InfRef.objects.none(),
        label=_("InfRef"),
        required=False,
        help_text=_("Leave empty until KOMBIT has assigned the InfRef."),
    )
    municipalities = forms.ModelMultipleChoiceField(
        Organisation.objects.filter(kind=Organisation.Kind.MUNICIPALITY).order_by("name"),
        label=_("Municipalities"),
        widget=ScrollingCheckboxes,
    )
    legal_basis = forms.CharField(
        label=_("Legal basis"),
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text=_("What the data flow rests on in law (seed, chapter 6)."),
    )
    legal_basis_reviewed_on = forms.DateField(
        label=_("Legal basis last reviewed"), required=False, widget=_DATE
    )

    def __init__(self, *args, vendors, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sender"].queryset = ItSystem.objects.filter(vendor__in=vendors, is_sender=True)
        self.fields["infref"].queryset = InfRef.objects.filter(it_system__vendor__in=vendors)
        self.fields["infref"].widget.attrs["class"] = "input-width-l"  # names are long
        self.fields["receiver"].label_from_instance = lambda s: f"{s.name} ({s.vendor.name})"

    def clean(self):
        cleaned = super().clean()
        infref, sender = cleaned.get("infref"), cleaned.get("sender")
        if infref and sender and infref.it_system_id != sender.pk:
            self.add_error("infref", _("The InfRef belongs to another IT system."))
        return cleaned


class IntegrationEditForm(forms.ModelForm):
    """What the sending vendor may change once the integration exists. The sending and
    receiving IT systems stay: another pair is another integration."""

    class Meta:
        model = Integration
        fields = ["name", "infref", "legal_basis", "legal_basis_reviewed_on"]
        labels = {
            "name": _("Name"),
            "infref": _("InfRef"),
            "legal_basis": _("Legal basis"),
            "legal_basis_reviewed_on": _("Legal basis last reviewed"),
        }
        help_texts = {
            "infref": _(
                "The InfRef KOMBIT assigned to the sending IT system. Leave it empty until "
                "KOMBIT has assigned it, then link it here."
            ),
        }
        widgets = {
            "legal_basis": forms.Textarea(attrs={"rows": 3}),
            "legal_basis_reviewed_on": _DATE,
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Only the sending IT system's own InfRefs: an InfRef names the system that sends.
        self.fields["infref"].queryset = InfRef.objects.filter(
            it_system_id=self.instance.sender_id
        ).order_by("name")
        self.fields["infref"].widget.attrs["class"] = "input-width-l"  # names are long


class TaskForm(forms.ModelForm):
    """A task's state, due date and comment. The state is left out for whoever may only
    comment, and for the tasks that follow their records (20, 30, 40)."""

    class Meta:
        model = OnboardingTask
        fields = ["state", "due_date", "comment"]
        widgets = {"due_date": _DATE, "comment": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, may_set_state: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if not may_set_state:
            del self.fields["state"]


class AddMunicipalityForm(forms.Form):
    municipality = forms.ModelChoiceField(
        Organisation.objects.filter(kind=Organisation.Kind.MUNICIPALITY).order_by("name"),
        label=_("Municipality"),
    )


class ProcessingAgreementForm(forms.ModelForm):
    class Meta:
        model = ProcessingAgreement
        fields = ["title", "parties", "signed_on", "document"]
        widgets = {"signed_on": _DATE, "parties": ScrollingCheckboxes}
        help_texts = {"document": _("The signed agreement as PDF or Word (.docx).")}

    def clean_document(self):
        upload = self.cleaned_data.get("document")
        if not upload or not hasattr(upload, "content_type"):
            return upload  # unchanged, or cleared
        inspection = inspect_document(upload)
        if inspection.kind not in ("pdf", "docx"):
            raise forms.ValidationError(_("The agreement must be a PDF or Word document."))
        self.instance.document_sha256 = inspection.sha256
        return upload

    def __init__(self, *args, integration, **kwargs):
        super().__init__(*args, **kwargs)
        # The parties are the vendors and municipalities of this integration.
        self.fields["parties"].queryset = (
            Organisation.objects.filter(
                pk__in=[integration.sender.vendor_id, integration.receiver.vendor_id]
            )
            | integration.municipalities.all()
        )
        if self.instance.pk is None:
            # An agreement is between the municipality and the vendor processing its data.
            self.fields["parties"].initial = [
                integration.sender.vendor_id,
                *integration.municipalities.values_list("pk", flat=True),
            ]


class IntegrationTestForm(forms.ModelForm):
    """The test record the sending vendor and the municipalities keep together. Accepting the
    result is each party's own yes (a Consent), not a field here."""

    class Meta:
        model = IntegrationTest
        fields = ["scope", "test_data", "result", "notes"]
        widgets = {
            "scope": forms.Textarea(attrs={"rows": 3}),
            "test_data": forms.Textarea(attrs={"rows": 3}),
            "notes": forms.Textarea(attrs={"rows": 3}),
        }
