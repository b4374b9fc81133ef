"""Demo data: fictitious vendors, their IT systems and a user for every role.

The CVR numbers pass the modulus-11 check but belong to no real vendor known to the project.
"""

import uuid
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from gdpr.demo import seed_declarations, seed_infref_requests
from portal.accounts.models import Membership, Organisation
from portal.itsystems.models import ItSystem
from portal.onboarding.demo import seed_integrations
from portal.specs.demo import seed_specifications
from transfers.demo import seed_simulator

DEMO_PASSWORD = "fdd-demo-2026"  # noqa: S105 - published on purpose, demo only
_UUID_NAMESPACE = uuid.UUID("6f1c3f0e-3d0b-4d57-9a53-0f4b8a4c2d11")

VENDORS = [
    ("Nordlys Systemer A/S", "39123452"),
    ("Fjordsoft ApS", "41872632"),
]
IT_SYSTEMS = [
    # name, vendor CVR, sender, receiver
    ("Nordlys Omsorg", "39123452", True, False),
    ("Nordlys Sag", "39123452", True, True),
    ("Fjordsoft Journal", "41872632", False, True),
    ("Fjordsoft Borgerdata", "41872632", True, False),
    ("Fjordsoft Skoledata", "41872632", True, False),
]


@dataclass(frozen=True)
class DemoUser:
    username: str
    first_name: str
    last_name: str
    organisation_cvr: str | None
    superuser: bool = False


USERS = [
    DemoUser("nordlys", "Karen", "Holm", "39123452"),
    DemoUser("fjordsoft", "Jonas", "Berg", "41872632"),
    DemoUser("aarhus", "Mette", "Kjær", "55133018"),
    DemoUser("odense", "Ali", "Hassan", "35209115"),
    DemoUser("kombit", "Peter", "Lund", "19435075"),
    DemoUser("admin", "Anne", "Admin", None, superuser=True),
]


def demo_uuid(name: str) -> uuid.UUID:
    return uuid.uuid5(_UUID_NAMESPACE, name)


@transaction.atomic
def seed_demo() -> list[tuple[DemoUser, Organisation | None]]:
    """Create or refresh the demo records; running it twice leaves the same data."""
    for name, cvr in VENDORS:
        Organisation.objects.update_or_create(
            cvr=cvr, defaults={"kind": Organisation.Kind.VENDOR, "name": name}
        )
    for name, vendor_cvr, sender, receiver in IT_SYSTEMS:
        ItSystem.objects.update_or_create(
            uuid=demo_uuid(name),
            defaults={
                "name": name,
                "vendor": Organisation.objects.get(cvr=vendor_cvr),
                "is_sender": sender,
                "is_receiver": receiver,
            },
        )
    User = get_user_model()
    logins = []
    for demo in USERS:
        user, _ = User.objects.update_or_create(
            username=demo.username,
            defaults={
                "first_name": demo.first_name,
                "last_name": demo.last_name,
                "email": f"{demo.username}@example.invalid",
                "is_superuser": demo.superuser,
                "is_staff": demo.superuser,
                "is_active": True,
            },
        )
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["password"])
        organisation = None
        if demo.organisation_cvr:
            organisation = Organisation.objects.get(cvr=demo.organisation_cvr)
            # Each organisation's one demo user runs its people: invites, roles, two-step login.
            Membership.objects.update_or_create(
                user=user, organisation=organisation, defaults={"is_administrator": True}
            )
        logins.append((demo, organisation))
    seed_infref_requests()
    seed_integrations()
    seed_specifications()
    seed_declarations()
    seed_simulator()
    return logins
