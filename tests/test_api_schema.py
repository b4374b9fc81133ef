"""The API against its own OpenAPI document: schemathesis calls every operation in-process
through the WSGI application and checks status codes, content types and bodies."""

import gc
import io
import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from ninja.responses import NinjaJSONEncoder
from schemathesis.specs.openapi.checks import positive_data_acceptance

from handoff.api import api
from tests.support.handoff_setup import ready_fixture, received_file, token_for  # noqa: F401
from transfers.queueing import queue_send

MAX_EXAMPLES = 8  # per operation: enough to walk each one, bounded for the CI's two passes


@pytest.fixture
def in_process(settings):
    """WSGI calls inside the test's transaction.

    Django closes a connection left in a transaction at the end of each request; the test
    client avoids that by unhooking these signals, and so must a WSGI client.
    """
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost"]  # schemathesis's Host
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
        # The WSGI client leaves responses open, so Django never closed their uploads;
        # collected now, they delete their temporary files.
        gc.collect()


@pytest.fixture
def token(ready, system_a, system_b, tmp_path):
    """A sending IT system's token, with a transfer and a received file for it to find."""
    queue_send(ready.route, io.BytesIO(b"751;x\r\n"), original_name="a.csv")
    # The sender also receives here, so every operation has something real to reach.
    system_a.is_receiver = True
    system_a.save()
    received_file(ready.sender, ready.route, tmp_path, b"data", "b.csv")
    return token_for(system_a)


# The document the portal serves at /api/v1/openapi.json (checked below), loaded as a dict:
# schemathesis's lazy loader from a fixture does not run on this pytest.
DOCUMENT = json.loads(json.dumps(api.get_openapi_schema(), cls=NinjaJSONEncoder))
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.app = get_wsgi_application()  # every call goes in-process, through the whole stack


def test_the_served_document_is_the_one_tested(client, token):
    served = client.get("/api/v1/openapi.json", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert served.json() == DOCUMENT


@schema.parametrize()
@hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_every_operation_answers_as_documented(case, token, in_process):
    excluded = []
    if case.operation.path == "/api/v1/transfers":
        # The list's form also checks what a schema cannot say (the last day after the first,
        # a date in 1900-9998, 30 February): such a request is refused (422) on purpose.
        excluded.append(positive_data_acceptance)
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, excluded_checks=excluded)
