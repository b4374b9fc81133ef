"""Strict readers for settings taken from the environment.

A misspelt or malformed value stops start-up with a message naming the variable, instead of
silently falling back to a default that would run the portal in a mode nobody asked for.
"""

import os
from collections.abc import Collection
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env_str(name: str, default: str | None = None, *, required: bool = False) -> str | None:
    value = _raw(name)
    if value is None:
        if required:
            raise ImproperlyConfigured(f"The environment variable {name} must be set.")
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={value!r} is not a boolean; use one of {sorted(_TRUE | _FALSE)}."
    )


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum of {minimum}.")
    return number


def env_choice(name: str, default: str, choices: Collection[str]) -> str:
    """One of `choices` (given in lower case; the value is compared without case)."""
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in choices:
        return lowered
    raise ImproperlyConfigured(f"{name}={value!r} is not one of {sorted(choices)}.")


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_path(name: str, default: Path) -> Path:
    value = _raw(name)
    return Path(value).expanduser().resolve() if value else default


# Connection options PostgreSQL takes from the URL's query string (libpq's names), passed on to
# the driver as they are. Anything else is a typo or an option the portal does not support.
POSTGRES_URL_OPTIONS = frozenset(
    {
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslcrl",
        "sslpassword",
        "connect_timeout",
        "application_name",
        "target_session_attrs",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
    }
)


def _url_options(parts, allowed: frozenset[str]) -> dict[str, str]:
    options = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise ImproperlyConfigured(
                f"DATABASE_URL has the option {name!r}, which the portal does not know "
                f"(it takes: {known})."
            )
        if name in options:
            raise ImproperlyConfigured(f"DATABASE_URL gives the option {name!r} twice.")
        options[name] = value
    return options


def database_from_url(url: str) -> dict:
    """Django DATABASES entry for `sqlite:///path` or `postgres://user:pass@host:port/name`,
    with PostgreSQL's connection options (`?sslmode=verify-full&connect_timeout=5`) honoured."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        _url_options(parts, frozenset())
        # sqlite:///relative.db and sqlite:////absolute.db, as in SQLAlchemy and dj-database-url.
        path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
        if not path:
            raise ImproperlyConfigured(
                "DATABASE_URL for SQLite must name a file: sqlite:///path.db"
            )
        return sqlite_database(Path(path))
    if parts.scheme in {"postgres", "postgresql"}:
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured("DATABASE_URL for PostgreSQL must name a database.")
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured("DATABASE_URL has an invalid port.") from None
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(port or ""),
            # The default cost of reading a page out of order (4) is meant for spinning disks;
            # on SSD, or with the portal's routes and indexes in memory as they are, it made
            # PostgreSQL hash all 5,000 routes to join them to a page of 25 transfers. 1.1 is
            # the usual value for SSD; the list, dashboard and review pages came out 10-25 % faster.
            "OPTIONS": {
                "options": "-c random_page_cost=1.1",
                **_url_options(parts, POSTGRES_URL_OPTIONS),
            },
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    raise ImproperlyConfigured(
        f"DATABASE_URL scheme {parts.scheme!r} is not supported; use sqlite:// or postgres://."
    )


def sqlite_database(path: Path) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "OPTIONS": {
            # WAL lets the web server read while a worker writes; IMMEDIATE takes the write lock
            # at BEGIN so two writers queue on the busy timeout instead of failing mid-transaction.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
        # As for PostgreSQL: a worker running task after task keeps its connection and pragmas.
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }
