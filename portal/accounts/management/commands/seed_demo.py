from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from portal.accounts.demo import DEMO_PASSWORD, seed_demo


class Command(BaseCommand):
    help = "Create or refresh the demo vendors, IT systems and users (one for every role)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--allow-without-debug",
            action="store_true",
            help="Seed even though DEBUG is off. The demo users have a published password.",
        )

    def handle(self, *args, allow_without_debug: bool = False, **options):
        if not settings.DEBUG and not allow_without_debug:
            raise CommandError(
                "Refusing to create demo users with a published password while DEBUG is off; "
                "pass --allow-without-debug if this really is a demo installation."
            )
        logins = seed_demo()
        self.stdout.write(self.style.SUCCESS("Demo data is in place. Demo logins:"))
        for demo, organisation in logins:
            where = organisation.name if organisation else "superuser"
            role = organisation.role.label if organisation else "superuser"
            self.stdout.write(f"  {demo.username:<10} {role:<22} {where}")
        self.stdout.write(f"  password for all of them: {DEMO_PASSWORD}")
