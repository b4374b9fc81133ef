"""Received files of the token's IT system: list the new ones, download one, acknowledge it."""

import base64
from pathlib import Path as FilePath

from django.http import FileResponse, Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from ninja import Path, Query, Router

from handoff.api import scope
from handoff.api.errors import ApiError, only_query
from handoff.api.schemas import MAX_ID, Error, Invalid, ReceivedFileOut, ReceivedPage
from portal.audit.log import record
from portal.audit.models import AuditEvent
from transfers.downloads import content_disposition
from transfers.models import ReceivedFile

router = Router(tags=["received files"])

CONTENT = {
    "responses": {
        200: {
            "description": "The file, streamed.",
            "headers": {
                "X-Content-SHA256": {
                    "description": "SHA-256 of the file, hex.",
                    "schema": {"type": "string"},
                },
                "Digest": {
                    "description": "RFC 3230: sha-256=<base64>.",
                    "schema": {"type": "string"},
                },
            },
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    }
}


def received_out(received: ReceivedFile) -> dict:
    return {
        "id": received.pk,
        "file_name": received.remote_name,
        "size": received.size,
        "sha256": received.sha256,
        "received_at": received.received_at,
        "acknowledged_at": received.acknowledged_at,
        "route": received.route_id,
        "infref": received.infref_name,
        "sender": received.sender_username,
        "file_transfer_uuid": received.file_transfer_uuid,
        "file_deleted_at": received.file_deleted_at,
    }


@router.get(
    "/received-files",
    summary="List received files",
    operation_id="list_received_files",
    response={200: ReceivedPage, 401: Error, 422: Invalid},
)
@only_query("new", "after", "limit")
def list_received(
    request: HttpRequest,
    new: bool = Query(True, description="Only files not yet acknowledged."),
    after: int = Query(0, ge=0, le=MAX_ID, description="Files with a larger id than this."),
    limit: int = Query(50, ge=1, le=200),
):
    """Files fetched for the token's IT system, oldest first: the order to take them in."""
    received = scope.received_files(request.auth).filter(pk__gt=after)
    if new:
        received = received.filter(acknowledged_at__isnull=True)
    rows = list(received.order_by("pk")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [received_out(r) for r in rows], "next_after": rows[-1].pk if more else None}


@router.get(
    "/received-files/{file_id}",
    summary="Read a received file",
    operation_id="read_received_file",
    response={200: ReceivedFileOut, 401: Error, 404: Error, 422: Invalid},
)
@only_query()
def read_received(request: HttpRequest, file_id: int = Path(..., ge=1, le=MAX_ID)):
    return received_out(get_object_or_404(scope.received_files(request.auth), pk=file_id))


@router.get(
    "/received-files/{file_id}/content",
    summary="Download a received file",
    operation_id="download_received_file",
    response={401: Error, 404: Error, 410: Error, 422: Invalid},
    openapi_extra=CONTENT,
)
@only_query()
def download_received(request: HttpRequest, file_id: int = Path(..., ge=1, le=MAX_ID)):
    """The file itself, streamed, with its SHA-256 in `X-Content-SHA256` and `Digest`."""
    principal = request.auth
    received = get_object_or_404(scope.received_files(principal), pk=file_id)
    if received.file_deleted_at is not None:
        raise ApiError(
            410,
            "file_deleted",
            f"The file was deleted at {received.file_deleted_at.isoformat()}, after the "
            "retention period; its record and SHA-256 remain.",
        )
    path = FilePath(received.stored_path)
    if not path.is_file():
        raise Http404
    # Bytes, whatever the name suggests: the client decides what the file is.
    response = FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=received.remote_name,
        content_type="application/octet-stream",
    )
    response["Content-Disposition"] = content_disposition(received.remote_name)
    response["X-Content-SHA256"] = received.sha256
    response["Digest"] = "sha-256=" + base64.b64encode(bytes.fromhex(received.sha256)).decode()
    add_never_cache_headers(response)
    route = received.route
    record(
        None,
        AuditEvent.Action.DOWNLOAD,
        received,
        concerns=[principal.it_system.vendor, route.municipality if route else None],
        via="API",
        token=principal.token.fingerprint,
    )
    return response


@router.post(
    "/received-files/{file_id}/acknowledge",
    summary="Acknowledge a received file",
    operation_id="acknowledge_received_file",
    response={200: ReceivedFileOut, 401: Error, 403: Error, 404: Error, 422: Invalid},
)
@only_query()
def acknowledge_received(request: HttpRequest, file_id: int = Path(..., ge=1, le=MAX_ID)):
    """Mark the file as taken: it leaves the list of new files. Acknowledging twice is harmless."""
    received = scope.received_to_change(request.auth, file_id)
    ReceivedFile.objects.filter(pk=received.pk, acknowledged_at__isnull=True).update(
        acknowledged_at=timezone.now()
    )
    received.refresh_from_db()
    return received_out(received)
