"""Re-encrypt every SFTP account's private key with the first key of SFTP_KEY_ENCRYPTION_KEY.

    manage.py rotate_sftp_keys --new-key    # print a fresh key
    SFTP_KEY_ENCRYPTION_KEY=NEW,OLD manage.py rotate_sftp_keys
    manage.py rotate_sftp_keys --check      # can the configured keys read every private key?

Afterwards set SFTP_KEY_ENCRYPTION_KEY=NEW alone and restart the web and worker processes.
"""

from django.core.management.base import BaseCommand, CommandError

from transfers import key_store
from transfers.keys import KeyUnavailable, new_encryption_key


class Command(BaseCommand):
    help = "Re-encrypt every SFTP private key with the first key of SFTP_KEY_ENCRYPTION_KEY."

    def add_arguments(self, parser):
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--new-key", action="store_true", help="print a fresh key and stop")
        action.add_argument(
            "--check", action="store_true", help="only check that every private key can be read"
        )

    def handle(self, *args, new_key: bool, check: bool, **options):
        if new_key:
            self.stdout.write(new_encryption_key())
            return
        try:
            if check:
                key_store.check_workers_can_start()
                self.stdout.write("Every private key can be decrypted.")
                return
            count = key_store.rotate_all()
        except KeyUnavailable as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Re-encrypted {count} private key(s) with the first key. Now set "
            "SFTP_KEY_ENCRYPTION_KEY to that key alone and restart the web and worker processes."
        )
