"""Two-step login: a password, then a code from an authenticator app (TOTP) or a backup code.

Required for KOMBIT operators and superusers: they can read every InfRef request and
declaration, or everything at all, so a guessed or phished password alone must not open the
portal. At their first login they set up an app; at every login after it they enter its current
code, before any page. Anyone else may set it up for themselves (then every login of theirs asks
for it), and an organisation's administrators may require it of its members. Whether a login
must be confirmed is decided when the password is accepted (`_decide_at_login`), so a rule that
changes applies from the next login. Who signed in through their organisation's identity
provider is not asked (the identity provider decides how they log in), unless a superuser.

The device's secret is shown once, on the setup page, to the person setting it up; it is never
logged, never shown again (the admin hides it too: OTP_ADMIN_HIDE_SENSITIVE_DATA), and a device
is only ever set up while the user has none confirmed, so a stolen password cannot enrol a new
one.
"""

import base64
import io
from collections.abc import Callable
from urllib.parse import urlencode

import segno
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.signals import user_logged_in
from django.contrib.auth.views import redirect_to_login
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import Resolver404, resolve, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django_htmx.http import HttpResponseClientRedirect
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal.accounts import backup_codes
from portal.accounts.access import scope_of
from portal.accounts.models import Membership
from portal.audit.log import record
from portal.audit.models import AuditEvent
from portal.sso import signed_in_by_sso

SETUP = "two_factor_setup"
VERIFY = "two_factor_verify"
# Pages an unverified operator may still reach: the two steps themselves, logging in as someone
# else or out, the language switch, and the health checks (which load balancers call).
EXEMPT = frozenset({SETUP, VERIFY, "login", "logout", "set_language", "healthz", "livez", "readyz"})
DEVICE_NAME = "Authenticator app"
# Set at login: this login must be confirmed with a code although the role does not demand it.
CHOSEN_OR_REQUIRED = "two_factor_for_this_login"


def requires_two_factor(user) -> bool:
    """Whether `user`'s role demands a code at each login: KOMBIT operators and superusers."""
    if not (user.is_authenticated and user.is_active):
        return False
    return user.is_superuser or scope_of(user).is_kombit


def required_by_organisation(user) -> bool:
    return Membership.objects.filter(user=user, organisation__requires_two_factor=True).exists()


@receiver(user_logged_in)
def _decide_at_login(sender, request, user, **kwargs) -> None:
    """Once per login rather than on every page: the user has set up two-step login, or an
    organisation of theirs requires it."""
    session = getattr(request, "session", None)
    if session is not None:
        session[CHOSEN_OR_REQUIRED] = has_confirmed_device(user) or required_by_organisation(user)


def _needs_code(request: HttpRequest) -> bool:
    user = request.user
    if not (user.is_authenticated and user.is_active) or user.is_verified():
        return False
    if signed_in_by_sso(request) and not user.is_superuser:
        return False  # a superuser's account is the portal's own, whoever vouches for it
    return requires_two_factor(user) or bool(request.session.get(CHOSEN_OR_REQUIRED))


def _exempt(request: HttpRequest) -> bool:
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return False
    return match.url_name in EXEMPT and not match.namespace


def has_confirmed_device(user) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def forget_devices(user) -> int:
    """Delete the user's authenticator apps and backup codes; how many there were."""
    removed, _by_model = TOTPDevice.objects.filter(user=user).delete()
    return removed + StaticDevice.objects.filter(user=user).delete()[0]


