"""The main menu: one list, so each area of the portal adds itself in one place."""

from collections.abc import Callable
from dataclasses import dataclass

from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from portal.accounts.access import Scope


@dataclass(frozen=True)
class MenuItem:
    label: str
    url_name: str
    # URL prefixes that mark the item as the current area
    prefixes: tuple[str, ...] = ()
    # Shown only to users whose scope it accepts; None: shown to everyone.
    visible_to: Callable[[Scope], bool] | None = None

    def href(self) -> str:
        return reverse(self.url_name)


MENU = (
    MenuItem(_("Overview"), "dashboard"),
    MenuItem(_("InfRefs and GDPR"), "gdpr:requests", ("/infrefs/",)),
    MenuItem(_("Integrations"), "onboarding:list", ("/integrations/",)),
    MenuItem(_("Data specifications"), "specs:list", ("/specifications/",)),
    MenuItem(_("Transfers"), "transfers:list", ("/transfers/",)),
    MenuItem(
        _("Municipal review"),
        "review:overview",
        ("/review/",),
        visible_to=lambda scope: bool(scope.municipality_ids) or scope.is_superuser,
    ),
    MenuItem(_("IT systems"), "itsystems:list", ("/it-systems/",)),
    MenuItem(_("Organisations"), "organisations:list", ("/organisations/",)),
    MenuItem(_("Outbox"), "outbox:list", ("/outbox/",)),
    # Everyone logged in: each sees the events that concern their organisations.
    MenuItem(_("Audit log"), "audit:log", ("/audit/",)),
)


def menu_for(path: str, scope: Scope | None = None) -> list[dict]:
    items = []
    for item in MENU:
        if item.visible_to is not None and (scope is None or not item.visible_to(scope)):
            continue
        href = item.href()
        current = path == href or any(path.startswith(prefix) for prefix in item.prefixes)
        items.append({"label": item.label, "href": href, "current": current})
    return items
