"""The forms an organisation's administrators and the people they invite fill in."""

from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import AuthenticationForm, SetPasswordMixin
from django.utils.translation import gettext_lazy as _

from portal.core.text import single_line

User = get_user_model()


class InviteForm(forms.Form):
    email = forms.EmailField(
        label=_("Colleague's e-mail address"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
        help_text=_("The invitation is mailed here; its link opens one login, once."),
    )
    is_administrator = forms.BooleanField(
        label=_("Invite as administrator"),
        required=False,
        help_text=_("An administrator invites colleagues and runs the organisation's members."),
    )


class AccountForm(SetPasswordMixin, forms.Form):
    """Name and password for the login an invitation makes (or opens again)."""

    first_name = forms.CharField(
        label=User._meta.get_field("first_name").verbose_name,
        max_length=150,
        validators=[single_line],
        widget=forms.TextInput(attrs={"autocomplete": "given-name"}),
    )
    last_name = forms.CharField(
        label=User._meta.get_field("last_name").verbose_name,
        max_length=150,
        required=False,
        validators=[single_line],
        widget=forms.TextInput(attrs={"autocomplete": "family-name"}),
    )
    password1, password2 = SetPasswordMixin.create_password_fields()

    def __init__(self, *args, username: str, email: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The validators' own words (Django's, in the reader's language), as one plain hint: the
        # hint is a <span>, where Django's default HTML list does not belong.
        self.fields["password1"].help_text = " ".join(
            password_validation.password_validators_help_texts()
        )
        self.username = username
        self.email = email

    def clean(self):
        cleaned = super().clean()
        self.validate_passwords()
        # The validators compare the password with the name and address it would protect.
        candidate = User(
            username=self.username,
            email=self.email,
            first_name=cleaned.get("first_name", ""),
            last_name=cleaned.get("last_name", ""),
        )
        self.validate_password_for_user(candidate)
        return cleaned


class LoginForm(AuthenticationForm):
    """The login form; a user name that is an e-mail address is matched in lower case, as
    invitations make it (people type their address as their mail program shows it). The
    lock-out counts the name as cleaned here, so a change of case is no new name."""

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        return username.lower() if "@" in username else username
