from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class SsoIdentity(models.Model):
    """Who a user is at an identity provider: the assertion's Issuer and NameID.

    A user signing in for the first time gets a new account with this record; every later
    sign-in with the same pair finds it. An account made with a password is never matched by
    e-mail address or name, so an identity provider cannot take over a local account.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="sso_identities",
        verbose_name=_("user"),
    )
    issuer = models.CharField(_("identity provider"), max_length=1024)
    name_id = models.CharField(_("identifier at the identity provider"), max_length=1024)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    last_sign_in_at = models.DateTimeField(_("last sign-in"), null=True, blank=True)

    class Meta:
        verbose_name = _("identity at the identity provider")
        verbose_name_plural = _("identities at the identity provider")
        constraints = [
            models.UniqueConstraint(name="one_user_per_sso_identity", fields=["issuer", "name_id"])
        ]

    def __str__(self) -> str:
        return f"{self.name_id} ({self.issuer})"


class SsoRequest(models.Model):
    """An AuthnRequest the portal sent to the identity provider, answered at most once.

    Its id (the request's ID) is also kept in a cookie of the browser that asked; the answer is
    taken only for an unanswered request of that browser, made within REQUEST_LIFETIME. So a
    Response posted a second time, posted from another browser, or never asked for, is refused.
    """

    id = models.CharField(primary_key=True, max_length=64, editable=False)
    created_at = models.DateTimeField(_("sent"), auto_now_add=True, db_index=True)
    next_url = models.CharField(max_length=2000, blank=True)
    answered_at = models.DateTimeField(_("answered"), null=True, blank=True)

    class Meta:
        verbose_name = _("sign-in request to the identity provider")
        verbose_name_plural = _("sign-in requests to the identity provider")

    def __str__(self) -> str:
        return f"AuthnRequest {self.id}"
