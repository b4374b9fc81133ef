"""Mail to the organisation whose move it is: when a task can start, and weekly when overdue."""

from collections import defaultdict

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from portal.accounts.models import Organisation
from portal.onboarding.models import Integration, OnboardingTask
from portal.outbox.mail import queue_mail
from portal.outbox.models import OutgoingMail

State = OnboardingTask.State
OPEN = (State.NOT_STARTED, State.IN_PROGRESS)


def addresses_of(organisation: Organisation) -> list[str]:
    users = (
        get_user_model()
        .objects.filter(memberships__organisation=organisation, is_active=True)
        .exclude(email="")
    )
    return sorted({user.email for user in users})


def _mail(
    organisation: Organisation, template: str, tasks: list[OnboardingTask]
) -> OutgoingMail | None:
    to = addresses_of(organisation)
    if not to:
        return None
    base = settings.PORTAL_BASE_URL.rstrip("/")
    rows = [
        (task, base + reverse("onboarding:detail", args=[task.integration_id])) for task in tasks
    ]
    with translation.override("da"):
        text = render_to_string(template, {"organisation": organisation, "rows": rows}).strip()
    subject, _, body = text.partition("\n")
    return queue_mail(
        to=to, subject=subject.strip(), body=body.strip() + "\n", organisation=organisation
    )


def remind_actionable(integration: Integration) -> int:
    """Tell each executor about the tasks that can now start; returns the mails queued."""
    with transaction.atomic():
        candidates = (
            OnboardingTask.objects.select_for_update(of=("self",))
            .filter(integration=integration, state__in=OPEN, reminded_at__isnull=True)
            .select_related("integration__sender__vendor", "integration__receiver__vendor")
        )
        by_organisation: dict[Organisation, list[OnboardingTask]] = defaultdict(list)
        for task in candidates:
            if not task.waiting_for():
                by_organisation[task.executor_organisation].append(task)
        sent = 0
        for organisation, tasks in by_organisation.items():
            if organisation is not None and _mail(
                organisation, "onboarding/mail/actionable.txt", tasks
            ):
                sent += 1
        OnboardingTask.objects.filter(
            pk__in=[t.pk for tasks in by_organisation.values() for t in tasks]
        ).update(reminded_at=timezone.now())
    return sent


def weekly_digest() -> int:
    """One mail per executing organisation listing its overdue tasks; run by a schedule."""
    overdue = (
        OnboardingTask.objects.filter(state__in=OPEN, due_date__lt=timezone.localdate())
        .select_related("integration__sender__vendor", "integration__receiver__vendor")
        .order_by("due_date")
    )
    by_organisation: dict[Organisation, list[OnboardingTask]] = defaultdict(list)
    for task in overdue:
        by_organisation[task.executor_organisation].append(task)
    return sum(
        1
        for organisation, tasks in by_organisation.items()
        if organisation is not None and _mail(organisation, "onboarding/mail/overdue.txt", tasks)
    )
