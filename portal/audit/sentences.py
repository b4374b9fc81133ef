"""Each audit event as a sentence in the reader's language, worded when the log is read.

An event stores what happened (the action, the record, the details) in values, not words: the
summary it keeps is in the language of whoever acted. The words are chosen here instead, so an
English reader reads English whoever made the event. A sentence takes its facts from the record
as it is now (records.py loads a page's records at once), else from the details recorded with
the event, else from the summary stored then: an event whose record is gone still reads.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from django.db import models
from django.utils import formats
from django.utils.timezone import localtime
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from gdpr.models import GdprDeclaration, InfRefRequest
from handoff.models import ApiToken
from portal.audit.models import AuditEvent
from portal.audit.records import records_named_by
from portal.onboarding.catalogue import BY_NUMBER
from portal.onboarding.models import Consent, OnboardingTask
from transfers.models import ReceivedFile, Route, Transfer

Action = AuditEvent.Action

Sentence = Callable[[AuditEvent, models.Model | None], str]

# The details that name what acted, by how it acted: the subject of the sentence says them.
_SAID_BY_WHO = {
    "API": frozenset({"via", "token"}),
    "watched folder": frozenset({"via", "folder"}),
    "command line": frozenset({"via"}),
}


@dataclass(frozen=True)
class Entry:
    """One line of the log: the sentence, and the technical details kept for whoever needs them."""

    event: AuditEvent
    sentence: str
    technical: list[tuple[str, str]]


def entries(events: Sequence[AuditEvent]) -> list[Entry]:
    events = list(events)  # read once: a page's slice of the log would be queried again
    records = records_named_by(events)
    return [entry(event, records.get((event.object_type, event.object_id))) for event in events]


def entry(event: AuditEvent, record: models.Model | None) -> Entry:
    """`record` is what the event names, loaded with what records.py selects; None if gone."""
    says, spoken = _SENTENCES.get(event.action, (_any_action, frozenset()))
    return Entry(event=event, sentence=says(event, record), technical=_technical(event, spoken))


def _technical(event: AuditEvent, spoken: frozenset[str]) -> list[tuple[str, str]]:
    """Every detail the sentence does not say, as recorded: old events' keys included."""
    labels = {
        "sha256": "SHA-256",
        "fingerprint": _("Fingerprint"),
        "token": _("API token"),
        "folder": _("Folder"),
    }
    via = event.details.get("via")
    if event.actor_id is None:
        spoken = spoken | _SAID_BY_WHO.get(via, frozenset())
    elif via in ("command line", "page"):
        # A person's way in: the sentence names them, and "(command line)" where it matters.
        spoken = spoken | {"via"}
    return [
        (labels.get(key, key), str(value))
        for key, value in event.details.items()
        if key not in spoken
    ]


# --- The parts of a sentence ----------------------------------------------------------------


def _who(event: AuditEvent) -> str:
    if event.actor_id is not None and event.details.get("via") == "command line":
        return _("%(person)s (command line)") % {"person": event.who}
    return str(event.who)


def _named(event: AuditEvent, record: models.Model | None) -> str:
    """The record in the reader's language while it exists, else as it was named then."""
    return str(record) if record is not None else event.summary


def _label(choices: type[models.TextChoices], value: str | None) -> str:
    return str(dict(choices.choices).get(value, value or "–"))


def _days(event: AuditEvent) -> int | None:
    try:
        return int(event.details["days"])
    except (KeyError, TypeError, ValueError):
        return None


def _file_facts(event: AuditEvent, record: Transfer) -> dict[str, str]:
    return {
        "who": _who(event),
        "file": record.original_name,
        "municipality": record.route.municipality.name,
    }


# --- One sentence per action -----------------------------------------------------------------


def _queued(event: AuditEvent, record: models.Model | None) -> str:
    if isinstance(record, Transfer):
        return _("%(who)s queued %(file)s for %(municipality)s") % _file_facts(event, record)
    return _("%(who)s queued %(record)s") % {"who": _who(event), "record": _named(event, record)}


def _resubmitted(event: AuditEvent, record: models.Model | None) -> str:
    if isinstance(record, Transfer):
        return _("%(who)s sent %(file)s for %(municipality)s again") % _file_facts(event, record)
    return _("%(who)s sent %(record)s again") % {
        "who": _who(event),
        "record": _named(event, record),
    }


def _cancelled(event: AuditEvent, record: models.Model | None) -> str:
    if isinstance(record, Transfer):
        return _("%(who)s cancelled sending %(file)s for %(municipality)s") % _file_facts(
            event, record
        )
    return _("%(who)s cancelled sending %(record)s") % {
        "who": _who(event),
        "record": _named(event, record),
    }


