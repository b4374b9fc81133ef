"""Demo SFTP accounts and routes on the local simulator, so a newcomer can send and fetch."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from gdpr.models import InfRef
from portal.accounts.models import Organisation
from portal.itsystems.models import ItSystem
from portal.onboarding.models import Integration
from transfers import keys
from transfers.models import Environment, Route, SftpAccount
from transfers.sftp import host_key_fingerprint
from transfers.simulator.folders import INTERNAL
from transfers.simulator.server import HOST_KEY_NAME, load_or_create_host_key

ACCOUNTS = {
    "Nordlys Omsorg": "nordlys_omsorg",
    "Nordlys Sag": "nordlys_sag",
    "Fjordsoft Journal": "fjordsoft_journal",
    "Fjordsoft Borgerdata": "fjordsoft_borgerdata",
}


def simulator_host_key() -> str:
    """The simulator's host key line, made now if the simulator has not yet made it."""
    key = load_or_create_host_key(settings.SIMULATOR_DATA_DIR / INTERNAL / HOST_KEY_NAME)
    return f"{key.get_name()} {key.get_base64()}"


def seed_simulator() -> None:
    admin = get_user_model().objects.get(username="admin")
    host_key = simulator_host_key()
    for system_name, username in ACCOUNTS.items():
        account, created = SftpAccount.objects.get_or_create(
            it_system=ItSystem.objects.get(name=system_name),
            environment=Environment.SIMULATOR,
            defaults={
                "username": username,
                "host": settings.SIMULATOR_HOST,
                "port": settings.SIMULATOR_PORT,
            },
        )
        if created:
            pair = keys.generate("ed25519", comment=username)
            account.key_kind, account.public_key = pair.kind, pair.public_openssh
            account.key_fingerprint = pair.fingerprint
            account.private_key_encrypted = pair.private_encrypted
            account.key_created_at = timezone.now()
        # Pinned as an operator would after looking at the fingerprint the simulator shows.
        if account.host_key != host_key:
            account.host_key = host_key
            account.host_key_fingerprint = host_key_fingerprint(host_key)
            account.host_key_confirmed_by, account.host_key_confirmed_at = admin, timezone.now()
            account.host_key_mismatch_at = None
        account.save()

    integration = Integration.objects.filter(name="Omsorgsdata til Fjordsoft Journal").first()
    if integration is None:
        return
    for code, state in (("751", Route.State.ESTABLISHED), ("461", Route.State.ORDERED)):
        Route.objects.get_or_create(
            environment=Environment.SIMULATOR,
            infref=InfRef.objects.get(name="FagsystemdefineredeDataRefGDPR1203_1"),
            sender=integration.sender,
            receiver=integration.receiver,
            municipality=Organisation.objects.get(municipality_code=code),
            defaults={"integration": integration, "state": state},
        )
