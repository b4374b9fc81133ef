"""Queue a send: check the route may carry it, keep a local copy, create the row, queue its id.

Every way a file comes in (the send page, the API, a watched folder, the command line) queues
it here, and the transfer's row and its audit event are written together: neither exists
without the other.
"""

import hashlib
import os
import uuid
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _
from django_q.tasks import async_task

from portal.audit.log import record_many
from portal.audit.models import AuditEvent
from portal.core import task_names
from portal.core.text import file_label
from portal.onboarding.models import Integration
from portal.onboarding.rules import Onboarding, onboarding_of, readiness
from transfers.models import Route, SftpAccount, Transfer

SEND_TASK = task_names.SEND_TRANSFER
CHUNK = 1 << 20
# KOMBIT recommends files under 2 GB; larger ones are refused before anything is stored.
MAX_FILE_BYTES = 2 * 10**9


_UNREAD = object()


class Channel(StrEnum):
    """How a file came to be queued. The audit event keeps it as `via`, the value the log reads
    to name what acted when no person did (`AuditEvent.who`)."""

    PAGE = "page"
    API = "API"
    FOLDER = "watched folder"
    # Also code run on the portal's host, e.g. from a shell.
    COMMAND = "command line"


@dataclass(frozen=True)
class RouteCheck:
    """What a route was found to be just now: why it may not carry a send (empty when it may),
    and the sending account a send would go out through."""

    blockers: list[str]
    account: SftpAccount | None


def check_route(route: Route) -> RouteCheck:
    account = sender_account(route)
    return RouteCheck(blockers=route_blockers(route, account=account), account=account)


def route_blockers(
    route: Route,
    *,
    onboarding: Onboarding | None = None,
    account: SftpAccount | object | None = _UNREAD,
) -> list[str]:
    """Why the route may not carry a send now; empty when it may. `onboarding` and `account`,
    if given, were read for many routes at once (`checks_of`)."""
    blockers = []
    if route.state != Route.State.ESTABLISHED:
        blockers.append(
            _("The route is %(state)s, not established.") % {"state": route.get_state_display()}
        )
    if route.integration_id is None:
        blockers.append(_("The route is not tied to an integration."))
    else:
        blockers += readiness(
            route.integration,
            route.municipality,
            environment=route.environment,
            onboarding=onboarding,
        ).blockers
    if account is _UNREAD:
        account = sender_account(route)
    if account is None:
        blockers.append(_("The sending IT system has no SFTP account in this environment."))
    elif not account.private_key_encrypted:
        blockers.append(_("The SFTP account has no key."))
    elif account.host_key_mismatch_at:
        blockers.append(_("The server's host key changed; an operator must check it."))
    elif not account.host_key:
        blockers.append(_("The server's host key has not been confirmed."))
    return blockers


def checks_of(routes: list[Route]) -> list[RouteCheck]:
    """`check_route` of each route, in four queries however many routes: what readiness reads
    is read per integration, and the sending accounts all at once."""
    integrations = Integration.objects.in_bulk(
        {route.integration_id for route in routes if route.integration_id}
    )
    for route in routes:
        if route.integration_id:
            route.integration = integrations[route.integration_id]  # one instance each
    onboarding = onboarding_of(
        integrations.values(), municipalities={route.municipality_id for route in routes}
    )
    accounts: dict[tuple[int, str], SftpAccount] = {}
    wanted = SftpAccount.objects.filter(it_system_id__in={route.sender_id for route in routes})
    for account in wanted.order_by("pk"):
        # The first, as sender_account takes it.
        accounts.setdefault((account.it_system_id, account.environment), account)
    checks = []
    for route in routes:
        account = accounts.get((route.sender_id, route.environment))
        blockers = route_blockers(
            route, onboarding=onboarding.get(route.integration_id), account=account
        )
        checks.append(RouteCheck(blockers=blockers, account=account))
    return checks


def blockers_of(routes: list[Route]) -> list[list[str]]:
    return [check.blockers for check in checks_of(routes)]


def sender_account(route: Route) -> SftpAccount | None:
    return SftpAccount.objects.filter(
        it_system_id=route.sender_id, environment=route.environment
    ).first()


def remote_name(account: SftpAccount, original_name: str) -> str:
    """`<sftpuser>_FDD_<uuid>.<ext>`, KOMBIT's suggested unique form."""
    extension = Path(original_name).suffix.lower().lstrip(".")
    extension = "".join(c for c in extension if c.isascii() and c.isalnum())[:10] or "dat"
    return f"{account.username}_FDD_{uuid.uuid4()}.{extension}"


