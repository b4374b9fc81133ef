"""`manage.py send_file --route ID FILE`: queue files from the portal's host, print their ids."""

import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandParser

from handoff import cli
from portal.accounts.access import may_send_on
from transfers.models import Route, Transfer
from transfers.queueing import Channel, queue_file
from transfers.split import queue_split


class Command(BaseCommand):
    help = (
        "Queue files on a route and print each transfer's id. Exit codes: 0 queued (with "
        "--wait: delivered), 1 failed or cancelled, 2 usage error or refused, 3 --wait timed out."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
        parser.add_argument(
            "--route",
            type=int,
            action="append",
            required=True,
            help="the route's id; with --split-csv, give one per municipality, or one route "
            "to use every established route of its flow (same InfRef, sender and receiver)",
        )
        parser.add_argument(
            "--split-csv",
            metavar="COLUMN",
            help="split one CSV file by the municipality code in COLUMN, one transfer each",
        )
        parser.add_argument("--delimiter", default=";", help="CSV delimiter (default ;)")
        parser.add_argument("--encoding", default="utf-8", help="CSV encoding (default utf-8)")
        parser.add_argument(
            "--user",
            help="act as this portal user: the access rules of the pages apply, and the "
            "transfers are recorded as theirs",
        )
        parser.add_argument("--wait", action="store_true", help="wait until each is final")
        parser.add_argument(
            "--timeout", type=float, default=3600, help="seconds --wait waits (default 3600)"
        )

    def handle(self, *args, files: list[Path], **options) -> None:
        user = self._user(options["user"])
        routes = [self._route(pk, user) for pk in options["route"]]
        for path in files:
            if not path.is_file():
                raise cli.Refused(f"{path} is not a file.")
        try:
            if options["split_csv"]:
                transfers = self._split(routes, files, user, options)
            else:
                if len(routes) != 1:
                    raise cli.Refused("Give one --route, or --split-csv to use several.")
                transfers = [
                    queue_file(routes[0], path, user=user, channel=Channel.COMMAND)
                    for path in files
                ]
        except ValidationError as error:
            raise cli.Refused(" ".join(error.messages)) from None
        for transfer in transfers:
            self.stdout.write(str(transfer.pk))
        if options["wait"]:
            code = cli.wait_for([t.pk for t in transfers], options["timeout"], report=self._report)
            if code == cli.TIMEOUT:
                self.stderr.write(f"Not final after {options['timeout']:g} seconds.")
            if code != cli.OK:
                sys.exit(code)

    def _user(self, username: str | None):
        if username is None:
            return None
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise cli.Refused(f"No active user {username!r}.")
        return user

    def _route(self, pk: int, user) -> Route:
        route = (
            Route.objects.select_related(
                "sender__vendor", "receiver__vendor", "municipality", "infref"
            )
            .filter(pk=pk)
            .first()
        )
        if route is None:
            raise cli.Refused(f"No route {pk}.")
        if user is not None and not may_send_on(user, route):
            raise cli.Refused(f"{user.username} may not send on route {pk}.")
        return route

    def _split(self, routes: list[Route], files: list[Path], user, options) -> list[Transfer]:
        if len(files) != 1:
            raise cli.Refused("--split-csv takes one file.")
        if len(routes) == 1:
            first = routes[0]
            routes = list(
                Route.objects.filter(
                    environment=first.environment,
                    infref_id=first.infref_id,
                    sender_id=first.sender_id,
                    receiver_id=first.receiver_id,
                    state=Route.State.ESTABLISHED,
                ).select_related("municipality")
            )
            if user is not None:
                routes = [self._route(route.pk, user) for route in routes]
        return queue_split(
            routes,
            files[0],
            options["split_csv"],
            user=user,
            delimiter=options["delimiter"],
            encoding=options["encoding"],
        )

    def _report(self, transfer: Transfer) -> None:
        line = f"{transfer.pk} {transfer.state}"
        if transfer.state != Transfer.State.DELIVERED:
            line += f" {transfer.error_text or transfer.last_error}".rstrip()
        self.stdout.write(line)