def _downloaded(event: AuditEvent, record: models.Model | None) -> str:
    who = _who(event)
    if isinstance(record, GdprDeclaration):
        return _(
            "%(who)s downloaded version %(version)s of the GDPR declaration for %(infref)s"
        ) % {
            "who": who,
            "version": record.version,
            "infref": record.infref.name,
        }
    if isinstance(record, Transfer):
        return _("%(who)s downloaded the local copy of %(file)s for %(municipality)s") % (
            _file_facts(event, record)
        )
    if isinstance(record, ReceivedFile):
        return _("%(who)s downloaded the received file %(file)s") % {
            "who": who,
            "file": record.remote_name,
        }
    return _("%(who)s downloaded %(record)s") % {"who": who, "record": _named(event, record)}


def _key_generated(event: AuditEvent, record: models.Model | None) -> str:
    return _("%(who)s made a new key for SFTP account %(account)s") % {
        "who": _who(event),
        "account": _named(event, record),
    }


def _key_imported(event: AuditEvent, record: models.Model | None) -> str:
    return _("%(who)s imported a key for SFTP account %(account)s") % {
        "who": _who(event),
        "account": _named(event, record),
    }


def _host_key_confirmed(event: AuditEvent, record: models.Model | None) -> str:
    return _("%(who)s confirmed the host key of SFTP account %(account)s") % {
        "who": _who(event),
        "account": _named(event, record),
    }


def _route_changed(event: AuditEvent, record: models.Model | None) -> str:
    return _("%(who)s set route %(route)s to %(state)s") % {
        "who": _who(event),
        "route": _named(event, record),
        "state": _label(Route.State, event.details.get("state")),
    }


def _declaration_submitted(event: AuditEvent, record: models.Model | None) -> str:
    if isinstance(record, GdprDeclaration):
        return _("%(who)s submitted version %(version)s of the GDPR declaration for %(infref)s") % {
            "who": _who(event),
            "version": record.version,
            "infref": record.infref.name,
        }
    return _("%(who)s submitted the GDPR declaration %(record)s") % {
        "who": _who(event),
        "record": event.summary,
    }


def _task_changed(event: AuditEvent, record: models.Model | None) -> str:
    details = event.details
    task = record if isinstance(record, OnboardingTask) else None
    number = task.number if task else _task_number(details.get("task"))
    facts = {
        "who": _who(event),
        "integration": details.get("integration") or (task and task.integration.name) or "–",
        "state": _label(OnboardingTask.State, details.get("state")),
    }
    if number is None:
        return _("%(who)s set onboarding task %(task)s of %(integration)s to %(state)s") % {
            **facts,
            "task": event.summary,
        }
    facts |= {"number": number, "title": BY_NUMBER[number].title}
    municipality = (
        task.municipality.name if task and task.municipality else details.get("municipality")
    )
    if municipality:
        return _(
            "%(who)s set onboarding task %(number)s “%(title)s” of %(integration)s "
            "for %(municipality)s to %(state)s"
        ) % {**facts, "municipality": municipality}
    return (
        _("%(who)s set onboarding task %(number)s “%(title)s” of %(integration)s to %(state)s")
        % facts
    )


def _task_number(value: str | None) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number in BY_NUMBER else None


def _retention_deleted(event: AuditEvent, record: models.Model | None) -> str:
    days = _days(event)
    if days is None:
        return _("%(who)s deleted the stored file of %(record)s after its retention period") % {
            "who": _who(event),
            "record": _named(event, record),
        }
    if isinstance(record, Transfer):
        return ngettext(
            "%(who)s deleted the local copy of %(file)s for %(municipality)s after %(days)s day",
            "%(who)s deleted the local copy of %(file)s for %(municipality)s after %(days)s days",
            days,
        ) % {**_file_facts(event, record), "days": days}
    if isinstance(record, ReceivedFile):
        return ngettext(
            "%(who)s deleted the received file %(file)s after %(days)s day",
            "%(who)s deleted the received file %(file)s after %(days)s days",
            days,
        ) % {"who": _who(event), "file": record.remote_name, "days": days}
    return ngettext(
        "%(who)s deleted the stored file of %(record)s after %(days)s day",
        "%(who)s deleted the stored file of %(record)s after %(days)s days",
        days,
    ) % {"who": _who(event), "record": _named(event, record), "days": days}