def payload_store() -> Path:
    """The folder of the local copies that queued sends are made from."""
    return Path(settings.TRANSFER_DATA_DIR) / "outgoing"


def _store(source: BinaryIO, destination: Path) -> tuple[int, str]:
    """Copy into the payload store, hashing on the way; a partial copy never stays behind."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    move_to = getattr(source, "move_to", None)
    if callable(move_to):
        # An upload already on disk and hashed on its way (handoff.uploads) is moved, not
        # copied: a 2 GB file is not written twice.
        return move_to(destination)
    partial = destination.with_name(destination.name + ".part")
    digest, size = hashlib.sha256(), 0
    try:
        with partial.open("wb") as out:
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if size > MAX_FILE_BYTES:
                    raise ValidationError(
                        _("The file is larger than %(limit)s GB, which KOMBIT advises against.")
                        % {"limit": MAX_FILE_BYTES // 10**9}
                    )
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        partial.rename(destination)
    finally:
        partial.unlink(missing_ok=True)
    return size, digest.hexdigest()


def queue_send(
    route: Route,
    source: BinaryIO,
    *,
    original_name: str,
    user=None,
    channel: Channel = Channel.COMMAND,
    checked: RouteCheck | None = None,
    folder: str = "",
) -> Transfer:
    """One transfer of one file for the route's municipality, and its audit event; refused with
    reasons if the route is not ready.

    `user` is who acts: a person, an API token's principal (`handoff.tokens.TokenPrincipal`),
    or None (a watched folder, the command line without a user). `folder` names the watched
    folder the file came from. Code that names no `channel` runs on the portal's host, as the
    command line does. `checked` is the route as the caller found it a moment ago, so it is not
    read again; the worker checks the route once more before it sends.
    """
    outgoing = Outgoing(route, source, original_name, checked)
    return queue_sends([outgoing], user=user, channel=channel, folder=folder)[0]


@dataclass(frozen=True)
class Outgoing:
    """A file to queue on a route, as `queue_send` takes it."""

    route: Route
    source: BinaryIO
    original_name: str
    checked: RouteCheck | None = None


def queue_sends(
    files: list[Outgoing], *, user=None, channel: Channel = Channel.COMMAND, folder: str = ""
) -> list[Transfer]:
    """`queue_send` of each file, all or nothing: every route checked and every local copy
    stored before any row is written, then the rows and their audit events in one transaction
    (three inserts however many files: one by one, a split's hundred parts took a fifth of a
    second)."""
    checks = [file.checked or check_route(file.route) for file in files]
    for checked in checks:
        if checked.blockers:
            raise ValidationError(checked.blockers)
    person = user if isinstance(user, AbstractBaseUser) else None
    token = getattr(user, "token", None) if person is None else None
    transfers: list[Transfer] = []
    try:
        for file, checked in zip(files, checks, strict=True):
            name = remote_name(checked.account, file.original_name)
            payload = payload_store() / name
            size, sha256 = _store(file.source, payload)
            transfers.append(
                Transfer(
                    route=file.route,
                    account=checked.account,
                    original_name=file_label(file.original_name),
                    payload=str(payload),
                    size=size,
                    sha256=sha256,
                    remote_name=name,
                    created_by=person,
                )
            )
            if size == 0:
                raise ValidationError(_("The file is empty."))
        with transaction.atomic():
            Transfer.objects.bulk_create(transfers)
            _audit(transfers, person, channel, token=token, folder=folder)
            transaction.on_commit(lambda: _enqueue_all(transfers))
    except BaseException:
        for transfer in transfers:
            Path(transfer.payload).unlink(missing_ok=True)
        raise
    return transfers


def _audit(transfers: list[Transfer], person, channel: Channel, *, token, folder: str) -> None:
    details = {"via": channel.value}
    if token is not None:
        details["token"] = token.fingerprint
    if folder:
        details["folder"] = folder
    record_many(
        person,
        AuditEvent.Action.SEND,
        [
            (transfer, transfer.route.parties(), {"sha256": transfer.sha256, **details})
            for transfer in transfers
        ],
    )


def enqueue(transfer_id: int) -> None:
    async_task(SEND_TASK, transfer_id, group="transfers")


def _enqueue_all(transfers: list[Transfer]) -> None:
    # One commit for the lot: each a commit of its own was half the queueing of a split.
    with transaction.atomic():
        for transfer in transfers:
            enqueue(transfer.pk)


def queue_file(
    route: Route,
    path: Path,
    *,
    user=None,
    channel: Channel = Channel.COMMAND,
    checked: RouteCheck | None = None,
) -> Transfer:
    with path.open("rb") as source:
        return queue_send(
            route, source, original_name=path.name, user=user, channel=channel, checked=checked
        )
