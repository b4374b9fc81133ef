"""Rows made straight in the database for the pages and lists that read them: integrations,
routes, SFTP accounts, transfers and received files, with no simulator and no file behind them.

    route = make_route(make_integration(system_a, system_b, staff_a, [aarhus]), aarhus, operator)
    ids = make_transfers(route, 3, state="failed", at=at(2))
"""

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

from gdpr.models import InfRef
from portal.onboarding import rules
from transfers.models import Environment, ReceivedFile, Route, SftpAccount, Transfer

_infref_numbers = iter(range(900, 10_000))

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def at(hours: int) -> datetime:
    """`hours` after T0."""
    return T0 + timedelta(hours=hours)


def make_integration(sender, receiver, user, municipalities, name="Alfa til Beta"):
    return rules.create_integration(
        name=name,
        sender=sender,
        receiver=receiver,
        created_by=user,
        municipalities=municipalities,
    )


def make_route(integration, municipality, assigned_by, infref=None, environment="simulator"):
    """A route of the integration, under a new InfRef of its sender unless given one."""
    if infref is None:
        infref = InfRef.objects.create(
            name=f"FagsystemdefineredeDataRefGDPR{next(_infref_numbers)}_1",
            it_system=integration.sender,
            assigned_by=assigned_by,
        )
    return Route.objects.create(
        environment=environment,
        infref=infref,
        sender=integration.sender,
        receiver=integration.receiver,
        municipality=municipality,
        integration=integration,
    )


def established_route(infref, sender, receiver, municipality) -> Route:
    """An established route on the simulator under `infref`, belonging to no integration."""
    return Route.objects.create(
        environment=Environment.SIMULATOR,
        infref=infref,
        sender=sender,
        receiver=receiver,
        municipality=municipality,
        state=Route.State.ESTABLISHED,
    )


def account_for(it_system, environment="simulator") -> SftpAccount:
    """The IT system's account in the environment, made on first use."""
    account, _created = SftpAccount.objects.get_or_create(
        it_system=it_system,
        environment=environment,
        defaults={"username": f"u{uuid.uuid4().hex[:12]}", "host": "127.0.0.1", "port": 2222},
    )
    return account


def make_transfers(route, count, *, state="delivered", size=1000, at=None, name="data"):
    """`count` transfers on `route`, queued at `at` (default: now), the ids in order."""
    account = account_for(route.sender, route.environment)
    made = Transfer.objects.bulk_create(
        Transfer(
            route=route,
            account=account,
            state=state,
            original_name=f"{name}-{i}.csv",
            payload="unused",
            size=size,
            sha256="0" * 64,
            remote_name=f"{uuid.uuid4().hex}.csv",
        )
        for i in range(count)
    )
    ids = [t.pk for t in made] if made and made[0].pk else None
    if ids is None:  # a database that does not return ids from bulk inserts
        ids = list(
            Transfer.objects.filter(route=route)
            .order_by("-pk")
            .values_list("pk", flat=True)[:count]
        )[::-1]
    if at is not None:
        Transfer.objects.filter(pk__in=ids).update(queued_at=at)
    return ids


def make_transfer(route, account, name="borgere.csv", queued_at=None, **fields) -> Transfer:
    """A row as the queue would leave it; only the page reads it, so no file is needed."""
    data = name.encode()
    transfer = Transfer.objects.create(
        route=route,
        account=account,
        original_name=name,
        payload=f"/nonexistent/{uuid.uuid4()}",
        size=fields.pop("size", len(data)),
        sha256=hashlib.sha256(data).hexdigest(),
        remote_name=f"{account.username}_FDD_{uuid.uuid4()}.csv",
        **fields,
    )
    if queued_at is not None:
        Transfer.objects.filter(pk=transfer.pk).update(queued_at=queued_at)
        transfer.queued_at = queued_at
    return transfer


def receive(route, name, at=None, **fields):
    """A file fetched on `route` from the SFTP user alfa_omsorg, at `at` (default: now)."""
    file = ReceivedFile.objects.create(
        account=account_for(route.receiver, route.environment),
        remote_name=name,
        state=fields.pop("state", "received"),
        infref_name=route.infref.name,
        sender_username="alfa_omsorg",
        route=route,
        **fields,
    )
    if at is not None:
        ReceivedFile.objects.filter(pk=file.pk).update(received_at=at)
    return file


def fetched_copy(transfer_id: int, name: str, at=None, **fields) -> ReceivedFile:
    """The file a transfer became at the receiver: the platform gave both its FileTransferUUID."""
    transfer = Transfer.objects.select_related("route").get(pk=transfer_id)
    platform_id = uuid.uuid4()
    Transfer.objects.filter(pk=transfer_id).update(file_transfer_uuid=platform_id)
    fields = {"size": transfer.size, "sha256": transfer.sha256} | fields
    return receive(transfer.route, name, at=at, file_transfer_uuid=platform_id, **fields)
