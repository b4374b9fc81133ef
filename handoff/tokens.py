"""API tokens: made, checked and revoked; and the principal a token acts as.

A token is 256 random bits, so its plain SHA-256 is a safe thing to store and to look up by:
nothing can be guessed from the lookup's timing that would help find another token.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from handoff.models import ApiToken
from portal.accounts.access import Scope
from portal.audit.log import record
from portal.audit.models import AuditEvent
from portal.itsystems.models import ItSystem

PREFIX = "fdd_"
SHOWN_CHARACTERS = 12  # "fdd_" and 8 of the random part: enough to tell tokens apart
# Written at most this often, so a busy client does not make every call a database write.
LAST_USED_RESOLUTION = timedelta(minutes=1)
CREATED, REVOKED = AuditEvent.Action.API_TOKEN_CREATED, AuditEvent.Action.API_TOKEN_REVOKED


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def issue(it_system: ItSystem, *, name: str, valid_days: int, user) -> tuple[ApiToken, str]:
    """A new token for the IT system; the plain token is returned here and never again."""
    plain = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        it_system=it_system,
        name=name,
        digest=digest(plain),
        prefix=plain[:SHOWN_CHARACTERS],
        created_by=user,
        expires_at=timezone.now() + timedelta(days=valid_days),
    )
    record(
        user,
        CREATED,
        token,
        concerns=[it_system.vendor],
        it_system=it_system.name,
        expires=timezone.localdate(token.expires_at).isoformat(),
    )
    return token, plain


@transaction.atomic
def revoke(token: ApiToken, user) -> bool:
    """Stop the token now; False when it was revoked already."""
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_by=user
    )
    if revoked:
        token.refresh_from_db()
        record(
            user, REVOKED, token, concerns=[token.it_system.vendor], it_system=token.it_system.name
        )
    return bool(revoked)


class TokenRefused(Exception):
    """The request's token is missing, unknown, expired or revoked: answered with 401."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def check(plain: str) -> ApiToken:
    """The usable token behind `plain`, or TokenRefused saying why not."""
    token = (
        ApiToken.objects.select_related("it_system__vendor").filter(digest=digest(plain)).first()
    )
    # The index found the row by its digest; compare in constant time all the same.
    if token is None or not hmac.compare_digest(token.digest, digest(plain)):
        raise TokenRefused("token_unknown", "The API token is not known.")
    if token.revoked_at is not None:
        raise TokenRefused(
            "token_revoked", f"The API token was revoked at {token.revoked_at.isoformat()}."
        )
    now = timezone.now()
    if token.expires_at <= now:
        raise TokenRefused(
            "token_expired", f"The API token expired at {token.expires_at.isoformat()}."
        )
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


@dataclass
class TokenPrincipal:
    """Who a token acts as, for `portal.accounts.access`: its IT system's vendor organisation.

    Every query goes through `access.visible` and `access.changeable` with this principal, the
    same rules as the pages; `handoff.api.scope` then narrows it to the token's IT system.
    """

    token: ApiToken
    is_authenticated: bool = True
    is_active: bool = True
    is_superuser: bool = False
    # Carried for access.scope_of (`access.Scoped`): the rules see the vendor the IT system
    # belongs to now, whoever made the token.
    access_scope: Scope = field(init=False)

    def __post_init__(self) -> None:
        self.access_scope = Scope(vendor_ids=frozenset({self.token.it_system.vendor_id}))

    @property
    def it_system(self) -> ItSystem:
        return self.token.it_system

    @property
    def it_system_id(self) -> int:
        return self.token.it_system_id
