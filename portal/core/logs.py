"""How a log line looks, and what it says about the work it was written for.

Every line has its time (UTC, ISO 8601), level, logger and message: plain text by default, one
JSON object per line with LOG_FORMAT=json for a log collector. Each also names the request it was
written for, the user or API token behind it and the transfer, where known. These come from
context variables that the request middleware (`portal.core.request_id`), the task queue
(`portal.core.task_context`) and the send task set, and are read by a filter on the handler, so
a line from any logger, the portal's own or a library's, carries them.
"""

import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from datetime import UTC, datetime

from django.http import HttpRequest
from django.utils.functional import LazyObject, empty

FORMATS = ("text", "json")
# In this order in a text line; a JSON line has those that are known.
CONTEXT_FIELDS = ("request_id", "user_id", "api_token", "transfer_id")

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_request: ContextVar[HttpRequest | None] = ContextVar("request", default=None)
_transfer_id: ContextVar[int | None] = ContextVar("transfer_id", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return _request_id.get()


@contextmanager
def request_context(request_id: str, request: HttpRequest | None = None) -> Iterator[None]:
    """Lines logged inside carry `request_id`, and the user of `request` once it is known."""
    id_token = _request_id.set(request_id)
    request_token = _request.set(request)
    try:
        yield
    finally:
        _request.reset(request_token)
        _request_id.reset(id_token)


@contextmanager
def transfer_context(transfer_id: int) -> Iterator[None]:
    """Lines logged inside carry `transfer_id`."""
    token = _transfer_id.set(transfer_id)
    try:
        yield
    finally:
        _transfer_id.reset(token)


def _resolved(user):
    """The user object behind Django's lazy `request.user` (django-otp wraps it once more), or
    None while nothing has asked for it: reading it here would load the session and the user
    from the database, which a health check must be answered without."""
    while issubclass(type(user), LazyObject):
        if user._wrapped is empty:
            return None
        user = user._wrapped
    return user


def _who(request: HttpRequest | None) -> dict:
    if request is None:
        return {}
    # django-ninja keeps what the API's authentication returned as `request.auth`: for a token
    # (handoff.tokens.TokenPrincipal) the token row, already loaded. Its prefix is what the
    # token pages show, not enough to use it.
    token = getattr(request.__dict__.get("auth"), "token", None)
    user = _resolved(request.__dict__.get("user"))
    return {
        "user_id": user.pk if getattr(user, "is_authenticated", False) else None,
        "api_token": getattr(token, "prefix", None),
    }


class ContextFilter(logging.Filter):
    """Puts the context fields on every record that reaches the handler; drops none.

    A field the caller gave (`extra={"transfer_id": ...}`) is kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        request = _request.get()
        if request is None and isinstance(getattr(record, "request", None), HttpRequest):
            # Django logs a 4xx or 5xx response after the middleware has returned, and names
            # the request on the record.
            request = record.request
        fields = {
            "request_id": _request_id.get() or getattr(request, "request_id", None),
            "transfer_id": _transfer_id.get(),
        }
        # A log call must never fail over who made the request.
        with suppress(Exception):
            fields.update(_who(request))
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, fields.get(name))
        return True


class PeerResetFilter(logging.Filter):
    """paramiko's transport logs a connection the other side reset as an ERROR of this process:
    a client of the simulator that hangs up without a goodbye (the health check's probe, after
    its key exchange) or a server that drops a worker's connection. Neither is this process
    failing, and each is reported where it counts (the simulator's "Connection from ... ended",
    the transfer's error), so the line is kept, at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and record.getMessage().startswith(
            "Socket exception: Connection reset by peer"
        ):
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return True


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


def _context(record: logging.LogRecord) -> dict:
    return {
        name: value for name in CONTEXT_FIELDS if (value := getattr(record, name, None)) is not None
    }


class TextFormatter(logging.Formatter):
    """`2025-03-04T09:15:02.118+00:00 WARNING transfers.tasks [request_id=... transfer_id=7]
    message`, then the traceback as Python prints it."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{name}={value}" for name, value in _context(record).items())
        return " ".join(
            part
            for part in (
                _time(record),
                record.levelname,
                record.name,
                f"[{context}]" if context else "",
                record.message,
            )
            if part
        )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context fields known, and
    `exception` with the traceback text.

    Only these: a record's other attributes (Django puts the request itself on some, with its
    form data) are left out, so a JSON line shows nothing a text line would not.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_context(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def logging_config(log_format: str, level: str) -> dict:
    """Django's LOGGING: every logger's lines through one handler on stderr, in `log_format`."""
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {FORMATS}")
    level = level.upper()
    formatter = "JsonFormatter" if log_format == "json" else "TextFormatter"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": "portal.core.logs.ContextFilter"},
            "peer_reset": {"()": "portal.core.logs.PeerResetFilter"},
            "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
        },
        "formatters": {"line": {"()": f"portal.core.logs.{formatter}"}},
        "handlers": {
            # The level here too: LOG_LEVEL=WARNING also quiets loggers set lower (django's).
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "line",
                "filters": ["context"],
                "level": level,
            },
            # As Django's default configuration has it (mail to ADMINS, none unless set).
            "mail_admins": {
                "class": "django.utils.log.AdminEmailHandler",
                "filters": ["require_debug_false"],
                "level": "ERROR",
            },
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Django's defaults give these handlers of their own, which print the bare message
            # (and, with DEBUG, print django's lines a second time): here they use the root's.
            "django": {"handlers": ["mail_admins"], "level": "INFO", "propagate": True},
            "django.server": {"handlers": [], "level": "INFO", "propagate": True},
            "paramiko.transport": {"filters": ["peer_reset"]},
            # WeasyPrint reports every rendering step at INFO.
            "weasyprint": {"level": "WARNING"},
            "fontTools": {"level": "WARNING"},
        },
    }
