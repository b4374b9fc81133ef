from collections.abc import Mapping

from django import forms
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from gdpr.models import InfRef
from portal.accounts.models import Organisation
from portal.core.text import single_line
from portal.itsystems.models import ItSystem
from portal.onboarding.models import Integration
from transfers import endpoints, send_once
from transfers.listing import route_label
from transfers.models import Environment, Route, SftpAccount, default_endpoint


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
    # Taken from the integration when one is chosen and these are left empty.
    FROM_INTEGRATION = ("infref", "sender", "receiver")

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
        labels = {"infref": _("InfRef")}
        widgets = {
            "expected_by": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "contacts": forms.Textarea(attrs={"rows": 3}),
            "infref": forms.Select(attrs={"class": "input-width-l"}),  # the names are long
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
        for name in self.FROM_INTEGRATION:
            self.fields[name].required = False
            self.fields[name].help_text = _("Left empty, it is taken from the integration.")

    @classmethod
    def initial_from(cls, params: Mapping[str, str], vendors: QuerySet) -> dict:
        """What the links to the form say: `integration`, `municipality` and `environment`
        pre-fill the form; anything the user may not order a route for is left out."""
        initial = {}
        integration = _one(
            Integration.objects.filter(sender__vendor__in=vendors), params.get("integration")
        )
        if integration is not None:
            initial["integration"] = integration.pk
            initial.update(
                {
                    name: getattr(integration, f"{name}_id")
                    for name in cls.FROM_INTEGRATION
                    if getattr(integration, f"{name}_id")
                }
            )
            # Task 70 is the production route; the external-test one is asked for by name.
            initial["environment"] = Environment.PRODUCTION
        municipality = _one(
            Organisation.objects.filter(kind=Organisation.Kind.MUNICIPALITY),
            params.get("municipality"),
        )
        if municipality is not None:
            initial["municipality"] = municipality.pk
        if params.get("environment") in Environment.values:
            initial["environment"] = params["environment"]
        return initial

    def clean(self):
        cleaned = super().clean()
        integration = cleaned.get("integration")
        for field in self.FROM_INTEGRATION:
            if field in self.errors:
                continue  # a value that was no choice is reported as such
            if integration is None:
                if not cleaned.get(field):
                    self.add_error(field, self.fields[field].error_messages["required"])
            elif not cleaned.get(field):
                cleaned[field] = getattr(integration, field)
                if cleaned[field] is None:
                    self.add_error(
                        field,
                        _(
                            "The integration has no InfRef yet: link it to the InfRef KOMBIT "
                            "assigned, then order the route."
                        ),
                    )
            elif getattr(integration, f"{field}_id") != cleaned[field].pk:
                self.add_error(field, _("It does not match the integration."))
        if integration:
            municipality = cleaned.get("municipality")
            if municipality and not integration.municipalities.filter(pk=municipality.pk).exists():
                self.add_error(
                    "municipality", _("The municipality is not part of the integration.")
                )
        return cleaned


def _one(rows: QuerySet, pk: str | None):
    """The row with primary key `pk` among `rows`, or None for a missing or malformed key."""
    try:
        return rows.filter(pk=int(pk)).first() if pk else None
    except (TypeError, ValueError, OverflowError):
        return None


class SendForm(forms.Form):
    route = forms.ModelChoiceField(Route.objects.none(), label=_("Route"))
    data_file = forms.FileField(label=_("Data file"))
    # Made when the form is shown: the same form posted twice queues one file (send_once).
    form_token = forms.CharField(required=False, widget=forms.HiddenInput, validators=[single_line])

    def __init__(self, *args, routes, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["route"].queryset = routes.filter(state=Route.State.ESTABLISHED)
        # With its environment: a test route and a production route are otherwise alike.
        self.fields["route"].label_from_instance = route_label
        self.fields["route"].widget.attrs["class"] = "input-width-xl"
        # The key this post queues under. A form shown again after an error carries the same
        # key on, as a token of this user's even if the one posted was not.
        self.send_key = send_once.key_of(user, self.data.get("form_token", ""))
        token = send_once.token_for(user, self.send_key)
        if self.is_bound:
            self.data = self.data.copy()
            self.data["form_token"] = token
        else:
            self.initial["form_token"] = token
