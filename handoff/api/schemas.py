"""What the API answers, as it appears in the OpenAPI document."""

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from ninja import Field, Schema

from transfers.models import Environment, Route, Transfer

MAX_ID = 2**63 - 1  # the database's bigint; a larger id would overflow the query, not miss

DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"  # a day in Denmark, as YYYY-MM-DD
TransferState = Literal[tuple(Transfer.State.values)]
RouteState = Literal[tuple(Route.State.values)]
EnvironmentName = Literal[tuple(Environment.values)]


class Error(Schema):
    code: str = Field(description="A stable word for programs, e.g. token_expired.")
    detail: str = Field(description="What went wrong, for people.")


class Refusal(Error):
    blockers: list[str] = Field(
        default_factory=list, description="Each condition that keeps the route from sending."
    )


class Invalid(Schema):
    detail: list[dict[str, Any]] = Field(description="One entry per value that was not valid.")


class ItSystemOut(Schema):
    uuid: UUID
    name: str


class MunicipalityOut(Schema):
    name: str
    code: str
    cvr: str


class RouteOut(Schema):
    id: int
    environment: EnvironmentName
    state: RouteState
    infref: str
    sender: ItSystemOut
    receiver: ItSystemOut
    municipality: MunicipalityOut
    sends: bool = Field(description="The token's IT system sends on this route.")


class RoutePage(Schema):
    items: list[RouteOut]
    next_after: int | None = Field(description="Pass as `after` for the next page; null: done.")


class Readiness(Schema):
    route: int
    ready: bool
    blockers: list[str] = Field(description="Each onboarding or account condition that blocks.")


class TransferOut(Schema):
    id: int
    route: int
    state: TransferState
    file_name: str
    size: int
    sha256: str
    remote_name: str
    senders_file_id: UUID
    transaction_id: UUID
    file_transfer_uuid: UUID | None = Field(description="KOMBIT's id, from the receipt.")
    attempts: int
    bytes_done: int
    queued_at: datetime
    started_at: datetime | None
    sent_at: datetime | None
    finished_at: datetime | None
    last_error: str
    error_code: int | None = Field(description="KOMBIT's error code from a failed receipt.")
    error_text: str


class TransferDetail(TransferOut):
    receipt_xml: str = Field(description="KOMBIT's receipt, as received; empty until then.")


class TransferPage(Schema):
    items: list[TransferOut]
    newer: str | None = Field(description="Cursor of the page of newer transfers.")
    older: str | None = Field(description="Cursor of the page of older transfers.")


class TransferQuery(Schema):
    """The transfer list's filters, as on the page."""

    q: str | None = Field(None, max_length=255, description="Part of a name, or a platform id.")
    state: TransferState | None = None
    route: int | None = Field(None, ge=1, le=MAX_ID)
    infref: int | None = Field(None, ge=1, le=MAX_ID)
    municipality: int | None = Field(None, ge=1, le=MAX_ID)
    sender: int | None = Field(None, ge=1, le=MAX_ID, description="Sending IT system's id.")
    receiver: int | None = Field(None, ge=1, le=MAX_ID, description="Receiving IT system's id.")
    # Strings the list's own form reads as dates: pydantic would take a number as a timestamp.
    queued_from: str | None = Field(
        None, pattern=DATE, json_schema_extra={"format": "date"}, description="First day queued."
    )
    queued_to: str | None = Field(
        None, pattern=DATE, json_schema_extra={"format": "date"}, description="Last day queued."
    )
    cursor: str | None = Field(None, max_length=96, description="`newer` or `older` of a page.")

    def form_data(self) -> dict[str, str]:
        """As the list page's GET parameters, for `transfers.list_filters.TransferFilter`."""
        return {
            name: str(value)
            for name, value in self.dict(exclude={"cursor"}).items()
            if value is not None
        }


class ReceivedFileOut(Schema):
    id: int
    file_name: str
    size: int | None
    sha256: str
    received_at: datetime
    acknowledged_at: datetime | None = Field(description="Null while the file is new.")
    route: int | None
    infref: str
    sender: str = Field(description="The sending SFTP user, from the metadata.")
    file_transfer_uuid: UUID | None
    file_deleted_at: datetime | None = Field(
        description="Set when the retention period removed the file; the record stays."
    )


class ReceivedPage(Schema):
    items: list[ReceivedFileOut]
    next_after: int | None = Field(description="Pass as `after` for the next page; null: done.")
