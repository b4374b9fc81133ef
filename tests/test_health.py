import contextlib
import json
import logging
import socket
import struct
import time

import paramiko
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.core.health import check_health
from tests.support.system import run_manage
from tests.support.workers import worker_cluster


@pytest.fixture
def client(client, superuser):
    """Superusers read what each part reports; everyone else only whether all is well."""
    client.force_login(superuser)
    return client


def _health(client) -> tuple[int, dict]:
    response = client.get(reverse("healthz"))
    assert response["Content-Type"] == "application/json"
    return response.status_code, json.loads(response.content)


def _wait_for(client, status: int, seconds: float = 30) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        code, report = _health(client)
        if code == status or time.monotonic() > deadline:
            assert code == status, report
            return report
        time.sleep(0.25)


@contextlib.contextmanager
def database_away():
    """The test's database unreachable for the block: a missing SQLite file, a closed port."""
    original = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = "/nonexistent/folder/portal.sqlite3"
    else:
        connection.settings_dict["PORT"] = "1"
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.update(original)


@pytest.mark.system
@pytest.mark.django_db(transaction=True)
def test_health_follows_the_worker_cluster(client):
    code, report = _health(client)
    assert code == 503
    assert report["checks"]["database"]["ok"] is True
    assert report["checks"]["queue"] == {
        "ok": False,
        "clusters": 0,
        "queued_tasks": 0,
        "error": "no worker cluster is running",
    }

    with worker_cluster():
        report = _wait_for(client, 200)
        assert report["status"] == "ok"
        assert report["checks"]["queue"]["clusters"] == 1

    # The heartbeat expires a few seconds after the cluster stops.
    report = _wait_for(client, 503)
    assert report["checks"]["queue"]["clusters"] == 0


@pytest.mark.django_db(transaction=True)
def test_health_reports_an_unreachable_database(client, settings):
    settings.TWO_FACTOR_REQUIRED = True  # as in production: its middleware reads no user here
    with database_away():
        # Even a superuser's session cannot be read now: the answer is the bare status.
        response = client.get(reverse("healthz"))
        healthy, report = check_health()
    assert (response.status_code, response.json()) == (503, {"status": "not ok"})
    assert not healthy and report["status"] == "not ok"
    assert report["checks"]["database"]["ok"] is False
    assert report["checks"]["queue"] == {"ok": False, "error": "database down"}


def test_health_needs_no_login_and_is_never_cached(client, db):
    response = client.get(reverse("healthz"))
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.system
@pytest.mark.django_db(transaction=True)
def test_health_includes_the_simulator_once_an_account_uses_it(
    client, system_a, settings, tmp_path
):
    from tests.support import engine

    engine.account(system_a, "alfa_omsorg", None)
    with engine.simulator(tmp_path) as sim, worker_cluster():
        settings.SIMULATOR_PORT = sim.port
        report = _wait_for(client, 200)
        assert report["checks"]["simulator"] == {"ok": True}
    report = _wait_for(client, 503)
    assert report["checks"]["simulator"]["ok"] is False


@pytest.mark.system
def test_a_probe_that_resets_after_the_key_exchange_is_no_error_of_the_simulator(tmp_path, caplog):
    """The probe hangs up once it has the host key; where the hang-up reaches the simulator as a
    reset, paramiko's line for it is kept at INFO, not written as an error."""
    from tests.support import engine

    with engine.simulator(tmp_path) as sim, caplog.at_level(logging.INFO):
        probe = socket.create_connection(("127.0.0.1", sim.port))
        # Closed with a linger of 0 the socket sends a reset, as a close with unread bytes does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport = paramiko.Transport(probe)
        transport.start_client(timeout=10)
        transport.close()
        deadline = time.monotonic() + 10
        while not _resets(caplog) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert _resets(caplog)
    assert {record.levelname for record in _resets(caplog)} == {"INFO"}
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def _resets(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "Connection reset by peer" in r.getMessage()]


@pytest.mark.system
@pytest.mark.django_db(transaction=True)
def test_anyone_else_learns_only_ok_or_not_ok(client, staff_a, operator, settings):
    anonymous, staff, kombit = Client(), Client(), Client()
    staff.force_login(staff_a)
    kombit.force_login(operator)

    def answers(expected: int) -> list[dict]:
        deadline = time.monotonic() + 30
        while (response := anonymous.get(reverse("healthz"))).status_code != expected:
            assert time.monotonic() < deadline, response.json()
            time.sleep(0.25)
        return [c.get(reverse("healthz")).json() for c in (anonymous, staff, kombit)]

    with worker_cluster():
        assert answers(200) == [{"status": "ok"}] * 3
    assert answers(503) == [{"status": "not ok"}] * 3
    # A superuser who has not yet entered the code is told no more than anyone.
    settings.TWO_FACTOR_REQUIRED = True
    assert client.get(reverse("healthz")).json() == {"status": "not ok"}


def test_livez_answers_without_the_database(client):
    with database_away(), CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("livez"))
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert len(queries) == 0


@pytest.mark.django_db(transaction=True)
def test_readyz_follows_the_database_and_not_the_workers(client):
    # No worker cluster runs: /healthz says not ok, but the web node is ready for requests.
    assert client.get(reverse("healthz")).status_code == 503
    ready = client.get(reverse("readyz"))
    assert (ready.status_code, ready.json()["status"]) == (200, "ok")
    assert ready.json()["checks"]["database"]["ok"] is True  # staff see what was asked
    assert Client().get(reverse("readyz")).json() == {"status": "ok"}

    with database_away():
        refused = client.get(reverse("readyz"))
    # No exception text for anyone, staff included: their session cannot be read either.
    assert (refused.status_code, refused.json()) == (503, {"status": "not ok"})


@pytest.mark.system
def test_a_plain_http_probe_is_answered_in_production_where_pages_are_redirected(tmp_path):
    """Also before `migrate` has made the tables: a node started too early is not ok, not a 500."""
    probe = (
        "from django.test import Client\n"
        "for path in ('/livez', '/readyz', '/healthz', '/login/'):\n"
        "    print(path, Client(HTTP_HOST='fdd.example.dk').get(path).status_code)\n"
    )
    result = run_manage(
        "shell",
        "-c",
        probe,
        DEBUG="false",
        SECRET_KEY="a-production-like-secret-key-for-this-test-only-0123456789",
        SFTP_KEY_ENCRYPTION_KEY="eJ9c5m0TTKQ3YgNG4Cv0r1z6kx3Q7cV2yX8hLw1uE6A=",
        ALLOWED_HOSTS="fdd.example.dk",
        LOG_LEVEL="ERROR",
        PORTAL_DATA_DIR=str(tmp_path),
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("/")]
    answers = dict(line.split() for line in lines)
    assert len(answers) == 4, result.stdout + result.stderr
    assert answers["/livez"] == "200"
    assert answers["/readyz"] == "200"
    assert answers["/healthz"] == "503"  # the database has no tables yet: not ok, and no 500
    assert answers["/login/"] == "301"  # everything else still goes to HTTPS
