"""The django-q2 task that sends one queued mail, and the operator's resend.

The task queue delivers a task at least once, so the task claims its row before sending: only
the task whose UPDATE moves the row from queued to sending may send it. Retries are scheduled
by this module, not by django-q2, so a failed attempt is recorded on the row before the next.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import schedule

from portal.outbox.mail import SEND_TASK, build_message, enqueue
from portal.outbox.models import OutgoingMail

FIRST_RETRY_SECONDS = 30
LONGEST_RETRY_SECONDS = 3600
LAST_ERROR_LENGTH = 2000


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed attempt: doubling, at most an hour."""
    seconds = FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, LONGEST_RETRY_SECONDS))


def _describe(error: Exception) -> str:
    text = f"{type(error).__name__}: {error}"
    # An SMTP server may echo what it was sent; the password must not reach the page.
    password = settings.EMAIL_HOST_PASSWORD
    if password:
        text = text.replace(password, "********")
    return text[:LAST_ERROR_LENGTH]


def send_outgoing_mail(mail_id: int) -> str:
    """Send the queued mail `mail_id` once; returns what happened, for django-q2's task log."""
    claimed = OutgoingMail.objects.filter(pk=mail_id, state=OutgoingMail.State.QUEUED).update(
        state=OutgoingMail.State.SENDING, claimed_at=timezone.now()
    )
    if not claimed:
        # Sent, being sent by another worker, failed for good, or deleted: a duplicate task.
        return "not queued"
    mail = OutgoingMail.objects.get(pk=mail_id)
    try:
        if build_message(mail).send(fail_silently=False) != 1:
            raise RuntimeError("the mail backend accepted no message")
    except Exception as error:
        # Any failure is recorded on the row and retried from here; raising would make
        # django-q2 retry the task as well, behind the row's back.
        return _record_failure(mail, error)
    OutgoingMail.objects.filter(pk=mail_id).update(
        state=OutgoingMail.State.SENT,
        sent_at=timezone.now(),
        attempts=F("attempts") + 1,
        last_error="",
    )
    return "sent"


def _record_failure(mail: OutgoingMail, error: Exception) -> str:
    attempts = mail.attempts + 1
    give_up = attempts >= settings.OUTBOX_MAX_ATTEMPTS
    # The row and its retry are written together: a queued row always has a way to be sent.
    with transaction.atomic():
        OutgoingMail.objects.filter(pk=mail.pk).update(
            state=OutgoingMail.State.FAILED if give_up else OutgoingMail.State.QUEUED,
            attempts=attempts,
            last_error=_describe(error),
        )
        if give_up:
            return "failed"
        schedule(
            SEND_TASK,
            mail.pk,
            name=f"outbox-retry-{mail.pk}-{attempts}-{timezone.now():%Y%m%dT%H%M%S%f}",
            schedule_type=Schedule.ONCE,
            next_run=timezone.now() + retry_delay(attempts),
        )
    return "retry scheduled"


def requeue_abandoned(older_than: timedelta | None = None) -> int:
    """Queue again the mails a dead worker left in "sending"; run by a schedule.

    The worker may have died after the server took the message, so the receiver can get it
    twice; it carries the same Message-ID both times, which lets a mail client tell.
    """
    older_than = older_than or timedelta(seconds=settings.OUTBOX_ABANDONED_AFTER_SECONDS)
    with transaction.atomic():
        abandoned = list(
            OutgoingMail.objects.select_for_update()
            .filter(state=OutgoingMail.State.SENDING, claimed_at__lt=timezone.now() - older_than)
            .values_list("pk", flat=True)
        )
        OutgoingMail.objects.filter(pk__in=abandoned).update(state=OutgoingMail.State.QUEUED)
        for mail_id in abandoned:
            transaction.on_commit(lambda mail_id=mail_id: enqueue(mail_id))
    return len(abandoned)


def resend(mail: OutgoingMail) -> bool:
    """Queue a failed mail again, as the same record with the same Message-ID.

    The attempts start over, so the resend gets the same retries as a new mail; the last error
    stays until an attempt succeeds. Returns False, changing nothing, if the mail had not failed.
    """
    with transaction.atomic():
        requeued = OutgoingMail.objects.filter(pk=mail.pk, state=OutgoingMail.State.FAILED).update(
            state=OutgoingMail.State.QUEUED, attempts=0
        )
        if requeued:
            transaction.on_commit(lambda: enqueue(mail.pk))
    mail.refresh_from_db()
    return bool(requeued)
