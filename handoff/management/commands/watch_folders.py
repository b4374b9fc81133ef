"""`manage.py watch_folders [--once]`: take files from the drop folders, write received files
to the delivery folders. Without --once it goes on every HANDOFF_WATCH_SECONDS until stopped."""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from handoff import delivery, watch


class Command(BaseCommand):
    help = (
        "One round over every watched and delivery folder (--once), or rounds every "
        "--interval seconds until Ctrl-C or SIGTERM. Exit code 0."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="one round, then exit")
        parser.add_argument(
            "--interval",
            type=float,
            default=settings.HANDOFF_WATCH_SECONDS,
            help="seconds between rounds (default HANDOFF_WATCH_SECONDS)",
        )

    def handle(self, *args, once: bool, interval: float, **options) -> None:
        if once:
            self._round(quiet=False)
            return
        stop = threading.Event()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signal_number, lambda *_: stop.set())
        while not stop.is_set():
            self._round(quiet=True)
            stop.wait(interval)

    def _round(self, *, quiet: bool) -> None:
        taken = watch.scan_all()
        written = delivery.deliver_all()
        if quiet and not (taken.queued or taken.refused or written.delivered):
            return
        self.stdout.write(
            f"queued {taken.queued}, refused {taken.refused}, waiting {taken.waiting}; "
            f"delivered {written.delivered}"
        )
