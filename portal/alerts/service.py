"""Raise an alert once per occurrence and tell the people who look after the route.

The transfer engine calls the hooks below; none of them may stop a transfer, so a failure to
alert is logged, not raised.
"""

import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import translation
from django.utils.translation import gettext as _

from portal.accounts.models import Organisation
from portal.alerts.models import Alert
from portal.outbox.mail import queue_mail
from transfers.models import ReceivedFile, Route, Transfer

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
    message: str,
    concerns: Iterable[Organisation | int | None],
    route: Route | None = None,
    transfer: Transfer | None = None,
    received_file: ReceivedFile | None = None,
    contacts: Iterable[str] = (),
) -> tuple[Alert, bool]:
    """The alert for `key`, made and mailed to `contacts` the first time only."""
    with transaction.atomic():
        alert, created = Alert.objects.get_or_create(
            dedupe_key=key,
            defaults={
                "kind": kind,
                "message": message,
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


@_safely
def transfer_failed(transfer_id: int) -> Alert | None:
    """Hook: the transfer has just been marked failed."""
    transfer = Transfer.objects.select_related(
        "route__sender", "route__receiver", "route__municipality", "created_by"
    ).get(pk=transfer_id)
    route = transfer.route
    reason = transfer.error_text or transfer.last_error
    if transfer.error_code is not None:
        reason = f"{transfer.error_code}: {reason}"
    with translation.override("da"):
        message = _("%(file)s for %(municipality)s failed: %(reason)s") % {
            "file": transfer.original_name,
            "municipality": route.municipality.name,
            "reason": reason,
        }
    contacts = route.contact_addresses
    if transfer.created_by and transfer.created_by.email:
        contacts.append(transfer.created_by.email)
    alert, _created = raise_alert(
        Kind.TRANSFER_FAILED,
        key=f"failed:{transfer.pk}:{transfer.attempts}",
        message=message,
        concerns=_route_concerns(route),
        route=route,
        transfer=transfer,
        contacts=contacts,
    )
    return alert


@_safely
def fetch_quarantined(received_file_id: int) -> Alert | None:
    """Hook: a fetched file has just been quarantined."""
    record = ReceivedFile.objects.select_related(
        "account__it_system", "route__sender", "route__receiver", "route__municipality"
    ).get(pk=received_file_id)
    route = record.route
    with translation.override("da"):
        message = _("%(file)s on %(account)s was quarantined: %(reason)s") % {
            "file": record.remote_name,
            "account": record.account.username,
            "reason": record.reason,
        }
    concerns = [record.account.it_system.vendor_id]
    if route is not None:
        concerns.append(route.municipality_id)
    alert, _created = raise_alert(
        Kind.FETCH_QUARANTINED,
        key=f"quarantined:{record.pk}",
        message=message,
        concerns=concerns,
        route=route,
        received_file=record,
        contacts=route.contact_addresses if route else (),
    )
    return alert


def missed_delivery(route: Route, day, deadline) -> tuple[Alert, bool]:
    """No file came on `route` for the period that starts on `day` by `deadline`."""
    with translation.override("da"):
        message = _("No file was sent for %(municipality)s since %(day)s (expected by %(by)s).") % {
            "municipality": route.municipality.name,
            "day": day.strftime("%d.%m.%Y"),
            "by": deadline.strftime("%d.%m.%Y %H:%M"),
        }
    return raise_alert(
        Kind.MISSED_DELIVERY,
        key=f"missed:{route.pk}:{day.isoformat()}",
        message=message,
        concerns=_route_concerns(route),
        route=route,
        contacts=route.contact_addresses,
    )
