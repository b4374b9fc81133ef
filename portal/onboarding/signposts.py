"""Where each onboarding task is moved, for the task page and the integration's checklist: a
sentence saying what moves it, and links to the pages where that is done."""

from urllib.parse import urlencode

from django.urls import reverse
from django.utils.translation import gettext as _

from gdpr.models import HOLDS_IT_SYSTEM, InfRefRequest
from portal.accounts.access import can_change, scope_of, visible
from portal.onboarding.models import Integration, OnboardingTask
from transfers.models import Environment


def with_query(name: str, **query) -> str:
    return f"{reverse(name)}?{urlencode(query)}"


def moved_by(number: int) -> str:
    """What moves the task, in the reader's language."""
    return {
        10: _(
            "Task 10 is done when a version of the data specification is registered. It can "
            "also be settled by hand, if the specification is kept outside the portal."
        ),
        20: _(
            "Task 20 follows the agreement: it is done when the sending vendor and each "
            "municipality have confirmed the data-processing agreement, or that none is needed. "
            "It is not set by hand."
        ),
        30: _(
            "Task 30 follows the InfRef request: it is done when the InfRef is linked to the "
            "integration and its GDPR declaration is submitted and current. It is not set by hand."
        ),
        40: _(
            "Task 40 follows KOMBIT: it is done when KOMBIT marks the InfRef as created on "
            "Serviceplatformen, on the InfRef request's page. It is not set by hand."
        ),
        50: _(
            "Task 50 is done when the sending IT system has an SFTP account in production. It "
            "can also be settled by hand."
        ),
        60: _(
            "Task 60 is done when the receiving IT system has an SFTP account in production. It "
            "can also be settled by hand."
        ),
        70: _(
            "Task 70 is in progress when the production route for the municipality is ordered, "
            "and done when it is established. It can also be settled by hand."
        ),
    }[number]


class Signposts:
    """Links to where each task is moved, for the links the user can follow: a link to a page
    that would answer 403 or 404 leads nowhere."""

    def __init__(self, integration: Integration, user) -> None:
        self.integration = integration
        self.user = user
        scope = scope_of(user)
        self.sends = scope.is_superuser or integration.sender.vendor_id in scope.vendor_ids
        self.receives = scope.is_superuser or integration.receiver.vendor_id in scope.vendor_ids
        self.may_edit = can_change(user, integration)
        # At most one request holds an IT system (a database constraint), assigned or not.
        holding = InfRefRequest.objects.filter(
            HOLDS_IT_SYSTEM, it_system_id=integration.sender_id
        ).first()
        self.request_exists = holding is not None
        self.request = (
            visible(user, InfRefRequest.objects.filter(pk=holding.pk)).first() if holding else None
        )
        self.unlinked_infref = (
            holding is not None and holding.infref_id is not None and integration.infref_id is None
        )

    def for_task(self, task: OnboardingTask) -> list[tuple[str, str]]:
        integration = self.integration
        number = task.number
        links: list[tuple[str, str]] = []
        if number == 10:
            links.append(
                (
                    _("Data specification and its versions"),
                    reverse("specs:specification", args=[integration.pk]),
                )
            )
        elif number == 20:
            links.append(
                (
                    _("Agreement and test, per municipality"),
                    reverse("onboarding:detail", args=[integration.pk]) + "#bilateral-heading",
                )
            )
        elif number == 30:
            if not self.request_exists:
                if self.sends:
                    links.append(
                        (
                            _("Request an InfRef from KOMBIT"),
                            with_query("gdpr:request_create", it_system=integration.sender_id),
                        )
                    )
            elif self.request is not None:
                links.append(
                    (_("The InfRef request"), reverse("gdpr:request", args=[self.request.pk]))
                )
            if self.unlinked_infref and self.may_edit:
                links.append(
                    (
                        _("Link the InfRef to the integration"),
                        reverse("onboarding:edit", args=[integration.pk]),
                    )
                )
        elif number == 40:
            if self.request is not None:
                links.append(
                    (_("The InfRef request"), reverse("gdpr:request", args=[self.request.pk]))
                )
        elif number in (50, 60):
            system = integration.sender if number == 50 else integration.receiver
            if self.sends if number == 50 else self.receives:
                links.append(
                    (
                        _("Register an SFTP account"),
                        with_query("transfers:account_create", it_system=system.pk),
                    )
                )
        elif number == 70 and self.sends and task.municipality_id:
            order = {"integration": integration.pk, "municipality": task.municipality_id}
            links.append((_("Order the route"), with_query("transfers:route_create", **order)))
            links.append(
                (
                    _("Order the route in the external test environment"),
                    with_query(
                        "transfers:route_create", **order, environment=Environment.EXTERNAL_TEST
                    ),
                )
            )
        return links
