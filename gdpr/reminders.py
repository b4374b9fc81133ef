"""Daily reminders of GDPR declarations to be renewed (run by a django-q schedule, migration
gdpr 0006).

`workflow.ask_for_renewal` mails the vendor when a renewal is asked for. This reminds them
once more a week before the date, and once the day after it passed, when sends have stopped.
Each reminder goes at most once: `renewal_reminded_at` says when the last one went, and a
reminder sent on or before the date can only have been the first.
"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from gdpr import mail
from gdpr.models import GdprDeclaration

REMIND_BEFORE = timedelta(days=7)


def remind_renewals() -> int:
    """Queue the reminders due today; returns how many declarations were reminded about."""
    today = timezone.localdate()
    reminded = 0
    with transaction.atomic():
        # Locked, so two runs at once cannot both remind of the same declaration.
        due = (
            GdprDeclaration.objects.select_for_update(of=("self",))
            .filter(
                status=GdprDeclaration.Status.SUBMITTED,
                outdated_at__isnull=True,  # sends stopped already, and said so on the pages
                renew_by__isnull=False,
                renew_by__lte=today + REMIND_BEFORE,
            )
            .select_related("infref__it_system__vendor", "infref__request")
            .order_by("pk")
        )
        for declaration in due:
            overdue = declaration.renewal_overdue(today)
            if not _is_due(declaration, overdue=overdue):
                continue
            mail.renewal_reminder(declaration, overdue=overdue)
            # Past the save lock of a submitted version: only this flag changes.
            GdprDeclaration.objects.filter(pk=declaration.pk).update(
                renewal_reminded_at=timezone.now()
            )
            reminded += 1
    return reminded


def _is_due(declaration: GdprDeclaration, *, overdue: bool) -> bool:
    last = declaration.renewal_reminded_at
    if last is None:
        return True
    if not overdue:
        return False  # the week's reminder went already
    # After the date, once: unless the last reminder was itself sent after the date.
    return timezone.localdate(last) <= declaration.renew_by
