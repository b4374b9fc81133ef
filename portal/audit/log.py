"""Record an event in the audit log, in the same transaction as the change it describes."""

from collections.abc import Iterable

from django.db import models

from portal.accounts.models import Organisation
from portal.audit.models import AuditEvent


def record(
    actor,
    action: str,
    obj: models.Model,
    *,
    concerns: Iterable[Organisation | None],
    **details,
) -> AuditEvent:
    event = AuditEvent.objects.create(
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        action=action,
        object_type=obj._meta.label,
        object_id=str(obj.pk),
        summary=str(obj)[:500],
        details={key: str(value) for key, value in details.items()},
    )
    event.concerns.set({organisation for organisation in concerns if organisation is not None})
    return event
