"""What the hand-off commands share: their exit codes and waiting for transfers to settle."""

import time
from collections.abc import Callable, Iterable

from django.core.management.base import CommandError

from transfers.models import Transfer

# Documented in docs/api.md; scripts and schedulers on the vendor's side test these.
OK = 0  # queued (or, with --wait, delivered); fetched
FAILED = 1  # a transfer failed or was cancelled; the fetch failed
REFUSED = 2  # usage error, or the portal refused: no such route, route blocked, bad file
TIMEOUT = 3  # --wait ran out before every transfer was final

POLL_SECONDS = 1.0


class Refused(CommandError):
    def __init__(self, message: str):
        super().__init__(message, returncode=REFUSED)


def wait_for(
    transfer_ids: Iterable[int],
    timeout: float,
    *,
    report: Callable[[Transfer], None],
    poll: float = POLL_SECONDS,
) -> int:
    """Until every transfer is final (or has no receipt) or `timeout` passes; reports each as it
    settles. "No receipt" ends the wait as a failure: a person has to look."""
    pending = set(transfer_ids)
    failed = False
    deadline = time.monotonic() + timeout
    settled = Transfer.State.FINAL | {Transfer.State.NO_RECEIPT}
    while True:
        for transfer in Transfer.objects.filter(pk__in=pending, state__in=settled):
            pending.discard(transfer.pk)
            failed |= transfer.state != Transfer.State.DELIVERED
            report(transfer)
        if not pending:
            return FAILED if failed else OK
        if time.monotonic() >= deadline:
            return TIMEOUT
        time.sleep(poll)
