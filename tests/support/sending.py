"""Sending on a ready route (tests/support/engine.py) and looking at what came of it: a file
queued, the transfer's page as text, the platform's folders on disk, and the metadata the
platform delivers beside a file in a receiver's inbox.
"""

import html
import io
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

from django.urls import reverse

from tests.support.engine import RECEIVER, ReadyRoute
from transfers import protocol
from transfers.models import Transfer
from transfers.queueing import queue_send

DATA = "kommunekode;cpr;navn\r\n751;0101011234;Åse Ørsted\r\n".encode() * 800


def queue(route, user, data: bytes = DATA) -> Transfer:
    return queue_send(route, io.BytesIO(data), original_name="borgere.csv", user=user)


def page(client, transfer: Transfer) -> str:
    """The transfer's page, as text."""
    response = client.get(reverse("transfers:detail", args=[transfer.pk]))
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def files(folder: Path) -> list[str]:
    return sorted(os.listdir(folder)) if folder.exists() else []


def inbox(ready: ReadyRoute) -> list[str]:
    """What waits in the receiving account's IN/ on the simulator."""
    return files(ready.sim.data_dir / RECEIVER / "IN")


def metadata_for(route, name: str, size: int) -> bytes:
    """The metadata the platform writes beside a file it delivers on `route`."""
    return protocol.build_metadata(
        protocol.Metadata(
            file_transfer_uuid=uuid.uuid4(),
            descriptor=protocol.FileDescriptor(
                file_name=name,
                size=size,
                sender="alfa_omsorg",
                recipients=(protocol.ROUTING_RECIPIENT,),
            ),
            routing=protocol.RoutingInfo(
                infref=route.infref.name,
                sender_it_system=route.sender.uuid,
                sender_authority_cvr=route.municipality.cvr,
                transaction_id=uuid.uuid4(),
                sender_timestamp=datetime.now(UTC),
                recipient_authority_cvr=route.municipality.cvr,
                recipient_it_system=route.receiver.uuid,
            ),
        )
    )
