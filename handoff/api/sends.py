"""Routes, their readiness, and transfers: queue a file, follow it, list them as the page does."""

import contextlib

from django.core.exceptions import SuspiciousOperation, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import get_object_or_404
from django.urls import reverse
from ninja import Header, Path, Query, Router, Status

from handoff import sending
from handoff.api import scope
from handoff.api.errors import ApiError, Invalid, only_query
from handoff.api.schemas import (
    MAX_ID,
    Error,
    Readiness,
    Refusal,
    RoutePage,
    TransferDetail,
    TransferPage,
    TransferQuery,
)
from handoff.api.schemas import (
    Invalid as InvalidOut,
)
from handoff.uploads import FIELD, PayloadUploadHandler
from transfers import list_filters, listing
from transfers.models import Route, Transfer
from transfers.queueing import MAX_FILE_BYTES, check_route, route_blockers

router = Router(tags=["transfers"])
KEY_CHARACTERS = frozenset(chr(code) for code in range(0x21, 0x7F))  # visible ASCII
# Boundaries and part headers around the file: a few hundred bytes in practice.
MULTIPART_ENVELOPE_BYTES = 64 * 1024

UPLOAD = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FIELD],
                    "properties": {
                        FIELD: {
                            "type": "string",
                            "format": "binary",
                            "description": "The data file for the route's municipality, "
                            "at most 2 GB; its name becomes the transfer's file name.",
                        }
                    },
                }
            }
        },
    }
}


def route_out(route: Route, it_system_id: int) -> dict:
    municipality = route.municipality
    return {
        "id": route.pk,
        "environment": route.environment,
        "state": route.state,
        "infref": route.infref.name,
        "sender": {"uuid": route.sender.uuid, "name": route.sender.name},
        "receiver": {"uuid": route.receiver.uuid, "name": route.receiver.name},
        "municipality": {
            "name": municipality.name,
            "code": municipality.municipality_code or "",
            "cvr": municipality.cvr,
        },
        "sends": route.sender_id == it_system_id,
    }


def transfer_out(transfer: Transfer, *, detail: bool = False) -> dict:
    out = {
        "id": transfer.pk,
        "route": transfer.route_id,
        "state": transfer.state,
        "file_name": transfer.original_name,
        "size": transfer.size,
        "sha256": transfer.sha256,
        "remote_name": transfer.remote_name,
        "senders_file_id": transfer.senders_file_id,
        "transaction_id": transfer.transaction_id,
        "file_transfer_uuid": transfer.file_transfer_uuid,
        "attempts": transfer.attempts,
        "bytes_done": transfer.bytes_done,
        "queued_at": transfer.queued_at,
        "started_at": transfer.started_at,
        "sent_at": transfer.sent_at,
        "finished_at": transfer.finished_at,
        "last_error": transfer.last_error,
        "error_code": transfer.error_code,
        "error_text": transfer.error_text,
    }
    if detail:
        out["receipt_xml"] = transfer.receipt_xml
    return out


@router.get(
    "/routes",
    summary="List the routes",
    operation_id="list_routes",
    response={200: RoutePage, 401: Error, 422: InvalidOut},
)
@only_query("after", "limit")
def list_routes(
    request: HttpRequest,
    after: int = Query(0, ge=0, le=MAX_ID, description="Routes with a larger id than this."),
    limit: int = Query(100, ge=1, le=500),
):
    """The routes the token's IT system sends or receives on, by id."""
    principal = request.auth
    rows = list(scope.routes(principal).filter(pk__gt=after).order_by("pk")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [route_out(route, principal.it_system_id) for route in rows],
        "next_after": rows[-1].pk if more else None,
    }


@router.get(
    "/routes/{route_id}/readiness",
    summary="Read a route's readiness",
    operation_id="read_route_readiness",
    response={200: Readiness, 401: Error, 404: Error, 422: InvalidOut},
)
@only_query()
def route_readiness(request: HttpRequest, route_id: int = Path(..., ge=1, le=MAX_ID)):
    """Whether the route may carry a send now, and if not, every condition that blocks it."""
    route = get_object_or_404(scope.routes(request.auth), pk=route_id)
    blockers = route_blockers(route)
    return {"route": route.pk, "ready": not blockers, "blockers": blockers}


def _key(value: str | None) -> str:
    if value is None:
        return ""
    if not value or not set(value) <= KEY_CHARACTERS:
        raise Invalid(
            ("header", "Idempotency-Key"),
            "The Idempotency-Key must be 1 to 255 visible ASCII characters, e.g. a UUID.",
        )
    return value


def _too_large() -> ApiError:
    return ApiError(
        413,
        "too_large",
        f"The file is larger than {MAX_FILE_BYTES // 10**9} GB, which KOMBIT advises against.",
    )


