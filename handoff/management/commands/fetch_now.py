"""`manage.py fetch_now --account ID`: fetch a receiving account's IN/ now, in this process."""

import sys

from django.core.management.base import BaseCommand, CommandParser

from handoff import cli
from transfers.fetch import fetch_inbox
from transfers.models import ReceivedFile, SftpAccount
from transfers.sessions import drop_session


class Command(BaseCommand):
    help = (
        "Fetch what has arrived for an SFTP account now and print the id of each file "
        "received. Exit codes: 0 fetched (also when nothing had arrived), 1 the fetch "
        "failed, 2 usage error or no such receiving account with a key."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", type=int, required=True, help="the SFTP account's id")

    def handle(self, *args, account: int, **options) -> None:
        found = SftpAccount.objects.select_related("it_system").filter(pk=account).first()
        if found is None:
            raise cli.Refused(f"No SFTP account {account}.")
        if not found.it_system.is_receiver:
            raise cli.Refused(f"{found} belongs to an IT system that does not receive.")
        if not found.private_key_encrypted:
            raise cli.Refused(f"{found} has no key.")
        before = (
            ReceivedFile.objects.filter(account=found).order_by("-pk").values_list("pk", flat=True)
        ).first() or 0
        try:
            result = fetch_inbox(found.pk)
        except Exception as error:  # any failure of the session or the server: report, exit 1
            self.stderr.write(f"The fetch failed: {type(error).__name__}: {error}")
            sys.exit(cli.FAILED)
        finally:
            drop_session(found.pk)
        new = ReceivedFile.objects.filter(
            account=found, pk__gt=before, state=ReceivedFile.State.RECEIVED
        ).order_by("pk")
        for received in new:
            self.stdout.write(f"{received.pk} {received.remote_name}")
        self.stderr.write(
            f"received {result.received}, quarantined {result.quarantined}, "
            f"waiting for metadata {result.waiting}"
        )
