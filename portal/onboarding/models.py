from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from gdpr.models import InfRef
from portal.accounts.models import Organisation
from portal.core.text import single_line
from portal.itsystems.models import ItSystem
from portal.onboarding.catalogue import BY_NUMBER, TaskDefinition

User = settings.AUTH_USER_MODEL


class Integration(models.Model):
    """The agreement behind a data flow: a sender system delivering under one InfRef to a
    receiver system, for one or more municipalities."""

    name = models.CharField(_("name"), max_length=200, validators=[single_line])
    sender = models.ForeignKey(
        ItSystem,
        on_delete=models.PROTECT,
        related_name="integrations_sent",
        limit_choices_to={"is_sender": True},
        verbose_name=_("sending IT system"),
    )
    receiver = models.ForeignKey(
        ItSystem,
        on_delete=models.PROTECT,
        related_name="integrations_received",
        limit_choices_to={"is_receiver": True},
        verbose_name=_("receiving IT system"),
    )
    infref = models.ForeignKey(
        InfRef,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="integrations",
        verbose_name=_("InfRef"),
        help_text=_("Filled in when KOMBIT has assigned the InfRef (task 30)."),
    )
    municipalities = models.ManyToManyField(
        Organisation,
        through="IntegrationMunicipality",
        related_name="integrations",
        verbose_name=_("municipalities"),
    )
    legal_basis = models.TextField(
        _("legal basis"),
        blank=True,
        help_text=_("What the data flow rests on in law (seed, chapter 6)."),
    )
    legal_basis_reviewed_on = models.DateField(
        _("legal basis last reviewed"), null=True, blank=True
    )
    created_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", verbose_name=_("created by")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("integration")
        verbose_name_plural = _("integrations")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(name="unique_integration_name", fields=["sender", "name"])
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        if self.sender_id and not self.sender.is_sender:
            errors["sender"] = _("The sending IT system must be registered as a sender.")
        if self.receiver_id and not self.receiver.is_receiver:
            errors["receiver"] = _("The receiving IT system must be registered as a receiver.")
        if self.infref_id and self.sender_id and self.infref.it_system_id != self.sender_id:
            errors["infref"] = _("The InfRef belongs to another IT system.")
        if errors:
            raise ValidationError(errors)

    @property
    def vendor(self) -> Organisation:
        return self.sender.vendor


class IntegrationMunicipality(models.Model):
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE)
    municipality = models.ForeignKey(
        Organisation,
        on_delete=models.PROTECT,
        limit_choices_to={"kind": Organisation.Kind.MUNICIPALITY},
    )
    joined_at = models.DateTimeField(_("joined at"), auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                name="municipality_once_per_integration", fields=["integration", "municipality"]
            )
        ]

    def __str__(self) -> str:
        return f"{self.integration} – {self.municipality}"


class OnboardingTask(models.Model):
    """One of the seed's tasks 10–70 for one integration (task 70: for one municipality)."""

    class State(models.TextChoices):
        NOT_STARTED = "not_started", _("Not started")
        IN_PROGRESS = "in_progress", _("In progress")
        DONE = "done", _("Done")
        NOT_RELEVANT = "not_relevant", _("Not relevant")

    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="tasks", verbose_name=_("integration")
    )
    number = models.PositiveSmallIntegerField(_("task"), choices=[(n, str(n)) for n in BY_NUMBER])
    municipality = models.ForeignKey(
        Organisation,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("municipality"),
    )
    state = models.CharField(
        _("state"), max_length=16, choices=State.choices, default=State.NOT_STARTED
    )
    due_date = models.DateField(_("due date"), null=True, blank=True)
    comment = models.TextField(_("comment"), blank=True)
    changed_by = models.ForeignKey(
        User,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("changed by"),
    )
    changed_at = models.DateTimeField(_("changed at"), null=True, blank=True)
    # Set when the executor was told the task can start, so they are told once.
    reminded_at = models.DateTimeField(_("reminder sent at"), null=True, blank=True)

    class Meta:
        verbose_name = _("onboarding task")
        verbose_name_plural = _("onboarding tasks")
        ordering = ["integration", "number", "municipality__name"]
        constraints = [
            models.UniqueConstraint(
                name="task_once_per_integration",
                fields=["integration", "number"],
                condition=models.Q(municipality__isnull=True),
            ),
            models.UniqueConstraint(
                name="task_once_per_municipality",
                fields=["integration", "number", "municipality"],
                condition=models.Q(municipality__isnull=False),
            ),
            models.CheckConstraint(
                name="only_task_70_per_municipality",
                condition=models.Q(number=70, municipality__isnull=False)
                | (~models.Q(number=70) & models.Q(municipality__isnull=True)),
            ),
        ]

    def __str__(self) -> str:
        where = f" – {self.municipality}" if self.municipality_id else ""
        return f"{self.number} {self.definition.title}{where}"

    @property
    def definition(self) -> TaskDefinition:
        return BY_NUMBER[self.number]

    @property
    def executor_organisation(self) -> Organisation | None:
        actor = self.definition.actor
        if actor == "kombit":
            return Organisation.objects.filter(kind=Organisation.Kind.KOMBIT).first()
        system = self.integration.receiver if actor == "receiver" else self.integration.sender
        return system.vendor

    @property
    def is_settled(self) -> bool:
        """Done, or agreed not to apply: either way it no longer holds anything up."""
        return self.state in (self.State.DONE, self.State.NOT_RELEVANT)

    def waiting_for(self) -> list["OnboardingTask"]:
        """The tasks this one depends on that are not yet settled."""
        numbers = self.definition.depends_on
        if not numbers:
            return []
        others = OnboardingTask.objects.filter(
            integration_id=self.integration_id, number__in=numbers, municipality__isnull=True
        )
        return [other for other in others if not other.is_settled]


