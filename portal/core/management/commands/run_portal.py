"""Run the web server, a worker cluster and the local Serviceplatform in one terminal; Ctrl-C
stops them all."""

import signal
import subprocess
import sys
import time

from django.core.management.base import BaseCommand

from portal.accounts.demo import DEMO_PASSWORD, USERS


class Command(BaseCommand):
    help = "Start the web server, a worker cluster and the simulator together (for `make run`)."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000", help="address:port to serve on")

    def handle(self, *args, addr: str, **options):
        manage = [sys.executable, "manage.py"]
        commands = {
            "web": [*manage, "runserver", "--noreload", addr],
            "workers": [*manage, "qcluster"],
            "simulator": [*manage, "serviceplatform"],
        }
        processes = {
            name: subprocess.Popen(command)  # noqa: S603 - our own manage.py
            for name, command in commands.items()
        }
        self.stdout.write(
            self.style.SUCCESS(f"The FDD portal runs on http://{addr}/ – Ctrl-C stops it.")
        )
        # Django's debug pages show code, settings and request data on any error: fine on a
        # developer's machine, never where others can reach it.
        self.stdout.write(
            self.style.WARNING(
                "This is the development server with DEBUG on: an error shows Django's debug "
                "page. Do not expose it; README.md, Production, says how to run the portal."
            )
        )
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for demo in USERS:
            self.stdout.write(f"  {demo.username}")
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            # One part dying takes the others down, so the terminal never shows a half portal.
            while not stopping and all(p.poll() is None for p in processes.values()):
                time.sleep(0.3)
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGINT)
            deadline = time.monotonic() + 15
            for process in processes.values():
                try:
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
        failed = [name for name, p in processes.items() if p.returncode not in (0, -2, None)]
        if failed and not stopping:
            self.stderr.write(f"Stopped because {', '.join(failed)} exited.")
            raise SystemExit(1)
