"""Record an event in the audit log, in the same transaction as the change it describes."""

from collections.abc import Iterable

from django.db import models

from portal.accounts.models import Organisation
from portal.audit.models import AuditEvent

# What one event is about: the record, the organisations it concerns, and its details.
Entry = tuple[models.Model, Iterable[Organisation | None], dict]


def record(
    actor,
    action: str,
    obj: models.Model,
    *,
    concerns: Iterable[Organisation | None],
    **details,
) -> AuditEvent:
    return record_many(actor, action, [(obj, concerns, details)])[0]


def record_many(actor, action: str, entries: list[Entry]) -> list[AuditEvent]:
    """One event per entry, by one actor: two inserts however many (a split's hundred parts
    were three queries each)."""
    who = actor if getattr(actor, "is_authenticated", False) else None
    events = AuditEvent.objects.bulk_create(
        AuditEvent(
            actor=who,
            action=action,
            object_type=obj._meta.label,
            object_id=str(obj.pk),
            summary=str(obj)[:500],
            details={key: str(value) for key, value in details.items()},
        )
        for obj, _concerns, details in entries
    )
    link = AuditEvent.concerns.through
    link.objects.bulk_create(
        link(auditevent_id=event.pk, organisation_id=organisation_id)
        for event, (_obj, concerns, _details) in zip(events, entries, strict=True)
        for organisation_id in {o.pk for o in concerns if o is not None}
    )
    return events