class TwoFactorMiddleware:
    """Sends an operator or superuser without a verified code to enter one, or to set one up."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Exempt pages first: the health check must not read the user while the database is down.
        if settings.TWO_FACTOR_REQUIRED and not _exempt(request) and _needs_code(request):
            return self._to_code_page(request)
        return self.get_response(request)

    @staticmethod
    def _to_code_page(request: HttpRequest) -> HttpResponse:
        step = VERIFY if has_confirmed_device(request.user) else SETUP
        htmx = getattr(request, "htmx", None)
        if htmx:
            back = htmx.current_url_abs_path or reverse("dashboard")
            return HttpResponseClientRedirect(_with_next(step, back))
        back = request.get_full_path() if request.method == "GET" else reverse("dashboard")
        return redirect(_with_next(step, back))


def _with_next(name: str, next_url: str) -> str:
    return f"{reverse(name)}?{urlencode({'next': next_url})}"


def _next_url(request: HttpRequest) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return reverse(settings.LOGIN_REDIRECT_URL)


class CodeForm(forms.Form):
    """The app's six digits; at login (`backup_allowed`) a backup code as well."""

    token = forms.CharField(
        label=gettext_lazy("Code from the authenticator app"),
        help_text=gettext_lazy("Six digits; the app shows a new code every 30 seconds."),
        max_length=16,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "class": "input-width-s",
            }
        ),
    )

    def __init__(self, *args, backup_allowed: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.backup_allowed = backup_allowed
        if backup_allowed:
            self.fields["token"].help_text = _(
                "Six digits; the app shows a new code every 30 seconds. Or one of your backup "
                "codes."
            )

    def clean_token(self) -> str:
        token = "".join(self.cleaned_data["token"].split())
        if token.isdigit() and len(token) == 6:
            return token
        if self.backup_allowed and backup_codes.normalised(token):
            return backup_codes.normalised(token)
        if self.backup_allowed:
            raise forms.ValidationError(_("Enter the six digits the app shows, or a backup code."))
        raise forms.ValidationError(_("Enter the six digits the app shows."))

    @property
    def is_backup_code(self) -> bool:
        return not self.cleaned_data["token"].isdigit()


@sensitive_variables("token")
def _check(device, form: CodeForm) -> bool:
    """Whether the code is right, with the error on the form when it is not."""
    # django-otp doubles the wait after each wrong code; a code typed during the wait is not
    # even tried, so guessing a million codes takes far longer than they stay valid.
    allowed, _details = device.verify_is_allowed()
    if not allowed:
        form.add_error(
            "token", _("Too many wrong codes in a row. Wait a little, then enter the code again.")
        )
        return False
    if device.verify_token(form.cleaned_data["token"]):
        return True
    if form.is_backup_code:
        form.add_error("token", _("That backup code is not right, or it has been used."))
    else:
        form.add_error(
            "token",
            _("The code is not right, or it has expired. Enter the code the app shows now."),
        )
    return False


def _verified(request: HttpRequest, device: TOTPDevice) -> HttpResponse:
    otp_login(request, device)
    # A new session key once the login is complete, as Django does after the password.
    request.session.cycle_key()
    return redirect(_next_url(request))


def _page(request: HttpRequest, template: str, context: dict) -> HttpResponse:
    # No menu until the login is complete: every link in it would lead back here.
    return render(request, template, {"menu": None, "next": _next_url(request), **context})


@sensitive_variables("device", "secret", "qr")
def _setup_context(device: TOTPDevice) -> dict:
    secret = base64.b32encode(device.bin_key).decode()
    qr = io.BytesIO()
    # An inline SVG with presentation attributes only: no style for the policy to refuse.
    segno.make(device.config_url, error="m").save(
        qr,
        kind="svg",
        xmldecl=False,
        svgns=True,
        scale=5,
        border=4,
        light="#ffffff",
        svgclass="totp-qr",
        title=_("QR code for the authenticator app"),
    )
    return {
        # Groups of four, as the apps show and ask for it when typed by hand.
        "secret_groups": [secret[i : i + 4] for i in range(0, len(secret), 4)],
        "qr_svg": mark_safe(qr.getvalue().decode()),  # noqa: S308 - segno's own markup, no user input
    }


@never_cache
@sensitive_post_parameters("token")
def setup(request: HttpRequest) -> HttpResponse:
    """Scan the code, then prove it with one code: at the first login of a user who must, or
    when anyone chooses to. Ends on the backup codes, shown once."""
    user = request.user
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if has_confirmed_device(user):
        if user.is_verified():
            return redirect(_next_url(request))
        return redirect(_with_next(VERIFY, _next_url(request)))
    # The same secret across reloads, so a code scanned a moment ago still works.
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid() and _check(device, form):
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        otp_login(request, device)
        request.session.cycle_key()
        request.session[CHOSEN_OR_REQUIRED] = True
        record(user, AuditEvent.Action.TWO_FACTOR_SET_UP, user, concerns=_organisations(user))
        messages.success(request, _("Two-step login is set up. Keep the app on your phone."))
        return show_backup_codes(request, backup_codes.make(user), _next_url(request))
    required = requires_two_factor(user) or required_by_organisation(user)
    return _page(
        request,
        "registration/two_factor_setup.html",
        {"form": form, "required": required, **_setup_context(device)},
    )


def _organisations(user) -> list:
    return [membership.organisation for membership in user.memberships.all()]


def show_backup_codes(request: HttpRequest, codes: list[str], next_url: str) -> HttpResponse:
    """The codes, once: the page is not cached, and they are not shown again."""
    record(
        request.user,
        AuditEvent.Action.BACKUP_CODES_MADE,
        request.user,
        concerns=_organisations(request.user),
    )
    return render(request, "registration/backup_codes.html", {"codes": codes, "next": next_url})


@never_cache
@sensitive_post_parameters("token")
def verify(request: HttpRequest) -> HttpResponse:
    """Every later login that must be confirmed: the app's current code, or a backup code."""
    user = request.user
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not _needs_code(request):
        return redirect(_next_url(request))
    device = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()
    if device is None:
        return redirect(_with_next(SETUP, _next_url(request)))
    form = CodeForm(request.POST or None, backup_allowed=True)
    if request.method == "POST" and form.is_valid():
        if form.is_backup_code:
            device = backup_codes.device_of(user)
        if device is not None and _check(device, form):
            return _verified(request, device)
        if device is None:
            form.add_error("token", _("That backup code is not right, or it has been used."))
    return _page(request, "registration/two_factor_verify.html", {"form": form})
