"""Organisation pages, and the people an organisation's administrators run from them.

Everyone sees an organisation's public facts; its members see each other; its administrators
(and superusers) change its members, invite colleagues and set its two-step login requirement.
The changes take the access rules' answers: outsiders find nothing to change (404), a member
who is not an administrator may not (403).
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal.accounts import invitations, members
from portal.accounts.access import (
    administers,
    get_administered_or_404,
    get_changeable_or_404,
    get_visible_or_404,
    scope_of,
    visible,
)
from portal.accounts.forms import InviteForm
from portal.accounts.models import Invitation, Membership, Organisation
from portal.core.paging import page_of
from portal.core.templatetags.people import person
from portal.itsystems.models import ItSystem


@login_required
def organisation_list(request: HttpRequest) -> HttpResponse:
    organisations = visible(request.user, Organisation.objects.all())
    kind = request.GET.get("kind", "")
    if kind in Organisation.Kind.values:
        organisations = organisations.filter(kind=kind)
    else:
        kind = ""
    listing = page_of(
        request,
        organisations.order_by("kind", "name", "pk"),
        search=["name"],
        exact=["cvr", "municipality_code"],
    )
    return render(
        request,
        "accounts/organisation_list.html",
        {
            "listing": listing,
            "page": listing.page,
            "kind": kind,
            "kinds": Organisation.Kind.choices,
        },
    )


@login_required
def organisation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    organisation = get_visible_or_404(request.user, Organisation.objects.all(), pk=pk)
    scope = scope_of(request.user)
    members_seen = visible(
        request.user, Membership.objects.filter(organisation=organisation).select_related("user")
    ).order_by("-is_administrator", "user__first_name", "user__last_name", "user__username", "pk")
    listing = page_of(
        request,
        members_seen,
        search=["user__first_name", "user__last_name", "user__username", "user__email"],
    )
    it_systems = visible(request.user, ItSystem.objects.filter(vendor=organisation))
    administrator = administers(request.user, organisation)
    context = {
        "organisation": organisation,
        "listing": listing,
        "members": listing.page.object_list,
        "it_systems": it_systems,
        # Its own people, and superusers, read how the organisation logs in.
        "is_insider": scope.is_superuser or organisation.pk in scope.organisation_ids,
        "administers": administrator,
    }
    if administrator:
        now = timezone.now()
        waiting = invitations.open_invitations(organisation).select_related("invited_by")
        context["invitations"] = [(i, i.expires_at <= now) for i in waiting]
        context["active_administrators"] = members.active_administrators(organisation).count()
        # Whose login has two-step login, for the administrator who resets a lost phone.
        context["two_step"] = set(
            TOTPDevice.objects.filter(
                user__in=[m.user_id for m in listing.page.object_list], confirmed=True
            ).values_list("user_id", flat=True)
        )
    return render(request, "accounts/organisation_detail.html", context)


def _back(organisation: Organisation) -> HttpResponse:
    return redirect("organisations:detail", pk=organisation.pk)


def _membership(request: HttpRequest, pk: int, membership_pk: int) -> Membership:
    return get_changeable_or_404(
        request.user,
        Membership.objects.filter(organisation_id=pk).select_related("user", "organisation"),
        pk=membership_pk,
    )


def _invitation(request: HttpRequest, pk: int, invitation_pk: int) -> Invitation:
    return get_changeable_or_404(
        request.user,
        Invitation.objects.filter(organisation_id=pk).select_related("organisation"),
        pk=invitation_pk,
    )


# Members ----------------------------------------------------------------------------------------


@login_required
@require_POST
def member_role(request: HttpRequest, pk: int, membership_pk: int) -> HttpResponse:
    membership = _membership(request, pk, membership_pk)
    administrator = request.POST.get("administrator") == "true"
    facts = {"person": person(membership.user), "organisation": membership.organisation.name}
    try:
        changed = members.change_role(request.user, membership, administrator=administrator)
    except members.Refused as refusal:
        messages.error(request, str(refusal))
        return _back(membership.organisation)
    if changed and administrator:
        messages.success(
            request, _("%(person)s is now an administrator of %(organisation)s.") % facts
        )
    elif changed:
        messages.success(request, _("%(person)s is now a member of %(organisation)s.") % facts)
    return _back(membership.organisation)


def _confirmed_member_change(request: HttpRequest, pk: int, membership_pk: int, *, action: str):
    membership = _membership(request, pk, membership_pk)
    organisation = membership.organisation
    if request.method != "POST":
        return render(
            request,
            "accounts/member_confirm.html",
            {
                "membership": membership,
                "organisation": organisation,
                "action": action,
                "last_organisation": not Membership.objects.filter(user=membership.user)
                .exclude(pk=membership.pk)
                .exists(),
                "may_deactivate": members.may_deactivate(request.user, membership.user),
            },
        )
    facts = {"person": person(membership.user), "organisation": organisation.name}
    try:
        if action == "remove":
            closed = members.remove(request.user, membership)
            if closed:
                message = _(
                    "%(person)s is removed from %(organisation)s. They belong to no other "
                    "organisation, so their login is closed; their records stay."
                )
            else:
                message = _("%(person)s is removed from %(organisation)s; their records stay.")
            messages.success(request, message % facts)
        elif action == "two_factor_reset":
            if members.reset_two_factor(request.user, membership):
                messages.success(
                    request,
                    _(
                        "The two-step login of %(person)s is reset: their app and backup codes "
                        "no longer work."
                    )
                    % facts,
                )
        elif members.deactivate(request.user, membership):
            messages.success(request, _("%(person)s can no longer log in.") % facts)
    except members.Refused as refusal:
        messages.error(request, str(refusal))
    return _back(organisation)


@login_required
def member_remove(request: HttpRequest, pk: int, membership_pk: int) -> HttpResponse:
    return _confirmed_member_change(request, pk, membership_pk, action="remove")


@login_required
def member_deactivate(request: HttpRequest, pk: int, membership_pk: int) -> HttpResponse:
    return _confirmed_member_change(request, pk, membership_pk, action="deactivate")


@login_required
def member_two_factor_reset(request: HttpRequest, pk: int, membership_pk: int) -> HttpResponse:
    return _confirmed_member_change(request, pk, membership_pk, action="two_factor_reset")


@login_required
@require_POST
def two_factor_requirement(request: HttpRequest, pk: int) -> HttpResponse:
    organisation = get_administered_or_404(request.user, pk)
    required = request.POST.get("required") == "true"
    if members.set_two_factor_requirement(request.user, organisation, required=required):
        if required:
            message = _("Every member of %(organisation)s now confirms each login with a code.")
        else:
            message = _("Members of %(organisation)s are no longer required to use two-step login.")
        messages.success(request, message % {"organisation": organisation.name})
    return _back(organisation)


# Invitations ------------------------------------------------------------------------------------


@login_required
def invite(request: HttpRequest, pk: int) -> HttpResponse:
    organisation = get_administered_or_404(request.user, pk)
    form = InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            invitation = invitations.invite(
                request.user,
                organisation,
                form.cleaned_data["email"],
                administrator=form.cleaned_data["is_administrator"],
            )
        except invitations.Refused as refusal:
            form.add_error("email", str(refusal))
        else:
            messages.success(
                request,
                _("The invitation is on its way to %(email)s.") % {"email": invitation.email},
            )
            return _back(organisation)
    return render(
        request,
        "accounts/invite.html",
        {"organisation": organisation, "form": form, "invitation_days": settings.INVITATION_DAYS},
    )


@login_required
@require_POST
def invitation_resend(request: HttpRequest, pk: int, invitation_pk: int) -> HttpResponse:
    invitation = _invitation(request, pk, invitation_pk)
    try:
        invitation = invitations.resend(request.user, invitation)
    except invitations.Refused as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(
            request,
            _("A new link is on its way to %(email)s; the one sent before no longer works.")
            % {"email": invitation.email},
        )
    return _back(invitation.organisation)


@login_required
@require_POST
def invitation_withdraw(request: HttpRequest, pk: int, invitation_pk: int) -> HttpResponse:
    invitation = _invitation(request, pk, invitation_pk)
    try:
        invitations.withdraw(request.user, invitation)
    except invitations.Refused as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(
            request,
            _("The invitation to %(email)s is withdrawn; its link no longer works.")
            % {"email": invitation.email},
        )
    return _back(invitation.organisation)
