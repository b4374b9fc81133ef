"""Log lines an operator can search: time, level, logger and message on each, as text or JSON,
with the request, user and transfer they were written for, also from the tasks a request queued.
"""

import io
import json
import logging
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from django_q.models import Task
from django_q.tasks import async_task

from portal import env
from portal.core import logs
from tests.support.handoff_setup import bearer, token_for
from tests.support.workers import ROOT, worker_cluster
from transfers import tasks
from transfers.queueing import queue_send

FRESH_ID = re.compile(r"[0-9a-f]{32}")
QUEUED = "written by a task a request queued"
test_log = logging.getLogger("portal.test")


# Views of a URLconf of the test's own (`urls`): a page that logs, one that reads its user
# first, one that fails and one that queues a task.


def say(request: HttpRequest) -> HttpResponse:
    test_log.warning("inside the view")
    return HttpResponse("said")


def whoami(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:  # as every portal page does
        test_log.warning("knows its user")
    return HttpResponse("known")


def fail(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("the view broke")


def queue(request: HttpRequest) -> HttpResponse:
    return HttpResponse(async_task("logging.warning", QUEUED))


urlpatterns = [
    path("say/", say),
    path("whoami/", whoami),
    path("fail/", fail),
    path("queue/", queue),
]


@pytest.fixture
def urls(settings):
    settings.ROOT_URLCONF = __name__


@pytest.fixture
def lines():
    """What the configured handler would write in JSON, as parsed objects, so far."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.ContextFilter())
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


def moment(stamp: str) -> datetime:
    parsed = datetime.fromisoformat(stamp)
    assert parsed.tzinfo is not None, stamp
    return parsed


def manage(tmp_path, *args: str, **environment: str) -> subprocess.CompletedProcess:
    """`manage.py` with the production settings module, on a data folder of its own."""
    clean = {
        name: value
        for name, value in os.environ.items()
        if name not in {"DATABASE_URL", "LOG_FORMAT", "LOG_LEVEL", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    clean.update(
        DJANGO_SETTINGS_MODULE="portal.settings",
        DEBUG="true",
        PORTAL_DATA_DIR=str(tmp_path / "data"),
        **environment,
    )
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


# Written by a process started with the portal's settings: what the configured handler prints.
LOGGING_CODE = """
import logging
logging.getLogger("portal.test").warning("written by %s", "the test")
logging.getLogger("django.request").warning("once")
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("portal.test").exception("it broke")
"""


@pytest.mark.system
def test_a_text_line_has_time_level_logger_and_message(tmp_path):
    result = manage(tmp_path, "shell", "-c", LOGGING_CODE)
    assert result.returncode == 0, result.stderr
    written = result.stderr.splitlines()
    [line] = [line for line in written if line.endswith("written by the test")]
    stamp, level, logger, message = line.split(" ", 3)
    assert (level, logger, message) == ("WARNING", "portal.test", "written by the test")
    assert moment(stamp).utcoffset() == timedelta(0)
    # Django's own handler would print its lines a second time, bare, with DEBUG on.
    [once] = [line for line in written if line.endswith("once")]
    assert once.split(" ")[1:] == ["WARNING", "django.request", "once"]
    broke = written.index(next(line for line in written if line.endswith("it broke")))
    assert written[broke].split(" ")[1:3] == ["ERROR", "portal.test"]
    assert written[broke + 1] == "Traceback (most recent call last):"
    assert "ZeroDivisionError: division by zero" in written[broke + 2 :]


@pytest.mark.system
def test_with_json_every_line_is_an_object_with_the_fields(tmp_path):
    result = manage(tmp_path, "shell", "-c", LOGGING_CODE, LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    objects = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    [line] = [o for o in objects if o["message"] == "written by the test"]
    assert set(line) == {"time", "level", "logger", "message"}
    assert (line["level"], line["logger"]) == ("WARNING", "portal.test")
    assert moment(line["time"]).utcoffset() == timedelta(0)
    assert len([o for o in objects if o["message"] == "once"]) == 1
    [broke] = [o for o in objects if o["message"] == "it broke"]
    assert broke["level"] == "ERROR"
    assert broke["exception"].startswith("Traceback (most recent call last):")
    assert broke["exception"].endswith("ZeroDivisionError: division by zero")


def _explode():
    password = "hunter2-in-a-local"  # noqa: F841 - a local a traceback must not show
    raise RuntimeError("boom")


def test_a_json_exception_is_the_traceback_text_and_nothing_more(rf):
    """Django puts the request on its records; its form data must not reach a line."""
    request = rf.post("/login/", {"username": "ada", "password": "hunter2-in-the-form"})
    try:
        _explode()
    except RuntimeError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "django.request", logging.ERROR, __file__, 1, "Internal Server Error: %s", ("/x",), exc_info
    )
    record.request, record.status_code = request, 500
    logs.ContextFilter().filter(record)
    line = logs.JsonFormatter().format(record)
    assert "hunter2" not in line
    entry = json.loads(line)
    assert set(entry) == {"time", "level", "logger", "message", "exception"}
    assert entry["exception"] == logging.Formatter().formatException(exc_info)


@pytest.mark.system
def test_an_unknown_log_format_stops_start_up_naming_it(tmp_path):
    result = manage(tmp_path, "check", LOG_FORMAT="xml")
    assert result.returncode != 0
    assert "LOG_FORMAT='xml'" in result.stderr
    assert "json" in result.stderr and "text" in result.stderr


def test_a_choice_is_read_strictly(monkeypatch):
    monkeypatch.setenv("SOME_CHOICE", "JSON")
    assert env.env_choice("SOME_CHOICE", "text", logs.FORMATS) == "json"
    monkeypatch.setenv("SOME_CHOICE", "yaml")
    with pytest.raises(ImproperlyConfigured, match="SOME_CHOICE='yaml'"):
        env.env_choice("SOME_CHOICE", "text", logs.FORMATS)


# The request id


def test_a_requests_lines_carry_its_id_and_the_response_returns_it(client, urls, lines):
    response = client.get("/say/", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"
    [line] = [line for line in lines() if line["message"] == "inside the view"]
    assert line["request_id"] == "abc-123"
    assert logs.current_request_id() is None  # over with the request


def test_without_an_id_a_request_gets_a_new_one_each(client, urls, lines):
    first, second = client.get("/say/"), client.get("/say/")
    assert FRESH_ID.fullmatch(first["X-Request-ID"])
    assert first["X-Request-ID"] != second["X-Request-ID"]
    said = [line["request_id"] for line in lines() if line["message"] == "inside the view"]
    assert said == [first["X-Request-ID"], second["X-Request-ID"]]


@pytest.mark.parametrize(
    "hostile", ["abc\nWARNING forged line", "x" * 10_000, "bjørn", "two words", ""]
)
def test_a_hostile_request_id_is_replaced_by_a_new_one(client, urls, lines, hostile):
    response = client.get("/say/", HTTP_X_REQUEST_ID=hostile)
    assert FRESH_ID.fullmatch(response["X-Request-ID"])
    [line] = [line for line in lines() if line["message"] == "inside the view"]
    assert line["request_id"] == response["X-Request-ID"]


def test_an_error_carries_the_id(urls, lines):
    failed = Client(raise_request_exception=False).get("/fail/", HTTP_X_REQUEST_ID="the-500")
    assert (failed.status_code, failed["X-Request-ID"]) == (500, "the-500")
    [line] = [line for line in lines() if line["message"] == "Internal Server Error: /fail/"]
    assert line["request_id"] == "the-500"
    assert "RuntimeError: the view broke" in line["exception"]


def test_a_page_not_found_carries_the_id(client, lines):
    # Django logs a 404 after every middleware has returned: the id is found on the request.
    missing = client.get("/nowhere/", HTTP_X_REQUEST_ID="the-404")
    assert (missing.status_code, missing["X-Request-ID"]) == (404, "the-404")
    [line] = [line for line in lines() if line["message"] == "Not Found: /nowhere/"]
    assert line["request_id"] == "the-404"


# Who asked


def test_a_logged_in_users_lines_carry_their_id(client_for, staff_a, urls, lines):
    client_for(staff_a).get("/whoami/", HTTP_X_REQUEST_ID="who")
    [line] = [line for line in lines() if line["message"] == "knows its user"]
    assert (line["request_id"], line["user_id"]) == ("who", staff_a.pk)


def test_logging_does_not_look_the_user_up(
    client_for, staff_a, urls, lines, django_assert_num_queries
):
    """A page that never reads its user (the health check) must not be made to, by a log line:
    the session and the user are in the database, which may be down."""
    client = client_for(staff_a)
    with django_assert_num_queries(0):
        client.get("/say/")
    [line] = [line for line in lines() if line["message"] == "inside the view"]
    assert "user_id" not in line


def test_an_api_calls_lines_carry_the_tokens_prefix(client, system_a, staff_a, lines):
    plain = token_for(system_a, staff_a)
    url = "/api/v1/received-files/999999"
    response = client.get(url, HTTP_X_REQUEST_ID="api-call", **bearer(plain))
    assert response.status_code == 404
    [line] = [line for line in lines() if line["message"] == f"Not Found: {url}"]
    assert (line["request_id"], line["api_token"]) == ("api-call", plain[:12])
    assert "user_id" not in line


# Tasks


def test_a_task_run_at_once_logs_the_requests_id_and_leaves_it_as_it_was(db, lines):
    with logs.request_context("the-request"):
        async_task("logging.warning", "run at once", sync=True)
        assert logs.current_request_id() == "the-request"
    async_task("logging.warning", "run outside a request", sync=True)
    assert logs.current_request_id() is None
    written = {line["message"]: line for line in lines()}
    assert written["run at once"]["request_id"] == "the-request"
    # Queued outside a request (as the schedule queues): an id of its own.
    assert FRESH_ID.fullmatch(written["run outside a request"]["request_id"])


@pytest.mark.system
@pytest.mark.django_db(transaction=True)
def test_a_task_queued_by_a_request_logs_its_id_in_a_worker(client, urls, tmp_path):
    queued = client.get("/queue/", HTTP_X_REQUEST_ID="queued-by-the-web").content.decode()
    on_its_own = async_task("logging.warning", "queued outside any request")
    output = tmp_path / "cluster.log"
    with worker_cluster(output=output, env={"LOG_FORMAT": "json", "Q_WORKERS": "1"}):
        deadline = time.monotonic() + 60
        while Task.objects.filter(id__in=[queued, on_its_own]).count() < 2:
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.25)
    # Log lines; a command's own output (the system check's) is printed as it is.
    logged = [line for line in output.read_text().splitlines() if line.startswith("{")]
    written = [json.loads(line) for line in logged]
    [line] = [line for line in written if line["message"] == QUEUED]
    assert (line["logger"], line["level"]) == ("root", "WARNING")
    assert line["request_id"] == "queued-by-the-web"
    [other] = [line for line in written if line["message"] == "queued outside any request"]
    assert FRESH_ID.fullmatch(other["request_id"])


def test_a_send_tasks_lines_carry_its_transfer_id(settings, lines, ready_route, staff_a):
    route = ready_route().route
    transfer = queue_send(route, io.BytesIO(b"a;b\r\n"), original_name="x.csv", user=staff_a)
    # The workers cannot decrypt the account's key: the send logs that it waits.
    settings.SFTP_KEY_ENCRYPTION_KEY = Fernet.generate_key().decode()
    assert tasks.send_transfer(transfer.pk) == "waiting for key"
    test_log.warning("after the task")
    written = {line["message"].split(":")[0]: line for line in lines()}
    assert written[f"transfer {transfer.pk} waits"]["transfer_id"] == transfer.pk
    assert "transfer_id" not in written["after the task"]