class ProcessingAgreement(models.Model):
    """Task 20: the data-processing agreement (databehandleraftale) behind an integration."""

    integration = models.OneToOneField(
        Integration,
        on_delete=models.CASCADE,
        related_name="processing_agreement",
        verbose_name=_("integration"),
    )
    title = models.CharField(_("title"), max_length=255, validators=[single_line])
    parties = models.ManyToManyField(Organisation, related_name="+", verbose_name=_("parties"))
    signed_on = models.DateField(_("signed on"))
    document = models.FileField(_("document"), upload_to="agreements/", blank=True)
    document_sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("data-processing agreement")
        verbose_name_plural = _("data-processing agreements")

    def __str__(self) -> str:
        return self.title


class IntegrationTest(models.Model):
    """Seed chapter 4: the test in the external test environment before production."""

    class Result(models.TextChoices):
        PLANNED = "planned", _("Planned")
        PASSED = "passed", _("Passed")
        FAILED = "failed", _("Failed")
        SKIPPED = "skipped", _("Skipped by agreement")

    # The results production may follow.
    CLEARED = (Result.PASSED, Result.SKIPPED)

    integration = models.OneToOneField(
        Integration, on_delete=models.CASCADE, related_name="test", verbose_name=_("integration")
    )
    scope = models.TextField(_("agreed scope"), blank=True)
    test_data = models.TextField(_("agreed test data"), blank=True)
    result = models.CharField(
        _("result"), max_length=16, choices=Result.choices, default=Result.PLANNED
    )
    notes = models.TextField(_("notes"), blank=True)

    class Meta:
        verbose_name = _("integration test")
        verbose_name_plural = _("integration tests")

    def __str__(self) -> str:
        return f"{self.integration}: {self.get_result_display()}"

    @property
    def has_cleared(self) -> bool:
        """The result lets production follow, once both parties have accepted it."""
        return self.result in self.CLEARED


class Consent(models.Model):
    """One party's yes to a step that the sending vendor and a municipality agree bilaterally
    (seed, chapters 4 and 5): the data-processing agreement, that none is needed, and the test
    before production. The vendor's yes is for the whole integration (no municipality); each
    municipality gives its own. A step holds for a municipality once both have said yes."""

    class Subject(models.TextChoices):
        AGREEMENT = "agreement", _("The data-processing agreement is in place")
        NO_AGREEMENT = "no_agreement", _("No data-processing agreement is needed")
        TEST = "test", _("The test before production is accepted")

    integration = models.ForeignKey(
        Integration,
        on_delete=models.CASCADE,
        related_name="consents",
        verbose_name=_("integration"),
    )
    subject = models.CharField(_("what is agreed"), max_length=16, choices=Subject.choices)
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="+", verbose_name=_("party")
    )
    municipality = models.ForeignKey(
        Organisation,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("for municipality"),
    )
    given_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", verbose_name=_("given by")
    )
    given_at = models.DateTimeField(_("given at"), auto_now_add=True)

    class Meta:
        verbose_name = _("consent")
        verbose_name_plural = _("consents")
        ordering = ["given_at"]
        constraints = [
            models.UniqueConstraint(
                name="consent_once_per_party",
                fields=["integration", "subject", "organisation"],
                condition=models.Q(municipality__isnull=True),
            ),
            models.UniqueConstraint(
                name="consent_once_per_municipality",
                fields=["integration", "subject", "organisation", "municipality"],
                condition=models.Q(municipality__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.integration}: {self.get_subject_display()} ({self.organisation})"
