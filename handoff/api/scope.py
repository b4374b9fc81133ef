"""What a token may reach: the access rules' answer for its vendor, narrowed to its IT system.

Every query the API makes starts here, so the pages' rules (`portal.accounts.access`) decide
first and the token's IT system only ever takes rows away.
"""

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404

from handoff.tokens import TokenPrincipal
from portal.accounts.access import can_change, may_send_on, visible
from transfers import listing
from transfers.models import ReceivedFile, Route

ROUTES = Route.objects.select_related(
    "infref", "sender__vendor", "receiver__vendor", "municipality", "integration"
)


def routes(principal: TokenPrincipal) -> QuerySet:
    system = principal.it_system_id
    return visible(principal, ROUTES.all()).filter(Q(sender_id=system) | Q(receiver_id=system))


def transfers(principal: TokenPrincipal) -> QuerySet:
    system = principal.it_system_id
    return listing.transfers_seen(principal).filter(
        Q(route__sender_id=system) | Q(route__receiver_id=system)
    )


def received_files(principal: TokenPrincipal) -> QuerySet:
    return visible(
        principal,
        ReceivedFile.objects.select_related("account", "route__municipality", "route__receiver"),
    ).filter(account__it_system_id=principal.it_system_id, state=ReceivedFile.State.RECEIVED)


def route_to_send_on(principal: TokenPrincipal, pk: int) -> Route:
    """404 for a route the token cannot see, 403 for one its IT system does not send on."""
    route = get_object_or_404(routes(principal), pk=pk)
    if route.sender_id != principal.it_system_id or not may_send_on(principal, route):
        raise PermissionDenied("The token's IT system does not send on this route.")
    return route


def received_to_change(principal: TokenPrincipal, pk: int) -> ReceivedFile:
    received = get_object_or_404(received_files(principal), pk=pk)
    if not can_change(principal, received):
        raise PermissionDenied("The token may not change this received file.")
    return received
