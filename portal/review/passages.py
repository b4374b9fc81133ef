"""The files that flowed on a municipality's routes, one row per file: a transfer sent through
the portal together with the file it became at the receiver, matched by the platform's
FileTransferUUID, or a file received from a sender outside the portal.

The rows are listed newest first by keyset (`portal.core.paging`), from two sources: the
transfers, and the received files no transfer sent.
"""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from django.db.models import Exists, OuterRef, Q

from portal.core.paging import Key, Source
from portal.review.ran_under import RanUnder
from transfers.models import ReceivedFile, Route, Transfer

# The kinds of row in the list, by their sources' places in `file_sources`.
TRANSFERS, FROM_OUTSIDE = 0, 1
# Left out of the list: long texts the review does not show.
_TRANSFER_TEXTS = ("trigger_xml", "receipt_xml", "last_error", "error_text", "payload")


@dataclass
class FilePassage:
    """One file on its way from the sending to the receiving IT system: the transfer the portal
    sent together with the file the receiver fetched, or only one of them (the file is not
    fetched yet, or a system outside the portal sent it)."""

    route: Route
    transfer: Transfer | None = None
    received: ReceivedFile | None = None
    ran_under: RanUnder | None = None  # set by `ran_under.attach_ran_under`

    @property
    def moment(self) -> datetime:
        """When it flowed: queued in the portal, or else fetched by the receiver."""
        return self.transfer.queued_at if self.transfer else self.received.received_at

    @property
    def name(self) -> str:
        """The sender's name for the file; the platform's, if the portal never sent it."""
        return self.transfer.original_name if self.transfer else self.received.remote_name

    @property
    def size(self) -> int | None:
        return self.transfer.size if self.transfer else self.received.size

    @property
    def sha256(self) -> str:
        return self.transfer.sha256 if self.transfer else self.received.sha256

    @property
    def sent_at(self) -> datetime | None:
        """When the sending side last moved: finished (delivered or failed), sent, or queued."""
        transfer = self.transfer
        if transfer is None:
            return None
        return transfer.finished_at or transfer.sent_at or transfer.queued_at


def file_sources(route_ids: list[int]) -> list[Source]:
    """The transfers on the routes, and the files received on them that no transfer in the
    portal sent (none has their FileTransferUUID): the two kinds of row in the list.

    The rows are asked by route id, without the access rules: a reviewer acts for the
    municipality (or is a superuser), and the rules let them see every transfer and file on
    its routes; the rules' join to the routes made the database look up the route of each of
    the newest transfers of all municipalities to find this one's.
    """
    # By the id alone: asked for its route too, SQLite chose the index on the route and read
    # every transfer of the route for each file.
    sent_by_portal = Transfer.objects.filter(file_transfer_uuid=OuterRef("file_transfer_uuid"))
    return [
        Source(Transfer.objects.filter(route_id__in=route_ids), "queued_at"),
        Source(
            ReceivedFile.objects.filter(route_id__in=route_ids).filter(~Exists(sent_by_portal)),
            "received_at",
            prefix="r",
        ),
    ]


def _received_files(
    ids: list[int], file_transfer_uuids: list[UUID], route_ids: list[int]
) -> dict[int, ReceivedFile]:
    """The received files with these ids, or with these FileTransferUUIDs on these routes, by
    id: one query, through the index on each of the two."""
    if not ids and not file_transfer_uuids:
        return {}
    wanted = Q(pk__in=ids) | Q(file_transfer_uuid__in=file_transfer_uuids, route_id__in=route_ids)
    found = ReceivedFile.objects.filter(wanted).defer("metadata_xml").order_by()
    return {file.pk: file for file in found}


def read_passages(keys: list[Key], routes: dict[int, Route]) -> list[FilePassage]:
    """The rows of `keys`, each transfer with the file it became at the receiver: two queries.

    The platform gives the same FileTransferUUID to the sender's receipt and to the metadata
    the receiver fetches, so a transfer and its file are matched by it, for these transfers
    only. A file is looked for on `routes` only (its metadata names the route it came by, the
    transfer's own). Each row is given its route from `routes`, already read with its IT
    systems, instead of joining them in again.
    """
    transfers = Transfer.objects.defer(*_TRANSFER_TEXTS).in_bulk(
        [key.pk for key in keys if key.kind == TRANSFERS]
    )
    sent_uuids = [t.file_transfer_uuid for t in transfers.values() if t.file_transfer_uuid]
    outside_ids = [key.pk for key in keys if key.kind == FROM_OUTSIDE]
    received = _received_files(outside_ids, sent_uuids, list(routes))
    fetched = {f.file_transfer_uuid: f for f in received.values() if f.file_transfer_uuid}
    passages = []
    for key in keys:
        # Left out: a row deleted, or moved to a route not shown, since its key was read.
        if key.kind == TRANSFERS and key.pk in transfers:
            transfer = transfers[key.pk]
            if transfer.route_id in routes:
                passages.append(
                    FilePassage(
                        routes[transfer.route_id],
                        transfer=transfer,
                        received=fetched.get(transfer.file_transfer_uuid),
                    )
                )
        elif key.kind == FROM_OUTSIDE and key.pk in received:
            file = received[key.pk]
            if file.route_id in routes:
                passages.append(FilePassage(routes[file.route_id], received=file))
    return passages
