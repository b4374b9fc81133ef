from django import forms
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from gdpr import workflow
from gdpr.infref import validate_infref_name
from gdpr.models import ANSWER_FIELDS, GdprDeclaration, InfRef
from portal.accounts.models import Organisation
from portal.itsystems.models import ItSystem


class InfRefRequestForm(forms.Form):
    it_system = forms.ModelChoiceField(
        queryset=ItSystem.objects.none(),
        label=_("Sending IT system"),
        help_text=_("The IT system that will deliver the data files."),
    )
    description = forms.CharField(
        label=_("What the data are"),
        help_text=_("Describe the data and the receiving IT systems, so KOMBIT knows the request."),
        widget=forms.Textarea(attrs={"rows": 5}),
        max_length=4000,
    )

    def __init__(self, *args, it_systems, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["it_system"].queryset = it_systems


class AssignInfRefForm(forms.Form):
    name = forms.CharField(
        label=_("InfRef"),
        max_length=64,
        validators=[validate_infref_name],
        help_text=_("The portal proposes the next free number; change it if KOMBIT uses another."),
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if InfRef.objects.filter(name=name).exists():
            raise forms.ValidationError(_("%(name)s is already assigned."), params={"name": name})
        return name


class ScrollingCheckboxes(forms.CheckboxSelectMultiple):
    """Checkboxes in a scrolling box, for long lists such as the 98 municipalities."""

    template_name = "widgets/scrolling_checkboxes.html"


class DeclarationForm(forms.ModelForm):
    """Drafts may be saved with gaps; `submit` then asks for every answer (see workflow)."""

    # Every answer is needed at submission, so no field is marked optional.
    hide_optional = True

    legal_basis_art6 = forms.MultipleChoiceField(
        label=_("Legal basis, art. 6"),
        choices=GdprDeclaration.ART6_BASES,
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )
    legal_basis_art9 = forms.MultipleChoiceField(
        label=_("Legal basis, art. 9"),
        choices=GdprDeclaration.ART9_BASES,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=_("Only when special categories of personal data are included."),
    )

    class Meta:
        model = GdprDeclaration
        fields = ["controllers", "receiving_it_systems", *ANSWER_FIELDS]
        text_area = forms.Textarea(attrs={"rows": 4})
        widgets = {
            "controllers": ScrollingCheckboxes,
            "receiving_it_systems": forms.CheckboxSelectMultiple,
            "purpose": text_area,
            "data_subject_categories": text_area,
            "personal_data_categories": text_area,
            "special_categories_detail": text_area,
            "criminal_offence_detail": text_area,
            "legal_basis_detail": text_area,
            "retention": text_area,
            "deletion": text_area,
            "security_measures": text_area,
            "dpa_signed_on": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "signed_on": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        }

    # Sections of the form page, in the order a data-protection officer reads them.
    SECTIONS = [
        (_("Parties and IT systems"), ["controllers", "receiving_it_systems"]),
        (
            _("The data"),
            [
                "purpose",
                "data_subject_categories",
                "personal_data_categories",
                "includes_cpr",
                "includes_special_categories",
                "special_categories_detail",
                "includes_criminal_offence_data",
                "criminal_offence_detail",
            ],
        ),
        (_("Legal basis"), ["legal_basis_art6", "legal_basis_art9", "legal_basis_detail"]),
        (
            _("Agreement and data specification"),
            ["dpa_title", "dpa_signed_on", "data_specification_version"],
        ),
        (
            _("Handling of the data"),
            ["retention", "deletion", "security_measures", "transfer_frequency", "transfer_volume"],
        ),
        (_("Contact person"), ["contact_name", "contact_email", "contact_phone"]),
        (_("Signature"), ["signatory_name", "signatory_title", "signed_on"]),
    ]

    data_specification_version = forms.ChoiceField(
        label=GdprDeclaration._meta.get_field("data_specification_version").verbose_name,
        required=False,
        help_text=_("The version of the data specification the declaration covers."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._offer_specification_versions()
        self.fields["controllers"].queryset = Organisation.objects.filter(
            kind=Organisation.Kind.MUNICIPALITY
        ).order_by("name")
        # Receivers belong to other vendors too; naming them is part of declaring the flow.
        self.fields["receiving_it_systems"].queryset = ItSystem.objects.filter(
            is_receiver=True
        ).select_related("vendor")
        self.fields["receiving_it_systems"].label_from_instance = lambda system: (
            f"{system.name} ({system.vendor.name})"
        )

    def sections(self):
        return [(title, [self[name] for name in names]) for title, names in self.SECTIONS]

    def _offer_specification_versions(self) -> None:
        """The versions the InfRef's integrations have, newest first: a declaration names one
        that exists. A stored label no longer among them stays a choice, so an old draft
        shows what it said until the vendor chooses again (submitting refuses it)."""
        field = self.fields["data_specification_version"]
        infref = self.instance.infref if self.instance.infref_id else None
        versions = workflow.specification_versions(infref)
        stored = self.instance.data_specification_version
        labels = [*versions, *([stored] if stored and stored not in versions else [])]
        field.choices = [("", "---------"), *((label, label) for label in labels)]
        if not versions:
            field.help_text = self._no_version_yet(infref)

    @staticmethod
    def _no_version_yet(infref: InfRef | None) -> str:
        from portal.onboarding.models import Integration  # onboarding imports gdpr

        integrations = Integration.objects.filter(infref=infref) if infref else []
        if not integrations:
            return _(
                "Save the data specification's first version before submitting. No integration "
                "is linked to this InfRef yet: link it on the integration's page first."
            )
        links = format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            (
                (reverse("specs:specification", args=[integration.pk]), integration.name)
                for integration in integrations
            ),
        )
        return format_html(
            "{} {}",
            _("Save the data specification's first version before submitting:"),
            links,
        )
