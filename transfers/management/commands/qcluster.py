"""django-q2's `qcluster`, refusing to start when the private keys cannot be decrypted."""

from django.core.management.base import CommandError
from django_q.management.commands.qcluster import Command as ClusterCommand

from transfers import key_store
from transfers.keys import KeyUnavailable


class Command(ClusterCommand):
    def handle(self, *args, **options):
        try:
            key_store.check_workers_can_start()
        except KeyUnavailable as error:
            raise CommandError(f"The workers do not start: {error}") from None
        super().handle(*args, **options)
