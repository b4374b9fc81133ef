"""Single sign-on through an organisation's SAML 2.0 identity provider.

    GET  /sso/metadata/  the portal's SP metadata, for the identity provider's administrators
    GET  /sso/login/     a signed AuthnRequest, sent to the identity provider (HTTP-Redirect)
    POST /sso/acs/       the identity provider's Response (HTTP-POST): checked, then logged in

pysaml2 checks the Response (protocol.py), which must answer the request this browser made,
once. The portal then finds the person by the assertion's Issuer and NameID, or makes an
account for them in the organisation whose CVR number the assertion carries, if the portal
knows that organisation; nowhere else. Every URL answers 404 while single sign-on is off.

pysaml2 takes most of a second to import, so protocol.py is imported by the views that need
it, and only a portal with single sign-on on pays for it.
"""

import functools
import hashlib
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models, transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from portal.accounts.models import Membership, Organisation
from portal.audit.log import record
from portal.audit.models import AuditEvent
from portal.sso import SESSION_KEY
from portal.sso.config import REQUEST_LIFETIME, Unavailable, is_configured, sp_config
from portal.sso.models import SsoIdentity, SsoRequest

logger = logging.getLogger(__name__)

# The id of this browser's pending AuthnRequest. The Response arrives by a POST from the
# identity provider's site, which carries no SameSite=Lax cookie (the session's) in production:
# this one is SameSite=None, so it must be Secure, as it is wherever the session cookie is.
COOKIE = "fdd_sso_request"
# An account made here can only be used through the identity provider: no password opens it.
BACKEND = "django.contrib.auth.backends.ModelBackend"

# Why a sign-in was refused, as the refusal page says it. The audit log keeps the key.
REASONS = {
    "signature": _(
        "The answer from the identity provider was not signed by the identity provider the "
        "portal trusts."
    ),
    "audience": _(
        "The answer from the identity provider was meant for another service, not this portal."
    ),
    "expired": _(
        "The answer from the identity provider has expired. Sign in again; if this happens "
        "again, the clock of the portal or of the identity provider may be wrong."
    ),
    "replayed": _(
        "The answer from the identity provider has been used already, or does not belong to a "
        "sign-in started in this browser. Start the sign-in again."
    ),
    "invalid": _("The answer from the identity provider could not be read."),
    "idp": _("The identity provider did not sign you in."),
    "no_identifier": _(
        "The identity provider sent no lasting identifier for you, so the portal could not "
        "recognise you at your next sign-in."
    ),
    "no_cvr": _(
        "The identity provider did not say which organisation you belong to: its answer "
        "carries no CVR number."
    ),
    "unknown_cvr": _(
        "Your organisation (CVR number %(cvr)s) is not registered in the portal. Ask the "
        "portal's administrators to add it; your account is made when you sign in after that."
    ),
    "deactivated": _(
        "Your account in the portal has been deactivated. Ask an administrator of your "
        "organisation to activate it again."
    ),
}


@dataclass
class Refusal(Exception):
    reason: str
    about: models.Model  # the record the audit event names
    user: object = None
    organisation: Organisation | None = None
    details: dict = field(default_factory=dict)


def _configured_only(view):
    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not is_configured():
            raise Http404("Single sign-on is not configured.")
        try:
            return view(request, *args, **kwargs)
        except Unavailable as error:
            logger.error("Single sign-on is unavailable: %s", error)
            return render(request, "sso/unavailable.html", status=503)

    return wrapped


@_configured_only
@require_GET
def metadata(request: HttpRequest) -> HttpResponse:
    """The SP metadata: entity id, the assertion consumer service, the signing and
    encryption certificate. Built without the IdP's metadata, which the IdP may need this for."""
    from portal.sso import protocol

    document = protocol.metadata(sp_config(with_idp=False))
    return HttpResponse(document, content_type="application/samlmetadata+xml")


@_configured_only
@require_GET
@never_cache
def start(request: HttpRequest) -> HttpResponse:
    """Send the browser to the identity provider with a signed AuthnRequest."""
    from portal.sso import protocol

    request_id, location = protocol.authn_request(sp_config())
    now = timezone.now()
    # Requests never answered, and answered ones (kept a day to tell a replay apart), go.
    SsoRequest.objects.filter(created_at__lt=now - REQUEST_LIFETIME * 48).delete()
    SsoRequest.objects.create(id=request_id, next_url=_next_url(request))
    response = HttpResponseRedirect(location)
    secure = settings.SESSION_COOKIE_SECURE
    response.set_cookie(
        COOKIE,
        request_id,
        max_age=int(REQUEST_LIFETIME.total_seconds()),
        path=reverse("sso:acs"),
        secure=secure,
        httponly=True,
        samesite="None" if secure else "Lax",
    )
    return response


@csrf_exempt  # posted by the identity provider's page; the signed answer is the proof
@_configured_only
@require_POST
@never_cache
def acs(request: HttpRequest) -> HttpResponse:
    """The assertion consumer service: log the person in, or say why not."""
    try:
        user, next_url = _sign_in(request)
    except Refusal as refusal:
        logger.warning("Single sign-on refused: %s %s", refusal.reason, refusal.details)
        record(
            refusal.user,
            AuditEvent.Action.SSO_REFUSED,
            refusal.about,
            concerns=[refusal.organisation],
            reason=refusal.reason,
            **refusal.details,
        )
        reason = REASONS[refusal.reason] % {"cvr": refusal.details.get("cvr", "")}
        response = render(request, "sso/refused.html", {"reason": reason}, status=403)
    else:
        login(request, user, backend=BACKEND)
        # After login(): its user_logged_in signal clears the mark (see apps.py).
        request.session[SESSION_KEY] = True
        response = HttpResponseRedirect(next_url)
    response.delete_cookie(COOKIE, path=reverse("sso:acs"))
    return response


