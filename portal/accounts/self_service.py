"""Each person's own account: who they are, a new password, and a forgotten one set again.

A forgotten password is set again with a link mailed through the outbox (never by Django's own
send_mail), valid once and for PASSWORD_RESET_TIMEOUT seconds (Django's token: it is spent when
the password changes, and a login spends it too). The page that asks for the address answers
the same whether or not a user has it, and does much the same work either way, so neither the
page nor its timing tells which addresses exist. Inactive users and users without a password in
the portal (single sign-on) get no mail. At most RESET_MAILS_PER_HOUR links are mailed to a
user in an hour, so the form cannot be used to flood someone's mailbox; the audit log counts
them.

The link does not log anyone in: it sets the password, and the person then logs in with it on
the login page, where the lock-out after failed logins and the two-step login apply as always.
"""

import logging
import math
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm, PasswordResetForm, SetPasswordForm
from django.contrib.auth.tokens import default_token_generator
from django.contrib.auth.views import (
    PasswordChangeView,
    PasswordResetConfirmView,
    PasswordResetView,
)
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse, reverse_lazy
from django.utils import formats, timezone, translation
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables

from portal.accounts.access import memberships_of
from portal.audit.log import record
from portal.audit.logins import organisations_of, where_from
from portal.audit.models import AuditEvent
from portal.outbox.mail import queue_mail

log = logging.getLogger(__name__)
Action = AuditEvent.Action

RESET_MAILS_PER_HOUR = 3


# --- My account ---------------------------------------------------------------------------------


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "accounts/account.html",
        {
            "account_memberships": memberships_of(request.user),
            "has_password": request.user.has_usable_password(),
        },
    )


# --- Forms ------------------------------------------------------------------------------------


def _plain_password_help(form) -> None:
    """What the validators ask of a new password, as one sentence each (Django's own help is a
    list in HTML, which the design system's hint does not take)."""
    form.fields["new_password1"].help_text = " ".join(
        password_validation.password_validators_help_texts()
    )


class NewPasswordForm(SetPasswordForm):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _plain_password_help(self)


class ChangePasswordForm(PasswordChangeForm):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _plain_password_help(self)


class ResetRequestForm(PasswordResetForm):
    """The address to mail a link to. `save` queues the mails in the outbox."""

    def save(self, request: HttpRequest, **unused) -> None:
        email = self.cleaned_data["email"]
        users = list(self.get_users(email))
        language = translation.get_language() or settings.LANGUAGE_CODE
        if not users:
            # The same work as for a user, but nothing queued and nothing recorded.
            stand_in = get_user_model()(email=email)
            _too_many_asked(stand_in)
            _reset_mail(stand_in, language)
            return
        for user in users:
            _mail_reset_link(request, user, language)

    def send_mail(self, *args, **kwargs):
        raise NotImplementedError("A reset link is mailed through the outbox: see save().")


def _too_many_asked(user) -> bool:
    since = timezone.now() - timedelta(hours=1)
    asked = AuditEvent.objects.filter(
        action=Action.PASSWORD_RESET_REQUESTED,
        object_type=get_user_model()._meta.label,
        object_id=str(user.pk),
        at__gte=since,
    )
    return asked.count() >= RESET_MAILS_PER_HOUR


@sensitive_variables("token", "link", "body")
def _reset_mail(user, language: str) -> tuple[str, str]:
    """(subject, body) of the mail with a link that sets `user`'s password, in `language`."""
    token = default_token_generator.make_token(user)
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    path = reverse("account:password_reset_confirm", kwargs={"uidb64": uid, "token": token})
    link = settings.PORTAL_BASE_URL.rstrip("/") + path
    valid_until = timezone.now() + timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT)
    with translation.override(language):
        until = formats.date_format(timezone.localtime(valid_until), "SHORT_DATETIME_FORMAT")
        subject = _("FDD portal: set a new password")
        lines = [
            _(
                "Someone, hopefully you, asked to set a new password for your user in the FDD "
                "portal. Your user name is %(username)s."
            )
            % {"username": user.get_username()},
            "",
            _("Set a new password here:"),
            link,
            "",
            _("The link works once, until %(time)s. After that, ask for a new one.")
            % {"time": until},
            "",
            _("If you did not ask for it, you need do nothing: your password stays as it is."),
        ]
    return subject, "\n".join(lines) + "\n"


def _mail_reset_link(request: HttpRequest, user, language: str) -> None:
    if _too_many_asked(user):
        log.info("password reset for user %s not mailed: asked too often this hour", user.pk)
        return
    subject, body = _reset_mail(user, language)
    with transaction.atomic():
        try:
            queue_mail(to=[user.email], subject=subject, body=body)
        except ValidationError:
            log.warning("password reset for user %s not mailed: no valid address", user.pk)
            return
        record(
            None,
            Action.PASSWORD_RESET_REQUESTED,
            user,
            concerns=organisations_of(user),
            **where_from(request),
        )


# --- Views ------------------------------------------------------------------------------------


class PasswordChange(PasswordChangeView):
    form_class = ChangePasswordForm
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("account:overview")

    def dispatch(self, request, *args, **kwargs):
        # Who logs in through an identity provider has no password here to change.
        if request.user.is_authenticated and not request.user.has_usable_password():
            raise Http404
        return super().dispatch(request, *args, **kwargs)

    def form_valid(self, form):
        with transaction.atomic():
            response = super().form_valid(form)  # keeps this session logged in
            user = form.user
            record(
                user,
                Action.PASSWORD_CHANGED,
                user,
                concerns=organisations_of(user),
                **where_from(self.request),
            )
        messages.success(self.request, _("Your password is changed."))
        return response


class PasswordReset(PasswordResetView):
    form_class = ResetRequestForm
    template_name = "accounts/password_reset.html"
    success_url = reverse_lazy("account:password_reset_done")

    def form_valid(self, form):
        form.save(self.request)
        return HttpResponseRedirect(self.get_success_url())


def password_reset_sent(request: HttpRequest) -> HttpResponse:
    """The same answer whether or not a user has the address."""
    minutes = max(1, math.ceil(settings.PASSWORD_RESET_TIMEOUT / 60))
    return render(request, "accounts/password_reset_sent.html", {"reset_minutes": minutes})


class PasswordResetConfirm(PasswordResetConfirmView):
    form_class = NewPasswordForm
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("login")

    def get_user(self, uidb64):
        user = super().get_user(uidb64)
        # A user deactivated since the mail was sent sets nothing.
        return user if user is not None and user.is_active else None

    def form_valid(self, form):
        with transaction.atomic():
            response = super().form_valid(form)
            user = form.user
            record(
                user,
                Action.PASSWORD_RESET,
                user,
                concerns=organisations_of(user),
                **where_from(self.request),
            )
        messages.success(self.request, _("Your new password is set. Log in with it."))
        return response
