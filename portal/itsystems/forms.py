from django import forms
from django.utils.translation import gettext_lazy as _

from portal.itsystems.models import ItSystem


class ItSystemForm(forms.ModelForm):
    class Meta:
        model = ItSystem
        fields = ["name", "uuid", "vendor", "is_sender", "is_receiver"]
        help_texts = {
            "is_sender": _("Delivers data files (FagsystemdefineredeDataAflever)."),
            "is_receiver": _("Fetches data files (FagsystemdefineredeDataHent)."),
        }

    def __init__(self, *args, vendors, **kwargs):
        super().__init__(*args, **kwargs)
        # Only vendors the user acts for may own what they register.
        self.fields["vendor"].queryset = vendors
        if vendors.count() == 1 and not self.instance.pk:
            self.fields["vendor"].initial = vendors.first()

    def clean(self):
        cleaned = super().clean()
        if not (cleaned.get("is_sender") or cleaned.get("is_receiver")):
            self.add_error("is_sender", _("An IT system is a sender, a receiver or both."))
        return cleaned