def _next_url(request: HttpRequest) -> str:
    candidate = request.GET.get("next", "")
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return reverse(settings.LOGIN_REDIRECT_URL)


def _checked_answer(request: HttpRequest):
    """The identity provider's checked answer, and this browser's request it answers, which
    it uses up."""
    from portal.sso import protocol

    request_id = request.COOKIES.get(COOKIE, "")[:64]
    fresh = timezone.now() - REQUEST_LIFETIME
    pending = SsoRequest.objects.filter(
        pk=request_id, answered_at__isnull=True, created_at__gte=fresh
    ).first()
    # An unsaved stand-in names the request in the audit log when there is none.
    asked = pending or SsoRequest(id=request_id or "-")
    encoded = request.POST.get("SAMLResponse", "")
    if not encoded:
        raise Refusal("invalid", asked)
    if pending is None:
        # Refused before the signature is checked: whoever posts here without having started
        # a sign-in in this browser must not cost the portal a verification each time.
        raise Refusal("replayed", asked)
    try:
        answer = protocol.read_response(sp_config(), encoded, {pending.pk: pending.next_url})
    except protocol.Rejected as rejected:
        details = {"detail": rejected.detail} if rejected.detail else {}
        raise Refusal(rejected.reason, pending, details=details) from None
    if answer.in_response_to != pending.pk:
        raise Refusal("replayed", pending)
    # One answer per request, even when two arrive at once.
    taken = SsoRequest.objects.filter(pk=pending.pk, answered_at__isnull=True).update(
        answered_at=timezone.now()
    )
    if not taken:
        raise Refusal("replayed", pending)
    return answer, pending


def _sign_in(request: HttpRequest):
    answer, pending = _checked_answer(request)
    if not answer.name_id:
        raise Refusal("no_identifier", pending, details={"issuer": answer.issuer})
    cvr = "".join(answer.first(settings.SSO_ATTRIBUTE_CVR).split())
    if not cvr:
        raise Refusal("no_cvr", pending, details={"name_id": answer.name_id})
    organisation = Organisation.objects.filter(cvr=cvr).first()
    if organisation is None:
        raise Refusal("unknown_cvr", pending, details={"cvr": cvr, "name_id": answer.name_id})
    identity = (
        SsoIdentity.objects.select_related("user")
        .filter(issuer=answer.issuer, name_id=answer.name_id)
        .first()
    )
    if identity is not None and not identity.user.is_active:
        raise Refusal(
            "deactivated",
            identity,
            user=identity.user,
            organisation=organisation,
            details={"cvr": cvr},
        )
    roles = (
        answer.attributes.get(settings.SSO_ATTRIBUTE_ROLES, [])
        if settings.SSO_ATTRIBUTE_ROLES
        else []
    )
    administrator = bool(organisation.sso_administrator_role) and (
        organisation.sso_administrator_role in roles
    )
    with transaction.atomic():
        created = identity is None
        if created:
            identity = SsoIdentity(
                issuer=answer.issuer,
                name_id=answer.name_id,
                user=_new_user(answer.issuer, answer.name_id),
            )
        user = identity.user
        _update_person(user, answer)
        identity.last_sign_in_at = timezone.now()
        identity.save()
        membership, _made = Membership.objects.get_or_create(
            user=user, organisation=organisation, defaults={"is_administrator": administrator}
        )
        if membership.is_administrator != administrator:
            membership.is_administrator = administrator
            membership.save(update_fields=["is_administrator"])
        record(
            user,
            AuditEvent.Action.SSO_LOGIN,
            identity,
            concerns=[organisation],
            cvr=cvr,
            administrator=administrator,
            new_account=created,
        )
    return user, pending.next_url or reverse(settings.LOGIN_REDIRECT_URL)


def _new_user(issuer: str, subject: str):
    """An account no password opens, named after the identity (the page shows the name)."""
    digest = hashlib.sha256(f"{issuer}\n{subject}".encode()).hexdigest()[:24]
    user = get_user_model()(username=f"sso-{digest}")
    user.set_unusable_password()
    user.save()
    return user


def _update_person(user, answer) -> None:
    """Name and e-mail address as the identity provider has them now (where it sends them)."""
    now = {}
    full_name = " ".join(answer.first(settings.SSO_ATTRIBUTE_NAME).split())
    if full_name:
        first, _space, last = full_name.rpartition(" ")
        if not first:
            first, last = last, ""
        now.update(first_name=first[:150], last_name=last[:150])
    email = answer.first(settings.SSO_ATTRIBUTE_EMAIL)[:254]
    try:
        validate_email(email)
    except ValidationError:
        pass
    else:
        now["email"] = email
    changed = [name for name, value in now.items() if getattr(user, name) != value]
    for name in changed:
        setattr(user, name, now[name])
    if changed and user.pk is not None:
        user.save(update_fields=changed)
