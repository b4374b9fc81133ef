"""The main menu: one list, so each area of the portal adds itself in one place."""

from dataclasses import dataclass

from django.urls import reverse
from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class MenuItem:
    label: str
    url_name: str
    # URL prefixes that mark the item as the current area
    prefixes: tuple[str, ...] = ()

    def href(self) -> str:
        return reverse(self.url_name)


MENU = (
    MenuItem(_("Overview"), "dashboard"),
    MenuItem(_("InfRefs and GDPR"), "gdpr:requests", ("/infrefs/",)),
    MenuItem(_("Integrations"), "onboarding:list", ("/integrations/",)),
    MenuItem(_("Data specifications"), "specs:list", ("/specifications/",)),
    MenuItem(_("Transfers"), "transfers:list", ("/transfers/",)),
    MenuItem(_("IT systems"), "itsystems:list", ("/it-systems/",)),
    MenuItem(_("Organisations"), "organisations:list", ("/organisations/",)),
    MenuItem(_("Outbox"), "outbox:list", ("/outbox/",)),
)


def menu_for(path: str) -> list[dict]:
    items = []
    for item in MENU:
        href = item.href()
        current = path == href or any(path.startswith(prefix) for prefix in item.prefixes)
        items.append({"label": item.label, "href": href, "current": current})
    return items
