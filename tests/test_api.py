"""The REST API: queue a file once per Idempotency-Key, follow it, take received files."""

import base64
import hashlib
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import translation

from handoff import sending, uploads
from handoff.models import ApiSend
from portal.audit.models import AuditEvent
from tests.support.handoff_setup import bearer, ready_fixture, received_file, token_for  # noqa: F401
from transfers.models import ReceivedFile, Route, Transfer

DATA = b"kommunekode;cpr\r\n751;0101011234\r\n" * 100
API = "/api/v1"


def outgoing() -> set[Path]:
    folder = Path(settings.TRANSFER_DATA_DIR) / "outgoing"
    return set(folder.iterdir()) if folder.exists() else set()


def left_in_uploads() -> set[Path]:
    folder = uploads.upload_directory()
    return set(folder.iterdir()) if folder.exists() else set()


def send(client, token, route_id, data=DATA, name="borgere.csv", key=None, **extra):
    headers = bearer(token) | extra
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return client.post(
        f"{API}/routes/{route_id}/transfers",
        {"file": SimpleUploadedFile(name, data)},
        **headers,
    )


@pytest.fixture
def token_a(ready, system_a, staff_a):
    return token_for(system_a, staff_a)


@pytest.fixture
def token_b(ready, system_b, staff_b):
    return token_for(system_b, staff_b)


def test_a_file_is_queued_and_can_be_followed(client, ready, token_a):
    before = left_in_uploads()
    response = send(client, token_a, ready.route.pk, key="k-1")
    assert response.status_code == 201, response.content
    body = response.json()
    transfer = Transfer.objects.get()
    assert body["id"] == transfer.pk
    assert response["Location"] == f"{API}/transfers/{transfer.pk}"
    assert (body["state"], body["size"], body["file_name"]) == ("queued", len(DATA), "borgere.csv")
    assert body["sha256"] == hashlib.sha256(DATA).hexdigest() == transfer.sha256
    assert Path(transfer.payload).read_bytes() == DATA
    # Moved, not copied: nothing is left among the uploads.
    assert left_in_uploads() == before
    event = AuditEvent.objects.get(action=AuditEvent.Action.SEND)
    assert event.details["via"] == "API" and event.details["token"].startswith("fdd_")

    followed = client.get(response["Location"], **bearer(token_a)).json()
    assert followed["state"] == "queued"
    assert (followed["attempts"], followed["receipt_xml"], followed["last_error"]) == (0, "", "")


def test_a_retry_with_the_same_key_and_file_gets_the_same_transfer(client, ready, token_a):
    before = outgoing()
    first = send(client, token_a, ready.route.pk, key="nightly-2026-11-30")
    again = send(client, token_a, ready.route.pk, key="nightly-2026-11-30")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert Transfer.objects.count() == ApiSend.objects.count() == 1
    assert outgoing() - before == {Path(Transfer.objects.get().payload)}


def test_the_same_key_with_another_file_or_route_is_refused(client, ready, token_a):
    assert send(client, token_a, ready.route.pk, key="k").status_code == 201
    other_content = send(client, token_a, ready.route.pk, data=DATA + b"x", key="k")
    assert other_content.status_code == 409
    assert other_content.json()["code"] == "idempotency_key_reused"
    assert "content" in other_content.json()["detail"]
    other_route = send(client, token_a, ready.routes["461"].pk, key="k")
    assert other_route.status_code == 409
    assert "route" in other_route.json()["detail"]
    assert Transfer.objects.count() == 1


def test_a_retry_that_races_the_first_call_keeps_one_transfer(client, ready, token_a, monkeypatch):
    before = outgoing()
    assert send(client, token_a, ready.route.pk, key="raced").status_code == 201
    # The second call looked before the first had recorded its key, as two calls at once do.
    looked = []
    real = sending.earlier_send

    def not_yet(principal, key):
        looked.append(key)
        return None if len(looked) <= 2 else real(principal, key)

    monkeypatch.setattr(sending, "earlier_send", not_yet)
    again = send(client, token_a, ready.route.pk, key="raced")
    assert again.status_code == 200, again.content
    assert Transfer.objects.count() == 1
    assert outgoing() - before == {Path(Transfer.objects.get().payload)}


def test_without_a_key_each_call_queues(client, ready, token_a):
    assert send(client, token_a, ready.route.pk).status_code == 201
    assert send(client, token_a, ready.route.pk).status_code == 201
    assert Transfer.objects.count() == 2


@pytest.mark.parametrize("key", ["", "æøå", "a b", "x" * 256])
def test_a_malformed_key_is_refused(client, ready, token_a, key):
    response = send(client, token_a, ready.route.pk, key=key)
    assert response.status_code == 422
    assert Transfer.objects.count() == 0


