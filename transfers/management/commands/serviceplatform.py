"""Run a local Serviceplatformen SFTP service (the simulator); see docs/simulator.md."""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from transfers.simulator import RegistryError, Simulator
from transfers.simulator.router import PLATFORM_DELAY


class Command(BaseCommand):
    help = (
        "Run a local Serviceplatformen SFTP service: key logins, IN/ and OUT/, routing of "
        "triggers by the registered routes. Ctrl-C stops it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
        parser.add_argument(
            "--port",
            type=int,
            default=None,
            help=f"port to listen on (default SIMULATOR_PORT, {settings.SIMULATOR_PORT}; "
            "0 picks a free one)",
        )
        parser.add_argument(
            "--data-dir",
            default=None,
            help="folder of the users' IN/ and OUT/ (default SIMULATOR_DATA_DIR)",
        )
        parser.add_argument(
            "--registry",
            default=None,
            metavar="FILE.json",
            help="users, InfRefs and routes from this JSON file instead of the portal's database",
        )
        parser.add_argument(
            "--delay",
            type=float,
            default=PLATFORM_DELAY,
            metavar="SECONDS",
            help=f"wait this long after a trigger before routing it (default {PLATFORM_DELAY}, "
            "as the platform, which routes apart from the upload: a client may stat or "
            "set-stat what it just closed; 0 routes at once)",
        )
        parser.add_argument(
            "--cleanup-after",
            type=float,
            default=0.0,
            metavar="SECONDS",
            help="remove files left unread in IN/ after this many seconds (0: never)",
        )
        parser.add_argument(
            "--host-key",
            default=None,
            metavar="FILE",
            help="private host key (default: an Ed25519 key kept in the data folder, "
            "made on the first start)",
        )

    def handle(self, *args, **options):
        port = settings.SIMULATOR_PORT if options["port"] is None else options["port"]
        if not 0 <= port <= 65535:
            raise CommandError(f"--port must be between 0 and 65535, not {port}")
        for name in ("delay", "cleanup_after"):
            if options[name] < 0:
                raise CommandError(f"--{name.replace('_', '-')} cannot be negative")
        data_dir = options["data_dir"] or settings.SIMULATOR_DATA_DIR
        try:
            simulator = Simulator(
                data_dir=data_dir,
                registry=options["registry"],
                host=options["host"],
                port=port,
                host_key=options["host_key"],
                delay=options["delay"],
                cleanup_after=options["cleanup_after"],
            )
        except RegistryError as error:
            raise CommandError(str(error)) from None
        except OSError as error:
            raise CommandError(f"cannot prepare the simulator: {error}") from None
        try:
            simulator.start()
        except OSError as error:
            simulator.stop()
            raise CommandError(
                f"cannot listen on {options['host']}:{port}: {error.strerror or error}"
            ) from None
        stop = threading.Event()

        def request_stop(*_):
            stop.set()

        previous = {
            sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        registry = options["registry"] or "the portal's database (environment simulator)"
        self.stdout.write(
            f"Serviceplatform simulator listening on {simulator.host}:{simulator.port}"
        )
        self.stdout.write(f"  host key  {simulator.fingerprint}")
        self.stdout.write(f"  data      {simulator.data_dir}")
        self.stdout.write(f"  registry  {registry}")
        self.stdout.write(f"  delay     {options['delay']} s before routing a trigger")
        if options["cleanup_after"]:
            self.stdout.write(
                f"  clean-up  unread files leave IN/ after {options['cleanup_after']} s"
            )
        self.stdout.write("Ctrl-C stops it.")
        self.stdout.flush()
        try:
            while not stop.wait(0.5):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            simulator.stop()
            self.stdout.write("Serviceplatform simulator stopped.")
