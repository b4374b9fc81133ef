"""API tokens, the sends they queued, and the folders files are dropped in or delivered to."""

from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from handoff import folders
from portal.accounts.models import Organisation
from portal.core.text import single_line
from portal.itsystems.models import ItSystem
from transfers.models import ReceivedFile, Route, Transfer

User = settings.AUTH_USER_MODEL


class ApiToken(models.Model):
    """A bearer token acting for its IT system's vendor, limited to that IT system.

    Only the SHA-256 of the token is stored: the token itself is shown once, when it is made.
    """

    it_system = models.ForeignKey(
        ItSystem, on_delete=models.CASCADE, related_name="api_tokens", verbose_name=_("IT system")
    )
    name = models.CharField(
        _("name"),
        max_length=100,
        help_text=_("What uses the token, e.g. the nightly export."),
        validators=[single_line],
    )
    digest = models.CharField(_("SHA-256 of the token"), max_length=64, unique=True)
    prefix = models.CharField(_("first characters"), max_length=16)
    created_at = models.DateTimeField(_("made at"), auto_now_add=True)
    created_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    expires_at = models.DateTimeField(_("expires at"))
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    revoked_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.fingerprint})"

    @property
    def fingerprint(self) -> str:
        return f"{self.prefix}…"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and not self.is_expired


class ApiSend(models.Model):
    """A transfer queued through the API, with the Idempotency-Key it came with, if any.

    The key is unique per IT system, not per token: a client that retries with a new token
    after the old one was rotated still finds its first transfer.
    """

    it_system = models.ForeignKey(ItSystem, on_delete=models.PROTECT, related_name="+")
    key = models.CharField(_("Idempotency-Key"), max_length=255, blank=True)
    transfer = models.OneToOneField(Transfer, on_delete=models.CASCADE, related_name="api_send")
    route = models.ForeignKey(Route, on_delete=models.PROTECT, related_name="+")
    original_name = models.CharField(_("file name"), max_length=255)
    size = models.PositiveBigIntegerField(_("size"))
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    token = models.ForeignKey(
        ApiToken, on_delete=models.SET_NULL, null=True, blank=True, related_name="sends"
    )
    created_at = models.DateTimeField(_("queued at"), auto_now_add=True)

    class Meta:
        verbose_name = _("send through the API")
        verbose_name_plural = _("sends through the API")
        constraints = [
            models.UniqueConstraint(
                name="one_send_per_idempotency_key",
                fields=["it_system", "key"],
                condition=~models.Q(key=""),
            )
        ]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.key or '-'})"


def default_settle_seconds() -> int:
    return settings.HANDOFF_SETTLE_SECONDS


class _Folder(models.Model):
    path = models.CharField(
        _("folder"),
        max_length=200,
        unique=True,
        validators=[folders.validate_folder_path],
        help_text=_(
            "A folder under the portal's hand-off root, inside the organisation's own folder "
            "(its CVR number), e.g. 12345678/aarhus-out."
        ),
    )
    enabled = models.BooleanField(_("in use"), default=True)
    changed_at = models.DateTimeField(_("changed at"), auto_now=True)
    changed_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.path

    def clean(self) -> None:
        super().clean()
        owner = self.owner
        if not self.path or owner is None:
            return
        own = folders.organisation_folder(owner)
        if not self.path.startswith(own + "/"):
            raise ValidationError(
                {
                    "path": _(
                        "The organisation's folders lie under %(folder)s/ in the hand-off root."
                    )
                    % {"folder": own}
                }
            )
        for model in (WatchedFolder, DeliveryFolder):
            others = model.objects.all()
            if isinstance(self, model) and self.pk:
                others = others.exclude(pk=self.pk)
            for other in others.values_list("path", flat=True):
                if folders.overlaps(self.path, other):
                    # A drop folder inside a delivery folder would send received files on. Only
                    # a folder of the organisation's own is named: another's (set up before
                    # folders were kept apart) is no business of this user.
                    if other.startswith(own + "/"):
                        message = _("The folder is, lies in, or holds the folder %(other)s.")
                        raise ValidationError({"path": message % {"other": other}})
                    raise ValidationError({"path": _("The folder is taken; choose another.")})

    @property
    def owner(self) -> Organisation | None:
        """The organisation whose folder this lies in; None while that is not yet known."""
        raise NotImplementedError

    @property
    def directory(self) -> Path:
        return folders.directory(self.path)


class WatchedFolder(_Folder):
    """A drop folder on the portal's host: each complete file in it is queued on the route."""

    route = models.OneToOneField(
        Route, on_delete=models.CASCADE, related_name="watched_folder", verbose_name=_("route")
    )
    settle_seconds = models.PositiveIntegerField(
        _("seconds unchanged"),
        default=default_settle_seconds,
        help_text=_(
            "A file is taken once it has not changed for this long. 0 when every writer "
            "writes under a temporary name and renames the file when it is complete."
        ),
    )
    name_pattern = models.CharField(
        _("file names"),
        max_length=100,
        blank=True,
        validators=[single_line],
        help_text=_("Only names like this are sent, e.g. *.csv; others go to the error folder."),
    )

    class Meta:
        verbose_name = _("watched folder")
        verbose_name_plural = _("watched folders")
        ordering = ["path"]

    @property
    def owner(self) -> Organisation | None:
        return self.route.sender.vendor if self.route_id else None


class FolderPickup(models.Model):
    """What a round did with one file from a watched folder."""

    class Outcome(models.TextChoices):
        QUEUED = "queued", _("Queued")
        REFUSED = "refused", _("Refused")

    folder = models.ForeignKey(WatchedFolder, on_delete=models.CASCADE, related_name="pickups")
    name = models.CharField(_("file name"), max_length=255)
    # The name the file had while it was being queued; a round that died in between finds it.
    claimed_as = models.CharField(max_length=300, unique=True)
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices)
    reason = models.TextField(_("reason"), blank=True)
    transfer = models.ForeignKey(
        Transfer, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField(_("at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("file taken from a watched folder")
        verbose_name_plural = _("files taken from watched folders")
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return self.name


class DeliveryFolder(_Folder):
    """Where the files a receiving IT system is sent are written, as they arrive."""

    it_system = models.OneToOneField(
        ItSystem,
        on_delete=models.CASCADE,
        related_name="delivery_folder",
        verbose_name=_("IT system"),
    )

    class Meta:
        verbose_name = _("delivery folder")
        verbose_name_plural = _("delivery folders")
        ordering = ["path"]

    @property
    def owner(self) -> Organisation | None:
        return self.it_system.vendor if self.it_system_id else None


class FolderDelivery(models.Model):
    """A received file written to its IT system's delivery folder."""

    received_file = models.OneToOneField(
        ReceivedFile, on_delete=models.CASCADE, related_name="folder_delivery"
    )
    folder = models.ForeignKey(DeliveryFolder, on_delete=models.CASCADE, related_name="deliveries")
    path = models.CharField(_("written to"), max_length=500)
    at = models.DateTimeField(_("at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("file delivered to a folder")
        verbose_name_plural = _("files delivered to folders")
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return self.path
