import re
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator, validate_email
from django.db import models
from django.utils.translation import gettext_lazy as _

from gdpr.models import InfRef
from portal.accounts.models import Organisation
from portal.core.text import single_line
from portal.itsystems.models import ItSystem
from transfers.states import State as TransferState

User = settings.AUTH_USER_MODEL
# No leading dot: "." and ".." are no names, and dot-names are hidden folders on the server.
SAFE_NAME = RegexValidator(
    r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$",
    _("Use only letters A–Z, digits, dot, underscore and hyphen, not starting with a dot."),
)


def split_addresses(text: str) -> list[str]:
    """The e-mail addresses in a comma-, semicolon- or newline-separated text."""
    return [address for address in (a.strip() for a in re.split(r"[,;\n]", text)) if address]


def validate_addresses(text: str) -> None:
    for address in split_addresses(text):
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError(
                _("%(address)s is not an e-mail address."),
                code="invalid",
                params={"address": address},
            ) from None


class Environment(models.TextChoices):
    SIMULATOR = "simulator", _("Local simulator")
    EXTERNAL_TEST = "exttest", _("External test")
    PRODUCTION = "production", _("Production")


def default_endpoint(environment: str) -> tuple[str, int]:
    return {
        Environment.SIMULATOR: (settings.SIMULATOR_HOST, settings.SIMULATOR_PORT),
        Environment.EXTERNAL_TEST: ("sftpexttest.serviceplatformen.dk", 22),
        Environment.PRODUCTION: ("sftp.serviceplatformen.dk", 22),
    }[environment]


class SftpAccount(models.Model):
    """An IT system's SFTP user on Serviceplatformen in one environment."""

    class KeyKind(models.TextChoices):
        RSA = "rsa", "RSA 4096"
        ED25519 = "ed25519", "Ed25519"

    it_system = models.ForeignKey(
        ItSystem,
        on_delete=models.PROTECT,
        related_name="sftp_accounts",
        verbose_name=_("IT system"),
    )
    environment = models.CharField(_("environment"), max_length=16, choices=Environment.choices)
    username = models.CharField(
        _("SFTP user"),
        max_length=64,
        validators=[SAFE_NAME],
        help_text=_("The SFTP user name; it is also the Sender in every trigger."),
    )
    host = models.CharField(_("host"), max_length=255, validators=[single_line])
    port = models.PositiveIntegerField(_("port"), default=22)
    key_kind = models.CharField(_("key type"), max_length=8, choices=KeyKind.choices, blank=True)
    public_key = models.TextField(_("public key (OpenSSH)"), blank=True)
    key_fingerprint = models.CharField(_("key fingerprint"), max_length=100, blank=True)
    private_key_encrypted = models.BinaryField(_("private key, encrypted"), blank=True, default=b"")
    key_created_at = models.DateTimeField(_("key made or imported at"), null=True, blank=True)
    # The server's host key: pinned only when an operator confirms what the first connection saw.
    host_key = models.TextField(_("pinned host key"), blank=True)
    host_key_fingerprint = models.CharField(_("host-key fingerprint"), max_length=100, blank=True)
    host_key_confirmed_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    host_key_confirmed_at = models.DateTimeField(_("host key confirmed at"), null=True, blank=True)
    offered_host_key = models.TextField(_("host key offered by the server"), blank=True)
    offered_host_key_fingerprint = models.CharField(max_length=100, blank=True)
    # Set when the server shows a host key other than the pinned one; every transfer stops.
    host_key_mismatch_at = models.DateTimeField(_("host key changed at"), null=True, blank=True)
    # Set by the first connection that could not reach the server, cleared by the next that did;
    # one alert stands for the whole outage (transfers.outage).
    unreachable_since = models.DateTimeField(_("unreachable since"), null=True, blank=True)

    class Meta:
        verbose_name = _("SFTP account")
        verbose_name_plural = _("SFTP accounts")
        ordering = ["it_system__name", "environment"]
        constraints = [
            models.UniqueConstraint(
                name="one_account_per_system_and_environment", fields=["it_system", "environment"]
            ),
            models.UniqueConstraint(
                name="unique_sftp_user_per_environment", fields=["environment", "username"]
            ),
        ]

    def __str__(self) -> str:
        return f"{self.username} ({self.get_environment_display()})"

    @property
    def host_key_trusted(self) -> bool:
        return bool(self.host_key) and self.host_key_mismatch_at is None