def test_a_blocked_route_is_refused_with_every_blocker(client, ready, token_a):
    Route.objects.filter(pk=ready.route.pk).update(state=Route.State.SUSPENDED)
    with translation.override("en"):
        response = send(client, token_a, ready.route.pk, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "route_blocked"
    assert body["blockers"] == ["The route is Suspended, not established."]
    assert Transfer.objects.count() == 0

    readiness = client.get(f"{API}/routes/{ready.route.pk}/readiness", **bearer(token_a))
    assert readiness.json()["ready"] is False


def test_readiness_of_a_ready_route(client, ready, token_a, token_b):
    for token in (token_a, token_b):  # the receiving IT system may ask too
        body = client.get(f"{API}/routes/{ready.route.pk}/readiness", **bearer(token)).json()
        assert body == {"route": ready.route.pk, "ready": True, "blockers": []}


def test_a_token_reaches_only_its_own_it_systems_routes(client, ready, token_b, vendor_a):
    from portal.itsystems.models import ItSystem

    # The receiving IT system's token may see the route but not send on it.
    response = send(client, token_b, ready.route.pk)
    assert response.status_code == 403
    # Another IT system of the sending vendor may not even see it.
    other = ItSystem.objects.create(
        uuid="0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d",
        name="Alfa Økonomi",
        vendor=vendor_a,
        is_sender=True,
    )
    token_other = token_for(other)
    assert send(client, token_other, ready.route.pk).status_code == 404
    assert client.get(f"{API}/routes", **bearer(token_other)).json()["items"] == []
    routes = client.get(f"{API}/routes", **bearer(token_b)).json()["items"]
    assert {route["id"] for route in routes} == {r.pk for r in ready.routes.values()}
    assert not any(route["sends"] for route in routes)


def test_empty_missing_and_too_large_files_are_refused(client, ready, token_a, monkeypatch):
    before = left_in_uploads()
    assert send(client, token_a, ready.route.pk, data=b"").status_code == 422
    missing = client.post(
        f"{API}/routes/{ready.route.pk}/transfers", {"other": "x"}, **bearer(token_a)
    )
    assert missing.status_code == 422
    monkeypatch.setattr(uploads, "MAX_FILE_BYTES", 1000)
    too_large = send(client, token_a, ready.route.pk, data=b"x" * 200_000)
    assert too_large.status_code == 413 and too_large.json()["code"] == "too_large"
    assert Transfer.objects.count() == 0
    assert left_in_uploads() == before


def test_the_list_takes_the_pages_filters_and_pages_by_cursor(
    client, ready, token_a, token_b, monkeypatch
):
    from transfers import listing

    monkeypatch.setattr(listing, "PAGE_SIZE", 3)
    for number in range(4):
        assert send(client, token_a, ready.route.pk, name=f"fil-{number}.csv").status_code == 201
    assert send(client, token_a, ready.routes["461"].pk, name="odense.csv").status_code == 201

    first = client.get(f"{API}/transfers", **bearer(token_a)).json()
    assert [t["file_name"] for t in first["items"]] == ["odense.csv", "fil-3.csv", "fil-2.csv"]
    assert first["newer"] is None
    second = client.get(f"{API}/transfers", {"cursor": first["older"]}, **bearer(token_a)).json()
    assert [t["file_name"] for t in second["items"]] == ["fil-1.csv", "fil-0.csv"]
    assert second["older"] is None

    by_route = client.get(f"{API}/transfers", {"route": ready.routes["461"].pk}, **bearer(token_a))
    assert [t["file_name"] for t in by_route.json()["items"]] == ["odense.csv"]
    searched = client.get(f"{API}/transfers", {"q": "fil-2"}, **bearer(token_a)).json()
    assert [t["file_name"] for t in searched["items"]] == ["fil-2.csv"]
    assert (
        client.get(f"{API}/transfers", {"state": "failed"}, **bearer(token_a)).json()["items"] == []
    )
    # The receiving IT system follows what is sent to it.
    assert len(client.get(f"{API}/transfers", **bearer(token_b)).json()["items"]) == 3

    backwards = client.get(
        f"{API}/transfers",
        {"queued_from": "2026-12-02", "queued_to": "2026-12-01"},
        **bearer(token_a),
    )
    assert backwards.status_code == 422
    assert backwards.json()["detail"][0]["loc"] == ["query", "queued_to"]
    # A filter given twice is refused, not read as whichever came last.
    twice = client.get(f"{API}/transfers?q=fil-2&q=odense", **bearer(token_a))
    assert twice.status_code == 422
    assert twice.json()["detail"][0]["loc"] == ["query", "q"]


def test_received_files_are_listed_downloaded_and_acknowledged(
    client, ready, token_a, token_b, tmp_path
):
    received = received_file(ready.receiver, ready.route, tmp_path, DATA, "a.csv")
    received_file(ready.receiver, ready.route, tmp_path, b"second", "b.csv")
    listed = client.get(f"{API}/received-files", **bearer(token_b)).json()
    assert [item["file_name"] for item in listed["items"]] == ["a.csv", "b.csv"]

    download = client.get(f"{API}/received-files/{received.pk}/content", **bearer(token_b))
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == DATA
    digest = hashlib.sha256(DATA)
    assert download["X-Content-SHA256"] == digest.hexdigest()
    assert download["Digest"] == "sha-256=" + base64.b64encode(digest.digest()).decode()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DOWNLOAD).count() == 1

    acknowledged = client.post(f"{API}/received-files/{received.pk}/acknowledge", **bearer(token_b))
    assert acknowledged.status_code == 200 and acknowledged.json()["acknowledged_at"]
    new = client.get(f"{API}/received-files", **bearer(token_b)).json()
    assert [item["file_name"] for item in new["items"]] == ["b.csv"]
    everything = client.get(f"{API}/received-files", {"new": "false"}, **bearer(token_b)).json()
    assert len(everything["items"]) == 2

    # The sending IT system's token does not reach the receiver's files.
    assert client.get(f"{API}/received-files/{received.pk}", **bearer(token_a)).status_code == 404
    assert client.get(f"{API}/received-files", **bearer(token_a)).json()["items"] == []


