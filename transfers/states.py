"""A transfer's states, the moves between them, and `move`, the one place that writes a state.

Workers, the sweepers, receipt collectors and people act on the same row at the same time. Each
move is one conditional UPDATE from the state its caller saw, so when two of them race, one
moves the row and the other is told it did not, and stops: no move is lost or made twice.
"""

from collections.abc import Iterable

from django.db.models import Q, TextChoices
from django.utils.translation import gettext_lazy as _


class State(TextChoices):
    QUEUED = "queued", _("Queued")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    # Sent, but no readable receipt came in TRANSFER_RECEIPT_TIMEOUT_SECONDS: its owner may
    # send it again. A receipt that comes later still settles it.
    NO_RECEIPT = "no_receipt", _("No receipt")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


# No worker, sweeper or receipt moves the transfer any more: pages stop polling, --wait stops
# waiting, the local copy's retention starts. A person may still send a failed one again.
State.FINAL = frozenset({State.DELIVERED, State.FAILED, State.CANCELLED})
# The trigger is written: the platform may answer, so the receipt is looked for.
State.AWAITING_RECEIPT = frozenset({State.SENT, State.NO_RECEIPT})
# What its owner may send again.
State.RESUBMITTABLE = frozenset({State.FAILED, State.NO_RECEIPT})

MOVES: dict[State, frozenset[State]] = {
    State.QUEUED: frozenset(
        {
            State.SENDING,
            # Only before a worker has it: once claimed, the file may already be on the server.
            State.CANCELLED,
        }
    ),
    State.SENDING: frozenset(
        {
            State.SENT,
            # To be tried again: the platform refused the file or could not be reached, the
            # worker cannot decrypt the key, or the sweeper hands on a send whose worker died.
            State.QUEUED,
            State.FAILED,
        }
    ),
    State.SENT: frozenset(
        {
            State.DELIVERED,
            State.FAILED,
            # A "not now" error receipt: the platform dropped the file, it is sent anew.
            State.QUEUED,
            # No receipt in time, or one that cannot be read.
            State.NO_RECEIPT,
        }
    ),
    State.NO_RECEIPT: frozenset(
        {
            # A receipt that comes late still settles it.
            State.DELIVERED,
            State.FAILED,
            # Its owner sends it again, or a late "not now" receipt.
            State.QUEUED,
            # An unreadable receipt after the timeout: kept and alerted, still no receipt.
            State.NO_RECEIPT,
        }
    ),
    State.FAILED: frozenset({State.QUEUED}),  # its owner sends it again
    State.DELIVERED: frozenset(),
    State.CANCELLED: frozenset(),
}


class IllegalMove(Exception):
    """A bug: the code asked for a move the table does not allow."""


def allowed(from_state: str, to_state: str) -> bool:
    return to_state in MOVES.get(from_state, ())


def move(
    transfer_id: int,
    from_states: str | Iterable[str],
    to_state: str,
    *,
    where: Q | None = None,
    **fields,
) -> bool:
    """Move the transfer to `to_state`, writing `fields` with it, if it is still in one of
    `from_states` (the state its caller saw) and matches `where`; whether it moved.

    One UPDATE: of two callers that saw the same state, one moves the row, the other gets
    False and must leave the row alone. `where` pins what else the caller relies on, such as
    the attempt it claimed, when the row may have left that state and come back to it.
    A move the table does not allow raises IllegalMove, whatever the row's state.
    """
    if "state" in fields:
        raise IllegalMove("the state a move writes is its to_state, not one of its fields")
    sources = frozenset({from_states} if isinstance(from_states, str) else from_states)
    if not sources or not all(allowed(source, to_state) for source in sources):
        raise IllegalMove(
            f"transfer {transfer_id}: {' or '.join(sorted(sources)) or 'no state'} → {to_state} "
            "is not a move the table allows"
        )
    # Imported here: the model takes its State from this module.
    from transfers.models import Transfer

    rows = Transfer.objects.filter(pk=transfer_id, state__in=sources)
    if where is not None:
        rows = rows.filter(where)
    return rows.update(state=to_state, **fields) == 1
