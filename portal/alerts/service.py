"""Raise an alert once per occurrence and tell the people who look after the route.

The transfer engine calls the hooks below; none of them may stop a transfer, so a failure to
alert is logged, not raised. Each hook keeps what happened as plain values (`Alert.params`); the
words are chosen when the alert is read (`Alert.message`), in the reader's language.
"""

import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from portal.accounts.models import Organisation
from portal.alerts.models import Alert
from portal.outbox.mail import queue_mail
from transfers.models import ReceivedFile, Route, SftpAccount, Transfer, split_addresses

log = logging.getLogger(__name__)
Kind = Alert.Kind


def _valid_addresses(addresses: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for address in addresses:
        address = (address or "").strip()
        if not address or address.lower() in (a.lower() for a in seen):
            continue
        try:
            validate_email(address)
        except ValidationError:
            log.warning("alert contact %r is not an e-mail address; skipped", address)
            continue
        seen.append(address)
    return seen


def raise_alert(
    kind: str,
    *,
    key: str,
    params: dict | None = None,
    message: str = "",
    concerns: Iterable[Organisation | int | None],
    route: Route | None = None,
    transfer: Transfer | None = None,
    received_file: ReceivedFile | None = None,
    contacts: Iterable[str] = (),
) -> tuple[Alert, bool]:
    """The alert for `key`, made and mailed to `contacts` the first time only.

    `params` are the values `Alert.message` words the kind with; `message` is for a caller with
    finished text of its own, shown as it is in every language.
    """
    if (params is None) == (not message):
        raise TypeError("raise_alert takes either params or message")
    with transaction.atomic():
        alert, created = Alert.objects.get_or_create(
            dedupe_key=key,
            defaults={
                "kind": kind,
                "params": params,
                "legacy_message": message,
                "route": route,
                "transfer": transfer,
                "received_file": received_file,
            },
        )
        if not created:
            return alert, False
        ids = {c.pk if isinstance(c, Organisation) else c for c in concerns}
        alert.concerns.set(ids - {None})
        addresses = _valid_addresses(contacts)
        if addresses:
            _mail(alert, addresses)
    return alert, True


def _mail(alert: Alert, addresses: list[str]) -> None:
    organisation = alert.route.municipality if alert.route else None
    # In Danish: the contacts are bare addresses, and the portal keeps no language for anyone,
    # so the mail speaks the portal's own language, as its other mails do.
    with translation.override("da"):
        subject = _("FDD portal: %(kind)s") % {"kind": alert.get_kind_display()}
        lines = [str(alert.get_kind_display()), ""]
        if alert.route:
            lines.append(_("Route: %(route)s") % {"route": alert.route})
        lines += [alert.message, ""]
        lines.append(
            _("See the alert and mark it resolved on the overview: %(url)s")
            % {"url": settings.PORTAL_BASE_URL.rstrip("/") + "/"}
        )
        body = "\n".join(lines) + "\n"
    queue_mail(to=addresses, subject=subject, body=body, organisation=organisation)


def _route_concerns(route: Route) -> list[int]:
    return [route.sender.vendor_id, route.receiver.vendor_id, route.municipality_id]


def _safely(hook):
    def run(*args, **kwargs):
        try:
            return hook(*args, **kwargs)
        except Exception:
            log.exception("could not raise the alert from %s", hook.__name__)
            return None

    run.__name__ = hook.__name__
    run.__doc__ = hook.__doc__
    return run


def _resolve(alerts) -> int:
    """Resolved by the portal itself: what was alerted has passed."""
    return alerts.filter(resolved_at__isnull=True).update(resolved_at=timezone.now())


def _transfer(transfer_id: int) -> Transfer:
    return Transfer.objects.select_related(
        "route__sender", "route__receiver", "route__municipality", "created_by"
    ).get(pk=transfer_id)


def _transfer_alert(kind: str, key: str, transfer: Transfer, params: dict) -> Alert:
    """Told to the route's contacts and to whoever queued the file."""
    contacts = transfer.route.contact_addresses
    if transfer.created_by and transfer.created_by.email:
        contacts.append(transfer.created_by.email)
    alert, _created = raise_alert(
        kind,
        key=key,
        params={
            "file": transfer.original_name,
            "municipality": transfer.route.municipality.name,
            **params,
        },
        concerns=_route_concerns(transfer.route),
        route=transfer.route,
        transfer=transfer,
        contacts=contacts,
    )
    return alert


@_safely
def transfer_failed(transfer_id: int) -> Alert | None:
    """Hook: the transfer has just been marked failed."""
    transfer = _transfer(transfer_id)
    reason = transfer.error_text or transfer.last_error
    if transfer.error_code is not None:
        reason = f"{transfer.error_code}: {reason}"
    return _transfer_alert(
        Kind.TRANSFER_FAILED,
        f"failed:{transfer.pk}:{transfer.attempts}",
        transfer,
        {"reason": reason},
    )


@_safely
def no_receipt(transfer_id: int, *, unreadable: bool = False) -> Alert | None:
    """Hook: the transfer was sent, but no receipt came in time, or it was `unreadable`."""
    transfer = _transfer(transfer_id)
    return _transfer_alert(
        Kind.NO_RECEIPT,
        f"no-receipt:{transfer.pk}:{transfer.attempts}",
        transfer,
        # The timeout as it was when the alert was raised, whatever it is changed to later.
        {"unreadable": unreadable, "minutes": settings.TRANSFER_RECEIPT_TIMEOUT_SECONDS // 60},
    )


@_safely
def clear_no_receipt(transfer_id: int) -> int:
    """Hook: a receipt came after all, or the transfer is sent again."""
    return _resolve(Alert.objects.filter(transfer_id=transfer_id, kind=Kind.NO_RECEIPT))


def _unreachable_key(account_id: int) -> str:
    return f"unreachable:{account_id}:"


@_safely
def platform_unreachable(account_id: int, reason: str) -> Alert | None:
    """Hook: the account's server could not be reached, where the last connection could."""
    account = SftpAccount.objects.select_related("it_system").get(pk=account_id)
    since = account.unreachable_since or timezone.now()
    alert, _created = raise_alert(
        Kind.PLATFORM_UNREACHABLE,
        key=_unreachable_key(account.pk) + since.isoformat(),
        params={
            "account": account.username,
            "host": account.host,
            "port": account.port,
            "reason": reason.rstrip("."),
            "hours": max(1, settings.TRANSFER_OUTAGE_WAIT_SECONDS // 3600),
        },
        concerns=[account.it_system.vendor_id],
        contacts=_contacts_of_routes_through(account),
    )
    return alert


def _contacts_of_routes_through(account: SftpAccount) -> list[str]:
    """Who is told of an outage: the contacts of every route the account sends or receives on."""
    routes = Route.objects.filter(
        Q(sender_id=account.it_system_id) | Q(receiver_id=account.it_system_id),
        environment=account.environment,
    ).exclude(contacts="")
    addresses: dict[str, None] = {}  # in order, each once
    for contacts in routes.order_by("pk").values_list("contacts", flat=True):
        addresses.update(dict.fromkeys(split_addresses(contacts)))
    return list(addresses)


@_safely
def platform_reachable(account_id: int) -> int:
    """Hook: the account's server answered again."""
    return _resolve(
        Alert.objects.filter(
            kind=Kind.PLATFORM_UNREACHABLE, dedupe_key__startswith=_unreachable_key(account_id)
        )
    )


@_safely
def fetch_quarantined(received_file_id: int) -> Alert | None:
    """Hook: a fetched file has just been quarantined."""
    record = ReceivedFile.objects.select_related(
        "account__it_system", "route__sender", "route__receiver", "route__municipality"
    ).get(pk=received_file_id)
    route = record.route
    concerns = [record.account.it_system.vendor_id]
    if route is not None:
        concerns.append(route.municipality_id)
    alert, _created = raise_alert(
        Kind.FETCH_QUARANTINED,
        key=f"quarantined:{record.pk}",
        params={
            "file": record.remote_name,
            "account": record.account.username,
            "reason": record.reason,
        },
        concerns=concerns,
        route=route,
        received_file=record,
        contacts=route.contact_addresses if route else (),
    )
    return alert


def missed_delivery(route: Route, day, deadline) -> tuple[Alert, bool]:
    """No file came on `route` for the period that starts on `day` by `deadline` (aware)."""
    return raise_alert(
        Kind.MISSED_DELIVERY,
        key=f"missed:{route.pk}:{day.isoformat()}",
        params={
            "municipality": route.municipality.name,
            "day": day.isoformat(),
            "deadline": deadline.isoformat(),
        },
        concerns=_route_concerns(route),
        route=route,
        contacts=route.contact_addresses,
    )
