"""The page an invitation's link opens: see the organisation, then join it.

Open to anyone holding the link, logged in or not. An unknown token and an expired link show
the same page, so trying tokens tells nothing; a used or withdrawn link says so.
"""

from django.contrib import messages
from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from portal.accounts import invitations
from portal.accounts.forms import AccountForm
from portal.accounts.invitations import Account, State
from portal.accounts.models import Invitation

# The page holds the link's token: no browser or proxy keeps it. No other site is told it
# either: the portal's Referrer-Policy is same-origin (and "no-referrer" here would make the
# browser send "Origin: null" with the form, which the CSRF check rightly refuses).
_STATUS = {State.EXPIRED: 404, State.ACCEPTED: 410, State.WITHDRAWN: 410}
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def _private(response: HttpResponse) -> HttpResponse:
    add_never_cache_headers(response)
    response["Cache-Control"] += ", no-store"
    return response


def _not_open(request: HttpRequest, invitation: Invitation | None) -> HttpResponse:
    state = invitations.state_of(invitation)
    accepted_by_them = request.user.is_authenticated and (
        invitation is not None and invitation.accepted_by_id == request.user.pk
    )
    if state == State.ACCEPTED and accepted_by_them:
        # The form sent twice, or the link opened again by whoever accepted it: it is done.
        return redirect("dashboard")
    if state not in _STATUS:  # open after all: only a claim at the last instant gets here
        state = State.EXPIRED
    if state == State.EXPIRED:
        invitation = None  # an expired link names nothing: it reads as an unknown one
    return _private(
        render(
            request,
            "invitations/closed.html",
            {"state": state, "invitation": invitation},
            status=_STATUS[state],
        )
    )


def _welcome(request: HttpRequest, invitation: Invitation) -> HttpResponse:
    messages.success(
        request,
        _("Welcome. You are now a member of %(organisation)s.")
        % {"organisation": invitation.organisation.name},
    )
    return redirect("dashboard")


@sensitive_post_parameters("password1", "password2")
@sensitive_variables("token")
def accept(request: HttpRequest, token: str) -> HttpResponse:
    invitation = invitations.find(token)
    if invitations.state_of(invitation) != State.OPEN:
        return _not_open(request, invitation)

    account = invitations.account_for(invitation, request.user)
    form = None
    if account.kind in (Account.NEW, Account.REOPEN):
        username = account.user.get_username() if account.user else invitation.email
        initial = (
            {"first_name": account.user.first_name, "last_name": account.user.last_name}
            if account.user
            else {}
        )
        form = AccountForm(
            request.POST or None, username=username, email=invitation.email, initial=initial
        )

    if request.method == "POST":
        try:
            user = _accepted(request, invitation, account, form)
        except invitations.NotOpen:
            # Taken meanwhile: by this same form sent twice, or by someone else.
            invitation.refresh_from_db()
            return _not_open(request, invitation)
        except invitations.Refused as refusal:
            messages.error(request, str(refusal))
            return redirect(request.path)
        if user is not None:
            return _welcome(request, invitation)

    return _private(
        render(
            request,
            "invitations/accept.html",
            {
                "invitation": invitation,
                "account": account,
                "form": form,
                "login_url": f"{reverse('login')}?{urlencode({'next': request.path})}",
            },
        )
    )


def _accepted(request: HttpRequest, invitation: Invitation, account: Account, form):
    """The user now in the organisation; None if the form must be shown again."""
    if account.kind == Account.ACCEPT:
        if invitations.accept_existing(invitation, request.user) is None:
            messages.info(
                request,
                _("You were already a member of %(organisation)s.")
                % {"organisation": invitation.organisation.name},
            )
        return request.user
    if account.kind not in (Account.NEW, Account.REOPEN) or not form.is_valid():
        return None
    details = {
        "first_name": form.cleaned_data["first_name"],
        "last_name": form.cleaned_data["last_name"],
        "password": form.cleaned_data["password1"],
    }
    if account.kind == Account.NEW:
        user = invitations.accept_new(invitation, **details)
    else:
        user = invitations.accept_reopening(invitation, account.user, **details)
    login(request, user, backend=MODEL_BACKEND)
    return user