def _upload(request: HttpRequest) -> UploadedFile:
    """The file, written to disk as it arrives; only now is the request body read."""
    # A body announced larger than any file allowed, with the multipart envelope around it, is
    # refused before a byte is read: the server would otherwise sit waiting for all of it.
    declared = request.META.get("CONTENT_LENGTH", "")
    if declared.isdigit() and int(declared) > MAX_FILE_BYTES + MULTIPART_ENVELOPE_BYTES:
        raise _too_large()
    if declared in ("", "0") and "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        # WSGI hands the application no body without a length: the file would look missing.
        raise ApiError(
            411,
            "length_required",
            "Send the file with a Content-Length header; a body sent in chunks is not read.",
        )
    handler = PayloadUploadHandler(request)
    # Refused when something read the body already: Django's handlers have it then, and
    # queue_send copies their file instead of moving ours.
    with contextlib.suppress(AttributeError):
        request.upload_handlers = [handler]
    try:
        upload = request.FILES.get(FIELD)
    except (MultiPartParserError, SuspiciousOperation) as error:
        raise Invalid(("body",), f"The multipart body cannot be read: {error}") from None
    if handler.too_large:
        raise _too_large()
    if upload is None:
        raise Invalid(("body", FIELD), f"Send the file as the multipart/form-data field '{FIELD}'.")
    if upload.size == 0:
        raise Invalid(("body", FIELD), "The file is empty.")
    return upload


@router.post(
    "/routes/{route_id}/transfers",
    summary="Queue a file on a route",
    operation_id="queue_transfer",
    response={
        200: TransferDetail,
        201: TransferDetail,
        401: Error,
        403: Error,
        404: Error,
        409: Refusal,
        411: Error,
        413: Error,
        422: InvalidOut,
    },
    openapi_extra=UPLOAD,
)
@only_query()
def queue_transfer(
    request: HttpRequest,
    response: HttpResponse,
    route_id: int = Path(..., ge=1, le=MAX_ID),
    idempotency_key: str | None = Header(
        None,
        alias="Idempotency-Key",
        max_length=255,
        description="Any unique value per file, e.g. a UUID. A retry with the same key and "
        "the same file answers 200 with the first transfer; with another file, 409.",
    ),
):
    """Queue a file on a route: 201 with the new transfer, or 200 with the one the key made."""
    principal = request.auth
    route = scope.route_to_send_on(principal, route_id)
    key = _key(idempotency_key)
    checked = None
    if sending.earlier_send(principal, key) is None:
        # Refused before a byte of the file is read; a replay is answered even if the route
        # has been blocked since.
        checked = check_route(route)
        if checked.blockers:
            blockers = checked.blockers
            raise ApiError(409, "route_blocked", " ".join(blockers), blockers=blockers)
    upload = _upload(request)
    try:
        queued = sending.queue_from_api(principal, route, upload, key, checked=checked)
    except sending.KeyReused as error:
        raise ApiError(409, "idempotency_key_reused", str(error)) from None
    except ValidationError as error:
        raise ApiError(
            409, "route_refused", " ".join(error.messages), blockers=error.messages
        ) from None
    transfer = queued.transfer
    response["Location"] = reverse("api-v1:transfer", args=[transfer.pk])
    if queued.replayed:
        response["Idempotent-Replayed"] = "true"
        return Status(200, transfer_out(transfer, detail=True))
    return Status(201, transfer_out(transfer, detail=True))


@router.get(
    "/transfers",
    summary="List transfers",
    operation_id="list_transfers",
    response={200: TransferPage, 401: Error, 422: InvalidOut},
)
@only_query(*TransferQuery.model_fields)
def list_transfers(request: HttpRequest, filters: Query[TransferQuery]):
    """Newest first, 50 a page, with the transfer list's filters; follow `older` for more."""
    form = list_filters.TransferFilter(filters.form_data())
    if not form.is_valid():
        name, errors = next(iter(form.errors.items()))
        raise Invalid(("query", name), " ".join(errors))
    transfers = list_filters.apply_filters(scope.transfers(request.auth), form.values)
    page = listing.read_page(transfers, filters.cursor or "")
    return {
        "items": [transfer_out(transfer) for transfer in page.rows],
        "newer": page.newer or None,
        "older": page.older or None,
    }


@router.get(
    "/transfers/{transfer_id}",
    summary="Read a transfer",
    operation_id="read_transfer",
    response={200: TransferDetail, 401: Error, 404: Error, 422: InvalidOut},
    url_name="transfer",
)
@only_query()
def read_transfer(request: HttpRequest, transfer_id: int = Path(..., ge=1, le=MAX_ID)):
    """State, attempts, the receipt and any error of one transfer."""
    transfer = get_object_or_404(scope.transfers(request.auth), pk=transfer_id)
    return transfer_out(transfer, detail=True)