def _token_facts(event: AuditEvent, record: models.Model | None) -> dict[str, str]:
    token = record if isinstance(record, ApiToken) else None
    return {
        "who": _who(event),
        "token": _named(event, record),
        "system": event.details.get("it_system") or (token and token.it_system.name) or "–",
    }


def _token_created(event: AuditEvent, record: models.Model | None) -> str:
    facts = _token_facts(event, record)
    try:
        expires = date.fromisoformat(event.details["expires"])
    except (KeyError, ValueError):
        return _("%(who)s made API token %(token)s for %(system)s") % facts
    return _("%(who)s made API token %(token)s for %(system)s, valid until %(date)s") % {
        **facts,
        "date": formats.date_format(expires, "SHORT_DATE_FORMAT"),
    }


def _token_revoked(event: AuditEvent, record: models.Model | None) -> str:
    return _("%(who)s revoked API token %(token)s for %(system)s") % _token_facts(event, record)


def _request_withdrawn(event: AuditEvent, record: models.Model | None) -> str:
    if isinstance(record, InfRefRequest):
        return _("%(who)s withdrew the InfRef request for %(system)s made on %(date)s") % {
            "who": _who(event),
            "system": record.it_system.name,
            "date": formats.date_format(localtime(record.requested_at), "SHORT_DATE_FORMAT"),
        }
    return _("%(who)s withdrew the InfRef request %(record)s") % {
        "who": _who(event),
        "record": event.summary,
    }


def _consent_facts(event: AuditEvent, record: models.Model | None) -> dict[str, str]:
    details = event.details
    return {
        "who": _who(event),
        "party": details.get("party") or "–",
        "integration": details.get("integration") or _named(event, record),
        "subject": _label(Consent.Subject, details.get("subject")),
    }


def _consent_given(event: AuditEvent, record: models.Model | None) -> str:
    return _("%(who)s said yes for %(party)s on %(integration)s: %(subject)s") % _consent_facts(
        event, record
    )


def _consent_withdrawn(event: AuditEvent, record: models.Model | None) -> str:
    facts = _consent_facts(event, record)
    if event.details.get("lapsed"):
        return (
            _(
                "The yes of %(party)s on %(integration)s lapsed when %(who)s changed what it "
                "was given to: %(subject)s"
            )
            % facts
        )
    return _("%(who)s withdrew the yes of %(party)s on %(integration)s: %(subject)s") % facts


def _integration_changed(event: AuditEvent, record: models.Model | None) -> str:
    return _("%(who)s changed integration %(integration)s") % {
        "who": _who(event),
        "integration": event.details.get("integration") or _named(event, record),
    }


def _any_action(event: AuditEvent, record: models.Model | None) -> str:
    """An action without a sentence of its own yet still reads: what acted, what, on which."""
    return _("%(who)s: %(action)s, %(record)s") % {
        "who": _who(event),
        "action": event.get_action_display(),
        "record": _named(event, record),
    }


# Each action's sentence, and the details it says in words.
_SENTENCES: dict[str, tuple[Sentence, frozenset[str]]] = {
    Action.SEND: (_queued, frozenset()),
    Action.RESUBMIT: (_resubmitted, frozenset()),
    Action.CANCEL: (_cancelled, frozenset()),
    Action.DOWNLOAD: (_downloaded, frozenset()),
    Action.KEY_GENERATED: (_key_generated, frozenset()),
    Action.KEY_IMPORTED: (_key_imported, frozenset()),
    Action.HOST_KEY_CONFIRMED: (_host_key_confirmed, frozenset()),
    Action.ROUTE_CHANGED: (_route_changed, frozenset({"state"})),
    Action.DECLARATION_SUBMITTED: (_declaration_submitted, frozenset()),
    Action.CONSENT_GIVEN: (_consent_given, frozenset({"party", "integration", "subject"})),
    Action.CONSENT_WITHDRAWN: (
        _consent_withdrawn,
        frozenset({"party", "integration", "subject", "lapsed"}),
    ),
    Action.INTEGRATION_CHANGED: (_integration_changed, frozenset({"integration"})),
    Action.TASK_CHANGED: (
        _task_changed,
        frozenset({"state", "integration", "task", "municipality"}),
    ),
    Action.RETENTION_DELETED: (_retention_deleted, frozenset({"days"})),
    Action.API_TOKEN_CREATED: (_token_created, frozenset({"it_system", "expires"})),
    Action.API_TOKEN_REVOKED: (_token_revoked, frozenset({"it_system"})),
    Action.INFREF_REQUEST_WITHDRAWN: (_request_withdrawn, frozenset()),
}
