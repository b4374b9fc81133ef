from django import forms
from django.utils.translation import gettext_lazy as _

from gdpr.models import InfRef
from portal.accounts.models import Organisation
from portal.core.text import single_line
from portal.itsystems.models import ItSystem
from portal.onboarding.models import Integration
from transfers import endpoints, send_once
from transfers.models import Route, SftpAccount, default_endpoint


class AccountForm(forms.ModelForm):
    class Meta:
        model = SftpAccount
        fields = ["it_system", "environment", "username", "host", "port"]
        help_texts = {"host": _("Leave empty for the environment's own host.")}

    def __init__(self, *args, it_systems, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["it_system"].queryset = it_systems
        self.fields["host"].required = False
        self.fields["port"].required = False

    def clean(self):
        cleaned = super().clean()
        environment = cleaned.get("environment")
        chosen_by = "host"
        if environment and not cleaned.get("host"):
            cleaned["host"], cleaned["port"] = default_endpoint(environment)
            self.instance.host, self.instance.port = cleaned["host"], cleaned["port"]
            chosen_by = "environment"
        self._check_endpoint(cleaned, chosen_by)
        return cleaned

    def _check_endpoint(self, cleaned: dict, field: str) -> None:
        """The refusal the workers would meet, told now at the field that chose the endpoint."""
        host = cleaned.get("host")
        if not host or "port" in self.errors:
            return
        port = cleaned.get("port")
        if port is None:
            port = self.instance.port  # the model's default, which a port left out keeps
        if not endpoints.is_allowed(host, port):
            self.add_error(field, endpoints.refusal_message(host, port))


class GenerateKeyForm(forms.Form):
    kind = forms.ChoiceField(
        label=_("Key type"), choices=SftpAccount.KeyKind.choices, initial="rsa"
    )


class ImportKeyForm(forms.Form):
    key_file = forms.FileField(label=_("Private key file"))
    passphrase = forms.CharField(
        label=_("Passphrase"), required=False, widget=forms.PasswordInput(render_value=False)
    )

    MAX_KEY_BYTES = 16 * 1024

    def clean_key_file(self):
        upload = self.cleaned_data["key_file"]
        if upload.size > self.MAX_KEY_BYTES:
            raise forms.ValidationError(_("A private key file is a few kilobytes, not more."))
        return upload


class RouteForm(forms.ModelForm):
    class Meta:
        model = Route
        fields = [
            "environment",
            "integration",
            "infref",
            "sender",
            "receiver",
            "municipality",
            "expected_frequency",
            "expected_by",
            "contacts",
        ]
        widgets = {
            "expected_by": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "contacts": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args, vendors, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sender"].queryset = ItSystem.objects.filter(vendor__in=vendors, is_sender=True)
        self.fields["receiver"].queryset = ItSystem.objects.filter(is_receiver=True)
        self.fields["infref"].queryset = InfRef.objects.filter(it_system__vendor__in=vendors)
        self.fields["integration"].queryset = Integration.objects.filter(sender__vendor__in=vendors)
        self.fields["municipality"].queryset = Organisation.objects.filter(
            kind=Organisation.Kind.MUNICIPALITY
        ).order_by("name")

    def clean(self):
        cleaned = super().clean()
        integration = cleaned.get("integration")
        if integration:
            for field in ("infref", "sender", "receiver"):
                if cleaned.get(field) and getattr(integration, f"{field}_id") != cleaned[field].pk:
                    self.add_error(field, _("It does not match the integration."))
            municipality = cleaned.get("municipality")
            if municipality and not integration.municipalities.filter(pk=municipality.pk).exists():
                self.add_error(
                    "municipality", _("The municipality is not part of the integration.")
                )
        return cleaned


class SendForm(forms.Form):
    route = forms.ModelChoiceField(Route.objects.none(), label=_("Route"))
    data_file = forms.FileField(label=_("Data file"))
    # Made when the form is shown: the same form posted twice queues one file (send_once).
    form_token = forms.CharField(required=False, widget=forms.HiddenInput, validators=[single_line])

    def __init__(self, *args, routes, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["route"].queryset = routes.filter(state=Route.State.ESTABLISHED)
        # The key this post queues under. A form shown again after an error carries the same
        # key on, as a token of this user's even if the one posted was not.
        self.send_key = send_once.key_of(user, self.data.get("form_token", ""))
        token = send_once.token_for(user, self.send_key)
        if self.is_bound:
            self.data = self.data.copy()
            self.data["form_token"] = token
        else:
            self.initial["form_token"] = token
