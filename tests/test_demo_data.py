import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import translation

from gdpr.models import GdprDeclaration
from portal.accounts.demo import DEMO_PASSWORD
from portal.accounts.models import Membership, Organisation, Role
from portal.itsystems.models import ItSystem
from portal.onboarding.rules import readiness
from portal.specs.models import SpecificationVersion
from transfers.models import Route


def _counts():
    return (
        Organisation.objects.count(),
        ItSystem.objects.count(),
        get_user_model().objects.count(),
        Membership.objects.count(),
    )


def test_seed_demo_is_idempotent_and_covers_every_role(db):
    call_command("seed_demo", "--allow-without-debug", stdout=io.StringIO())
    first = _counts()
    call_command("seed_demo", "--allow-without-debug", stdout=io.StringIO())
    assert _counts() == first

    assert Organisation.objects.filter(kind="vendor").count() == 2
    for vendor in Organisation.objects.filter(kind="vendor"):
        systems = vendor.it_systems.all()
        assert any(s.is_sender for s in systems) and any(s.is_receiver for s in systems)
    roles = {m.role for m in Membership.objects.select_related("organisation")}
    assert roles == set(Role)
    assert get_user_model().objects.filter(is_superuser=True).exists()


def test_every_route_the_demo_makes_has_a_data_specification_version(db):
    call_command("seed_demo", "--allow-without-debug", stdout=io.StringIO())
    call_command("seed_demo", "--allow-without-debug", stdout=io.StringIO())
    routes = Route.objects.select_related("integration", "infref", "municipality")
    assert routes.filter(state=Route.State.ESTABLISHED).exists()
    for route in routes:
        [version] = SpecificationVersion.objects.filter(
            specification__integration=route.integration
        )  # one, however often the demo is seeded
        assert version.label == "1.0" and version.fields.exists()
        # The version the InfRef's declaration says it covers; nothing marked it outdated.
        declaration = route.infref.declarations.get(status=GdprDeclaration.Status.SUBMITTED)
        assert declaration.data_specification_version == version.label
        assert declaration.outdated_at is None
    # The simulator plays production: the established route is ready by production's rules,
    # the ordered one tells who acts next.
    established = routes.get(state=Route.State.ESTABLISHED)
    assert readiness(established.integration, established.municipality).blockers == []
    ordered = routes.get(state=Route.State.ORDERED)
    with translation.override("en"):
        blockers = readiness(ordered.integration, ordered.municipality).blockers
    assert blockers == [
        "Task 70 (the SFTP route) is not done for Odense Kommune.",
        # The vendor confirmed the agreement for the whole integration; Odense has not yet.
        "The data-processing agreement for Odense Kommune is not confirmed by "
        "Odense Kommune (task 20).",
        "The test before production is not yet accepted by Odense Kommune.",
    ]


def test_every_demo_user_can_log_in_and_sees_the_danish_dashboard(client, db):
    call_command("seed_demo", "--allow-without-debug", stdout=io.StringIO())
    for user in get_user_model().objects.all():
        assert client.login(username=user.username, password=DEMO_PASSWORD), user.username
        page = client.get(reverse("dashboard"))
        assert page.status_code == 200
        assert "<h1>Overblik</h1>" in page.content.decode()
        client.logout()


def test_seed_demo_refuses_to_run_with_debug_off(db):
    with pytest.raises(CommandError, match="DEBUG is off"):
        call_command("seed_demo")
    assert not get_user_model().objects.exists()