class Route(models.Model):
    """InfRef + sending and receiving IT system + municipality: where a trigger sends a file."""

    class State(models.TextChoices):
        ORDERED = "ordered", _("Ordered")
        ESTABLISHED = "established", _("Established")
        SUSPENDED = "suspended", _("Suspended")

    class Frequency(models.TextChoices):
        NONE = "", _("No expectation")
        DAILY = "daily", _("Every day")
        WEEKDAYS = "weekdays", _("Every weekday (Monday to Friday)")
        WEEKLY = "weekly", _("Every week (by Monday)")

    environment = models.CharField(_("environment"), max_length=16, choices=Environment.choices)
    infref = models.ForeignKey(InfRef, on_delete=models.PROTECT, related_name="routes")
    sender = models.ForeignKey(
        ItSystem, on_delete=models.PROTECT, related_name="routes_sent", verbose_name=_("sender")
    )
    receiver = models.ForeignKey(
        ItSystem,
        on_delete=models.PROTECT,
        related_name="routes_received",
        verbose_name=_("receiver"),
    )
    municipality = models.ForeignKey(
        Organisation,
        on_delete=models.PROTECT,
        related_name="routes",
        limit_choices_to={"kind": Organisation.Kind.MUNICIPALITY},
        verbose_name=_("municipality"),
    )
    integration = models.ForeignKey(
        "onboarding.Integration",
        on_delete=models.PROTECT,
        related_name="routes",
        null=True,
        blank=True,
        verbose_name=_("integration"),
    )
    state = models.CharField(
        _("state"), max_length=16, choices=State.choices, default=State.ORDERED
    )
    changed_at = models.DateTimeField(_("changed at"), auto_now=True)
    # When a file is expected: a missed one raises an alert (portal.alerts).
    expected_frequency = models.CharField(
        _("file expected"), max_length=16, choices=Frequency.choices, blank=True, default=""
    )
    expected_by = models.TimeField(
        _("expected by"),
        null=True,
        blank=True,
        help_text=_("Danish time. Without a time, the file is expected by the end of the day."),
    )
    contacts = models.TextField(
        _("contacts"),
        blank=True,
        validators=[validate_addresses],
        help_text=_(
            "E-mail addresses, separated by commas or line breaks, to alert about the route."
        ),
    )

    class Meta:
        verbose_name = _("route")
        verbose_name_plural = _("routes")
        ordering = ["infref__number", "municipality__name"]
        constraints = [
            models.UniqueConstraint(
                name="one_route_per_flow",
                fields=["environment", "infref", "sender", "receiver", "municipality"],
            )
        ]

    def __str__(self) -> str:
        return f"{self.infref} → {self.receiver} · {self.municipality}"

    @property
    def recipient_authority(self) -> str:
        return f"urn:oio:cvr-nr:{self.municipality.cvr}"

    @property
    def contact_addresses(self) -> list[str]:
        return split_addresses(self.contacts)

    def parties(self) -> list:
        """The organisations a route concerns: both vendors and the municipality."""
        return [self.sender.vendor, self.receiver.vendor, self.municipality]


