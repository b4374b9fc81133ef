from django import forms
from django.utils.translation import gettext_lazy as _

from handoff.models import DeliveryFolder, WatchedFolder


class TokenForm(forms.Form):
    name = forms.CharField(
        label=_("Name"),
        max_length=100,
        help_text=_("What uses the token, e.g. the nightly export."),
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


class WatchedFolderForm(forms.ModelForm):
    class Meta:
        model = WatchedFolder
        fields = ["route", "path", "settle_seconds", "name_pattern", "enabled"]

    def __init__(self, *args, routes, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["route"].queryset = routes
        if self.instance.pk:
            self.fields["route"].disabled = True


class DeliveryFolderForm(forms.ModelForm):
    class Meta:
        model = DeliveryFolder
        fields = ["path", "enabled"]
