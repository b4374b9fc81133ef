"""`manage.py verify_files`: does every stored file still match its record? (transfers.integrity)"""

import sys

from django.core.management.base import BaseCommand, CommandParser

from transfers import integrity


class Command(BaseCommand):
    help = (
        "Read every file the database records (transfer payloads, received files, "
        "specification documents, processing agreements) and the contents it keeps with a "
        "SHA-256 (mail attachments, submitted GDPR declarations); name each one that is "
        "missing or changed. Files deleted by retention are not looked for. Exit codes: 0 all "
        "match, 1 something is missing, changed or unreadable."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--quiet", action="store_true", help="print only the problems")
        parser.add_argument(
            "--strays",
            action="store_true",
            help="also name files in the portal's stores that no record names (no error: a "
            "file queued while a backup ran leaves one); temporary files are left out",
        )

    def handle(self, *args, quiet: bool, strays: bool, **options) -> None:
        checked = None
        if options["verbosity"] >= 2 and not quiet:

            def checked(record: str, where: str) -> None:
                self.stdout.write(f"ok: {record} {where}")

        summary = integrity.verify(self._report, with_strays=strays, checked=checked)
        if not quiet:
            self.stdout.write(str(summary))
        if not summary.ok:
            sys.exit(1)

    def _report(self, finding: integrity.Finding) -> None:
        self.stdout.write(str(finding))