class Transfer(models.Model):
    """One file for one municipality on one route; the row is the truth, the queue has its id."""

    # The states, the moves allowed between them and the one function that makes a move are
    # in transfers.states: nothing else writes `state` once the row exists.
    State = TransferState

    route = models.ForeignKey(
        Route, on_delete=models.PROTECT, related_name="transfers", verbose_name=_("route")
    )
    account = models.ForeignKey(
        SftpAccount, on_delete=models.PROTECT, related_name="transfers", verbose_name=_("account")
    )
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.QUEUED)
    original_name = models.CharField(_("file name"), max_length=255)
    payload = models.CharField(_("local copy"), max_length=500)
    size = models.PositiveBigIntegerField(_("size"))
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    # Fixed when queued: every attempt uses the same remote name, so a retry can see what an
    # earlier attempt left on the server and never delivers the file under two names.
    remote_name = models.CharField(_("remote name"), max_length=255, unique=True)
    senders_file_id = models.UUIDField(_("SendersFileId"), default=uuid.uuid4, unique=True)
    transaction_id = models.UUIDField(_("TransactionId"), default=uuid.uuid4, unique=True)
    file_transfer_uuid = models.UUIDField(_("FileTransferUUID"), null=True, blank=True)
    bytes_done = models.PositiveBigIntegerField(_("bytes sent"), default=0)
    # Counted toward TRANSFER_MAX_ATTEMPTS. An attempt that could not reach the platform (or met
    # a transient error receipt) is not counted: the send waits, from waiting_since for at most
    # TRANSFER_OUTAGE_WAIT_SECONDS. Nullable: SQLite adds such a column in place, where a
    # default would rebuild the table and drop its triggers.
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    waiting_since = models.DateTimeField(_("waiting for the platform since"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    error_code = models.IntegerField(_("KOMBIT error code"), null=True, blank=True)
    error_text = models.TextField(_("KOMBIT error text"), blank=True)
    trigger_xml = models.TextField(_("trigger"), blank=True)
    receipt_xml = models.TextField(_("receipt"), blank=True)
    queued_at = models.DateTimeField(_("queued at"), auto_now_add=True, db_index=True)
    # Refreshed while a worker makes progress; a row in "sending" whose heartbeat stops has lost
    # its worker and is queued again by the sweeper.
    heartbeat_at = models.DateTimeField(_("last sign of life"), null=True, blank=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    # Saved just before the trigger is written: from then on the platform may route the file,
    # so a retry looks at the server instead of uploading again.
    trigger_started_at = models.DateTimeField(_("trigger started at"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    # Data minimisation: the local copy goes after the retention period; the record stays.
    payload_deleted_at = models.DateTimeField(_("local copy deleted at"), null=True, blank=True)
    created_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The send form's one-time key (transfers.send_once): the same form posted again finds this
    # transfer instead of queueing the file a second time. NULL, not "", for the sends that came
    # another way: SQLite adds a nullable column in place, but rebuilds the table for a default,
    # and a rebuild drops the triggers on it.
    form_token = models.CharField(  # noqa: DJ001
        _("send form token"), max_length=64, null=True, blank=True, editable=False
    )

    class Meta:
        verbose_name = _("transfer")
        verbose_name_plural = _("transfers")
        ordering = ["-queued_at", "-id"]
        constraints = [
            # With a condition, SQLite adds it as an index; without, it rebuilds the table and
            # drops the triggers that keep TransferHour and RouteTally.
            models.UniqueConstraint(
                name="one_transfer_per_send_form",
                fields=["form_token"],
                condition=models.Q(form_token__isnull=False),
            )
        ]
        indexes = [
            models.Index(fields=["state", "queued_at"], name="transfer_state_queued"),
            # A route's transfers newest first (the municipal review's last queued per route),
            # and a vendor's or an architect's day charts counted and summed from the index alone.
            models.Index(
                fields=["route", "queued_at", "state", "size"], name="transfer_route_queued_totals"
            ),
            # The dashboard's day charts count and sum a month of transfers from the index
            # alone, never reading the rows with their XML.
            models.Index(
                fields=["queued_at", "route", "state", "size"], name="transfer_queued_totals"
            ),
            # The list's search finds a transfer by the id in KOMBIT's receipt.
            models.Index(fields=["file_transfer_uuid"], name="transfer_file_transfer_uuid"),
        ]

    def __str__(self) -> str:
        return f"{self.original_name} → {self.route.municipality} ({self.get_state_display()})"


class TransferHour(models.Model):
    """How many transfers were queued in one hour (UTC) and are now in one state, and their
    bytes: what the day charts read when the user sees every transfer, instead of counting a
    month of them. Kept by the database itself: triggers (migration 0008) count each transfer
    inserted, each change of its state, queued_at or size, and each one deleted, however the
    row is written. Copenhagen's midnights fall on whole UTC hours, so hours add up to days."""

    hour = models.DateTimeField(_("hour"))
    state = models.CharField(_("state"), max_length=16, choices=Transfer.State.choices)
    count = models.BigIntegerField(_("transfers"), default=0)
    bytes = models.BigIntegerField(_("bytes"), default=0)

    class Meta:
        verbose_name = _("transfers in an hour")
        verbose_name_plural = _("transfers per hour")
        constraints = [
            models.UniqueConstraint(name="transfer_hour_state", fields=["hour", "state"])
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}:00 {self.state}: {self.count}"


class RouteTally(models.Model):
    """How many of a route's transfers are in one state: what the municipal review shows per
    route, read in one lookup instead of counting every transfer the route ever carried. Kept
    by the database like TransferHour: triggers (migration 0010) count each transfer inserted,
    each change of its state or route, and each one deleted, however the row is written."""

    route = models.ForeignKey(
        Route, on_delete=models.CASCADE, related_name="tallies", verbose_name=_("route")
    )
    state = models.CharField(_("state"), max_length=16, choices=Transfer.State.choices)
    count = models.BigIntegerField(_("transfers"), default=0)

    class Meta:
        verbose_name = _("transfers on a route")
        verbose_name_plural = _("transfers per route")
        constraints = [models.UniqueConstraint(name="route_tally_state", fields=["route", "state"])]

    def __str__(self) -> str:
        return f"{self.route_id} {self.state}: {self.count}"


class ReceivedFile(models.Model):
    """A data file fetched from a receiving account's IN/, with its metadata, or quarantined.

    `remote_name` is the file's own name, as the sender gave it (shown, and offered with the
    download); `stored_path` is where it is kept here, under a safe name of the portal's
    (transfers.fetch.local_name). A quarantined file whose name is unsafe is recorded under the
    name quoted and escaped (protocol.printable).
    """

    class State(models.TextChoices):
        RECEIVED = "received", _("Received")
        QUARANTINED = "quarantined", _("Quarantined")

    account = models.ForeignKey(
        SftpAccount, on_delete=models.PROTECT, related_name="received_files"
    )
    remote_name = models.CharField(_("remote name"), max_length=255)
    state = models.CharField(_("state"), max_length=16, choices=State.choices)
    reason = models.TextField(_("why quarantined"), blank=True)
    stored_path = models.CharField(_("stored at"), max_length=500, blank=True)
    size = models.PositiveBigIntegerField(_("size"), null=True, blank=True)
    sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True)
    metadata_xml = models.TextField(_("metadata"), blank=True)
    file_transfer_uuid = models.UUIDField(_("FileTransferUUID"), null=True, blank=True)
    infref_name = models.CharField(_("InfRef"), max_length=64, blank=True)
    # The metadata's Sender: any string of up to 255 characters (the contract's SFTPUserType).
    sender_username = models.CharField(_("sender"), max_length=255, blank=True)
    route = models.ForeignKey(
        Route, on_delete=models.SET_NULL, null=True, blank=True, related_name="received_files"
    )
    received_at = models.DateTimeField(_("received at"), auto_now_add=True, db_index=True)
    acknowledged_at = models.DateTimeField(_("acknowledged at"), null=True, blank=True)
    file_deleted_at = models.DateTimeField(_("file deleted at"), null=True, blank=True)

    class Meta:
        verbose_name = _("received file")
        verbose_name_plural = _("received files")
        ordering = ["-received_at"]
        indexes = [
            # A municipality's received files newest first (the municipal review).
            models.Index(fields=["route", "received_at"], name="received_route_received"),
            # A transfer's file at the receiver, found by the platform's id (the municipal
            # review): the unique constraint below leads with the account, so it cannot.
            models.Index(fields=["file_transfer_uuid"], name="received_file_transfer_uuid"),
        ]
        constraints = [
            # One record per platform transfer: a fetch repeated after a crash finds it.
            models.UniqueConstraint(
                name="receive_each_platform_transfer_once",
                fields=["account", "file_transfer_uuid"],
                condition=models.Q(file_transfer_uuid__isnull=False),
            )
        ]

    def __str__(self) -> str:
        return self.remote_name