def test_a_file_deleted_after_retention_answers_gone(client, ready, token_b, tmp_path):
    from django.utils import timezone

    received = received_file(ready.receiver, ready.route, tmp_path, DATA, "a.csv")
    ReceivedFile.objects.filter(pk=received.pk).update(file_deleted_at=timezone.now())
    response = client.get(f"{API}/received-files/{received.pk}/content", **bearer(token_b))
    assert response.status_code == 410 and response.json()["code"] == "file_deleted"


def test_the_openapi_document_and_docs_are_for_users_and_tokens(
    client, client_for, staff_b, token_a, settings
):
    # Anonymous: a program is told how to authenticate, a person is sent to log in.
    refused = client.get(f"{API}/openapi.json")
    assert refused.status_code == 401 and refused.json()["code"] == "token_missing"
    assert refused["WWW-Authenticate"].startswith("Bearer")
    docs = client.get(f"{API}/docs")
    assert docs.status_code == 302 and docs["Location"] == "/login/?next=/api/v1/docs"
    unknown = client.get(f"{API}/docs", HTTP_AUTHORIZATION="Bearer fdd_not-a-token")
    assert unknown.status_code == 401 and unknown.json()["code"] == "token_unknown"

    document = client.get(f"{API}/openapi.json", **bearer(token_a))
    assert document.status_code == 200
    assert "/api/v1/routes/{route_id}/transfers" in document.json()["paths"]
    assert client.get(f"{API}/docs", **bearer(token_a)).status_code == 200
    logged_in = client_for(staff_b)
    assert logged_in.get(f"{API}/openapi.json").status_code == 200
    assert logged_in.get(f"{API}/docs").status_code == 200

    logged_in.logout()
    settings.API_DOCS_PUBLIC = True
    assert client.get(f"{API}/openapi.json").status_code == 200
    assert client.get(f"{API}/docs").status_code == 200


def test_upload_stays_out_of_memory(ready, token_a, client):
    # Any size goes to disk as it arrives: even a small upload is a file, hashed on the way.
    handler = uploads.PayloadUploadHandler()
    handler.new_file("file", "x.csv", "text/csv", 3)
    handler.receive_data_chunk(b"abc", 0)
    upload = handler.file_complete(3)
    assert Path(upload.temporary_file_path()).read_bytes() == b"abc"
    assert upload.sha256 == hashlib.sha256(b"abc").hexdigest()
    upload.close()
    assert not Path(upload.temporary_file_path()).exists()


def test_a_body_sent_in_chunks_is_told_to_send_its_length(client, ready, token_a):
    """WSGI gives the portal no body without a Content-Length: the file is not "missing"."""
    response = client.generic(
        "POST",
        f"{API}/routes/{ready.route.pk}/transfers",
        b"",
        content_type="multipart/form-data; boundary=x",
        HTTP_TRANSFER_ENCODING="chunked",
        **bearer(token_a),
    )
    assert response.status_code == 411
    assert response.json()["code"] == "length_required"
    assert not Transfer.objects.exists()
