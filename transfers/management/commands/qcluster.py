"""django-q2's `qcluster`, refusing to start when the private keys cannot be decrypted or a
newer version of the portal migrated the database (workers of older code would write to it)."""

from django.core.management.base import CommandError
from django_q.management.commands.qcluster import Command as ClusterCommand

from portal.core.schema import newer_schema
from transfers import key_store
from transfers.keys import KeyUnavailable


class Command(ClusterCommand):
    def handle(self, *args, **options):
        if refusal := newer_schema():
            raise CommandError(f"The workers do not start: {refusal}")
        try:
            key_store.check_workers_can_start()
        except KeyUnavailable as error:
            raise CommandError(f"The workers do not start: {error}") from None
        super().handle(*args, **options)
