"""The records a page of audit events names, loaded together: one query per kind of record,
however many events the page holds."""

from collections import defaultdict
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import models

from gdpr.models import GdprDeclaration, InfRefRequest
from handoff.models import ApiToken
from portal.audit.models import AuditEvent
from portal.onboarding.models import OnboardingTask
from transfers.models import ReceivedFile, Route, SftpAccount, Transfer

# What a sentence about each kind of record reads besides the record itself.
_RELATED: dict[type[models.Model], tuple[str, ...]] = {
    Transfer: ("route__municipality",),
    ReceivedFile: ("route__municipality",),
    SftpAccount: (),
    Route: ("infref", "receiver", "municipality"),
    GdprDeclaration: ("infref",),
    InfRefRequest: ("it_system",),
    OnboardingTask: ("integration", "municipality"),
    ApiToken: ("it_system",),
}
_BY_LABEL = {model._meta.label: model for model in _RELATED}

Key = tuple[str, str]  # (object_type, object_id), as the event stores them


def records_named_by(events: Iterable[AuditEvent]) -> dict[Key, models.Model]:
    """The records the events name that still exist; a deleted one is simply missing."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event.object_type in _BY_LABEL:
            wanted[event.object_type].add(event.object_id)
    found: dict[Key, models.Model] = {}
    for label, ids in wanted.items():
        model = _BY_LABEL[label]
        pks = _valid_pks(model, ids)
        if not pks:
            continue
        records = model._default_manager.filter(pk__in=pks)
        if _RELATED[model]:  # select_related() without names would follow every foreign key
            records = records.select_related(*_RELATED[model])
        for record in records:
            found[(label, str(record.pk))] = record
    return found


def _valid_pks(model: type[models.Model], ids: set[str]) -> list:
    # The log outlives schema changes: an id that no longer fits the key names nothing.
    pks = []
    for value in ids:
        try:
            pks.append(model._meta.pk.to_python(value))
        except ValidationError:
            continue
    return pks
