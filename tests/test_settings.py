"""Settings come from the environment through strict helpers."""

import secrets
import shlex
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from psycopg import OperationalError

from portal import env
from tests.support.system import run_manage


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("1", True), ("No", False), ("off", False)]
)
def test_booleans_are_read_strictly(monkeypatch, raw, expected):
    monkeypatch.setenv("SOME_FLAG", raw)
    assert env.env_bool("SOME_FLAG", not expected) is expected


def test_an_unreadable_boolean_stops_start_up(monkeypatch):
    monkeypatch.setenv("SOME_FLAG", "treu")
    with pytest.raises(ImproperlyConfigured, match="SOME_FLAG"):
        env.env_bool("SOME_FLAG", False)


def test_integers_are_read_strictly(monkeypatch):
    monkeypatch.setenv("SOME_NUMBER", "12")
    assert env.env_int("SOME_NUMBER", 1) == 12
    monkeypatch.setenv("SOME_NUMBER", "12s")
    with pytest.raises(ImproperlyConfigured, match="SOME_NUMBER"):
        env.env_int("SOME_NUMBER", 1)
    monkeypatch.setenv("SOME_NUMBER", "0")
    with pytest.raises(ImproperlyConfigured, match="minimum"):
        env.env_int("SOME_NUMBER", 1, minimum=1)


def test_a_required_value_must_be_set(monkeypatch):
    monkeypatch.delenv("SOME_VALUE", raising=False)
    with pytest.raises(ImproperlyConfigured, match="SOME_VALUE"):
        env.env_str("SOME_VALUE", required=True)


def test_postgres_urls_become_database_settings():
    database = env.database_from_url("postgresql://fdd:p%40ss@db.example:5433/portal")
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["USER"], database["PASSWORD"]) == ("fdd", "p@ss")
    assert (database["HOST"], database["PORT"], database["NAME"]) == (
        "db.example",
        "5433",
        "portal",
    )


@pytest.mark.django_db
def test_postgres_connections_cost_pages_read_out_of_order_as_on_ssd():
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL setting; the suite's PostgreSQL pass runs this")
    with connection.cursor() as cursor:
        cursor.execute("SHOW random_page_cost")
        assert cursor.fetchone()[0] == "1.1"


def test_sqlite_urls_use_wal_and_immediate_transactions():
    database = env.database_from_url("sqlite:////var/lib/fdd/portal.sqlite3")
    assert str(database["NAME"]) == "/var/lib/fdd/portal.sqlite3"
    assert "journal_mode=WAL" in database["OPTIONS"]["init_command"]
    assert database["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


@pytest.mark.parametrize(
    "url", ["mysql://root@localhost/x", "postgres://host:99999/x", "postgres://host/", "sqlite://"]
)
def test_unsupported_or_broken_database_urls_are_refused(url):
    with pytest.raises(ImproperlyConfigured):
        env.database_from_url(url)


def _connect(database: dict):
    """A raw connection as Django's PostgreSQL backend makes it from these settings."""
    from django.db.utils import ConnectionHandler

    wrapper = ConnectionHandler({"default": database})["default"]
    return wrapper.get_new_connection(wrapper.get_connection_params())


def test_postgres_options_in_the_url_reach_the_connection():
    url = "postgresql://postgres@127.0.0.1:5432/postgres"
    options = "?application_name=fdd-portal-test&connect_timeout=5&sslmode=disable"
    database = env.database_from_url(url + options)
    assert database["OPTIONS"]["sslmode"] == "disable"
    assert database["OPTIONS"]["options"] == "-c random_page_cost=1.1"  # the portal's own stays
    try:
        connection = _connect(database)
    except OperationalError as error:
        pytest.skip(f"no PostgreSQL server at 127.0.0.1:5432 ({error})")
    with connection:
        assert connection.execute("SHOW application_name").fetchone() == ("fdd-portal-test",)
    # An option the server cannot meet fails the connection, naming it: TLS on a server without.
    with pytest.raises(OperationalError, match="SSL"):
        _connect(env.database_from_url(url + "?sslmode=require"))


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("postgresql://db/fdd?sslmdoe=require", "sslmdoe"),
        ("postgresql://db/fdd?options=-c%20x", "options"),
        ("postgresql://db/fdd?sslmode=require&sslmode=disable", "sslmode"),
        ("sqlite:///portal.sqlite3?timeout=5", "timeout"),
    ],
)
def test_an_unknown_database_url_option_stops_start_up_naming_it(url, named):
    with pytest.raises(ImproperlyConfigured, match=repr(named)):
        env.database_from_url(url)


@pytest.mark.system
def test_the_embedded_database_really_runs_in_wal_mode(tmp_path):
    result = run_manage(
        "shell",
        "-v0",
        "-c",
        "from django.db import connection; c = connection.cursor(); "
        "c.execute('PRAGMA journal_mode'); print(c.fetchone()[0])",
        DEBUG="true",
        DATABASE_URL=f"sqlite:///{tmp_path / 'wal.sqlite3'}",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "wal"


@pytest.mark.system
def test_secret_key_is_required_outside_debug():
    result = run_manage("check", DEBUG="false")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


@pytest.mark.system
def test_the_key_for_private_keys_is_required_outside_debug():
    result = run_manage(
        "check", DEBUG="false", SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="x"
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("FDD portal: SFTP_KEY_ENCRYPTION_KEY must be set when DEBUG is off")
    # The command it gives makes a key without needing one (run with the suite's Python).
    command = message.split("the portal's Python: python ")[1]
    made = subprocess.run(
        [sys.executable, *shlex.split(command)], capture_output=True, text=True, check=True
    )
    assert len(made.stdout.strip()) == 44


@pytest.mark.system
def test_smtps_and_starttls_are_one_or_the_other():
    result = run_manage("check", DEBUG="true", EMAIL_USE_TLS="true", EMAIL_USE_SSL="true")
    assert result.returncode == 1 and "EMAIL_USE_TLS and EMAIL_USE_SSL" in result.stderr
    probe = "from django.conf import settings; print(settings.EMAIL_USE_SSL)"
    result = run_manage("shell", "-c", probe, DEBUG="true", EMAIL_USE_SSL="true")
    assert result.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.system
def test_a_malformed_setting_names_the_variable():
    result = run_manage("check", DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr


@pytest.mark.system
def test_production_settings_pass_the_deployment_checks():
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        SFTP_KEY_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="fdd.example.dk",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
