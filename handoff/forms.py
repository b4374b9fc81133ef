from django import forms
from django.utils.translation import gettext_lazy as _

from handoff import folders
from handoff.models import DeliveryFolder, WatchedFolder
from portal.core.text import single_line


class TokenForm(forms.Form):
    name = forms.CharField(
        label=_("Name"),
        max_length=100,
        help_text=_("What uses the token, e.g. the nightly export."),
        validators=[single_line],
    )
    valid_days = forms.TypedChoiceField(
        label=_("Valid for"),
        coerce=int,
        initial=90,
        choices=[
            (30, _("30 days")),
            (90, _("90 days")),
            (180, _("180 days")),
            (365, _("One year")),
        ],
    )


class _FolderForm(forms.ModelForm):
    """The folder is typed as a path inside the organisation's own folder, which it names."""

    def __init__(self, *args, organisation, **kwargs):
        super().__init__(*args, **kwargs)
        self.own = folders.organisation_folder(organisation)
        field = self.fields["path"]
        field.help_text = _(
            "A folder inside %(folder)s/, your organisation's folder in the portal's hand-off "
            "root, e.g. aarhus-out."
        ) % {"folder": self.own}
        if self.instance.path.startswith(self.own + "/"):
            self.initial["path"] = self.instance.path.removeprefix(self.own + "/")

    def clean_path(self) -> str:
        path = self.cleaned_data["path"].strip().strip("/")
        # Typed with the organisation's folder in front, as the page shows the saved ones.
        return f"{self.own}/{path.removeprefix(self.own + '/')}"


class WatchedFolderForm(_FolderForm):
    class Meta:
        model = WatchedFolder
        fields = ["route", "path", "settle_seconds", "name_pattern", "enabled"]

    def __init__(self, *args, routes, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["route"].queryset = routes
        if self.instance.pk:
            self.fields["route"].disabled = True


class DeliveryFolderForm(_FolderForm):
    class Meta:
        model = DeliveryFolder
        fields = ["path", "enabled"]
