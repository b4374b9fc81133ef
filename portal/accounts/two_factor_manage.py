"""A person's own two-step login: set it up, make new backup codes, or take it off."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from portal.accounts import backup_codes
from portal.accounts.two_factor import (
    CHOSEN_OR_REQUIRED,
    forget_devices,
    has_confirmed_device,
    required_by_organisation,
    requires_two_factor,
    show_backup_codes,
)
from portal.audit.log import record
from portal.audit.models import AuditEvent
from portal.sso import signed_in_by_sso


def status(request: HttpRequest) -> dict:
    """What the overview and the page show of the user's two-step login."""
    user = request.user
    return {
        "two_factor_on": has_confirmed_device(user),
        "two_factor_required": requires_two_factor(user) or required_by_organisation(user),
        "backup_codes_left": backup_codes.remaining(user),
        "signed_in_by_sso": signed_in_by_sso(request),
    }


@login_required
@never_cache
def manage(request: HttpRequest) -> HttpResponse:
    return render(request, "registration/two_factor_manage.html", status(request))


@login_required
@require_POST
@never_cache
def new_backup_codes(request: HttpRequest) -> HttpResponse:
    # Only from a login confirmed with a code: else a stolen password would make fresh codes.
    if not (has_confirmed_device(request.user) and request.user.is_verified()):
        messages.error(request, _("Set up two-step login first."))
        return redirect("two_factor_manage")
    return show_backup_codes(request, backup_codes.make(request.user), reverse("two_factor_manage"))


@login_required
@require_POST
def remove(request: HttpRequest) -> HttpResponse:
    user = request.user
    if requires_two_factor(user) or required_by_organisation(user):
        messages.error(request, _("Your role or your organisation requires two-step login."))
    elif has_confirmed_device(user) and user.is_verified():
        forget_devices(user)
        request.session[CHOSEN_OR_REQUIRED] = False
        organisations = [membership.organisation for membership in user.memberships.all()]
        record(user, AuditEvent.Action.TWO_FACTOR_REMOVED, user, concerns=organisations)
        messages.success(request, _("Two-step login is off. Your password alone opens the portal."))
    return redirect("two_factor_manage")
