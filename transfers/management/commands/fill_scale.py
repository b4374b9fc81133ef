"""Fill an empty portal with a year of traffic at scale, for measuring the pages (bench/pages.py).

    python manage.py fill_scale [--transfers 1000000] [--vendors 50] [--routes 5000] [--days 365]

Vendors with IT systems, SFTP accounts, InfRefs, GDPR declarations, data specifications and
integrations with their onboarding tasks, routes over the 98 municipalities (loaded by a
migration), then the transfers: queued over `--days` days up to now, mostly delivered, some failed
(by KOMBIT's receipt or after five tries), a few cancelled, the newest still queued, sending or
sent, some waiting to try again; with their triggers and receipts. A share of the delivered files
is received by the other vendor's account, every failed transfer raised an alert, and the files
sent by hand left an audit event. A fixed seed makes two runs alike.

The small world goes through the ORM. The transfers and what follows them are made by a forked
process while this one writes them, as tuples in the database's own text forms: COPY on
PostgreSQL, with the foreign keys and the indexes over random ids set aside until the end;
large executemany batches on SQLite, with `synchronous` off and a rollback journal for the fill.
"""

import hashlib
import json
import math
import multiprocessing
import queue
import random
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from importlib import import_module
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.core.management.color import no_style
from django.db import connection, models, transaction
from django.utils import timezone, translation

from gdpr.infref import infref_name
from gdpr.models import GdprDeclaration, InfRef, InfRefRequest
from portal.accounts.models import Membership, Organisation
from portal.alerts.models import Alert
from portal.audit.models import AuditEvent
from portal.itsystems.models import ItSystem
from portal.onboarding.catalogue import ONCE
from portal.onboarding.models import (
    Consent,
    Integration,
    IntegrationMunicipality,
    IntegrationTest,
    OnboardingTask,
)
from portal.specs.models import DataSpecification, SpecificationVersion
from transfers import keys, protocol
from transfers.models import (
    Environment,
    ReceivedFile,
    Route,
    RouteTally,
    SftpAccount,
    Transfer,
    TransferHour,
)
from transfers.sftp import host_key_fingerprint

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
SEED = 20260301
BATCH = 20_000
USER_PREFIX = "scale-"
SUPERUSER = f"{USER_PREFIX}admin"
OPERATOR = f"{USER_PREFIX}kombit"
RECEIVED_SHARE = 0.2  # of the delivered files, fetched by a receiving account in the portal
BY_HAND_SHARE = 0.02  # of the files, sent from the portal's form rather than by an IT system


def vendor_username(index: int, number: int = 1) -> str:
    """A login of the staff of vendor number `index` (from 1): two per vendor."""
    return f"{USER_PREFIX}v{index:02d}-{number}"


def architect_username(municipality_code: str) -> str:
    return f"{USER_PREFIX}m{municipality_code}"


# Fictitious names: no vendor here exists.
_STEMS = (
    "Nordlys", "Fjordlinje", "Skovbryn", "Kystdata", "Lyngbo", "Havblik", "Engdal", "Klitrose",
    "Bøgely", "Sønderå", "Vesterhav", "Østerlund", "Midtby", "Bakkedal", "Strandeng", "Solvang",
    "Åbrink", "Granly", "Højmark", "Lærkely", "Rønnebær", "Mosevang", "Egeskov", "Hvidklint",
    "Tangholm",
)  # fmt: skip
_ENDINGS = (
    ("Systemer", "A/S"),
    ("Soft", "ApS"),
    ("Data", "A/S"),
    ("IT", "ApS"),
    ("Digital", "A/S"),
)
_FIRST_NAMES = ("Anne", "Bo", "Camilla", "Dorte", "Emil", "Freja", "Gustav", "Hanne", "Ida", "Jens")
_LAST_NAMES = ("Holm", "Berg", "Kjær", "Lund", "Mølgaard", "Nielsen", "Skov", "Thomsen")
_DATA_WORDS = (
    "borgere", "elever", "journal", "sager", "ydelser", "plejeplan", "medicin", "adresser",
    "betalinger", "fravaer", "visitation", "hjaelpemidler", "boliger", "tilsyn",
)  # fmt: skip
_SFTP_ERRORS = (
    "SftpError: the connection was lost while writing OUT/",
    "TimeoutError: timed out",
    "SSHException: Error reading SSH protocol banner",
    "OSError: [Errno 113] No route to host",
)
# The simulator's codes (transfers/simulator/router.py): KOMBIT does not publish its own.
_KOMBIT_ERRORS = (
    (106, "No route"),
    (105, "Unknown or inactive InfRef"),
    (103, "Size mismatch"),
    (109, "Name already delivered and not yet fetched"),
)


# Writing many rows --------------------------------------------------------------------------------


class Stamps:
    """Moments (seconds since the epoch) as text, millions of times: the date once per day and
    the time of day from a table, several times faster than datetime's own formatting."""

    CLOCK = [f"{h:02d}:{m:02d}:{s:02d}." for h in range(24) for m in range(60) for s in range(60)]

    def __init__(self, separator: str = " ", suffix: str = "+00:00") -> None:
        self.separator, self.suffix = separator, suffix
        self.days: dict[int, str] = {}

    def __call__(self, epoch: float) -> str:
        seconds, micro = divmod(round(epoch * 1_000_000), 1_000_000)
        day, second = divmod(seconds, 86_400)
        text = self.days.get(day)
        if text is None:
            text = self.days[day] = date.fromordinal(719_163 + day).isoformat() + self.separator
        return f"{text}{self.CLOCK[second]}{micro:06d}{self.suffix}"


class RowWriter:
    """Rows into one table at a time, as the database takes them fastest.

    Values arrive in the database's text form (`moment`, `uuid`), so nothing adapts a million
    values one by one.
    """

    def __init__(self) -> None:
        connection.ensure_connection()
        self.postgresql = connection.vendor == "postgresql"
        # Django keeps aware moments as naive UTC text and a UUID as 32 hex digits on SQLite.
        self.moment = Stamps() if self.postgresql else Stamps(suffix="")
        self.uuid: Callable[[str], str] = (
            str if self.postgresql else lambda text: text.replace("-", "")
        )

    def write(self, model: type[models.Model], columns: tuple[str, ...], rows: list[tuple]) -> None:
        if not rows:
            return
        quote = connection.ops.quote_name
        table = quote(model._meta.db_table)
        names = ", ".join(quote(column) for column in columns)
        if self.postgresql:
            with (
                connection.cursor() as cursor,
                cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            return
        marks = ", ".join("?" * len(columns))
        insert = f"INSERT INTO {table} ({names}) VALUES ({marks})"  # noqa: S608 - our names
        connection.connection.executemany(insert, rows)


# Columns of random identifiers: an index over one of them is written all over at every row.
_RANDOM_COLUMNS = ("remote_name", "senders_file_id", "transaction_id", "file_transfer_uuid")


@contextmanager
def indexes_set_aside(tables: list[str]) -> Iterator[None]:
    """On PostgreSQL: write first, index after, where that is cheaper. A foreign key checked
    row by row costs more than one join afterwards, and an index over random identifiers is
    built once faster than it is kept up to date a million times (so is a trigram index); the
    indexes over times, states and routes grow at a few places and stay. Everything comes back
    under its own name. SQLite keeps every index: there, a build reads the whole table."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        # Pending deferred checks would forbid the ALTER TABLEs; run them now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE conrelid::regclass::text = ANY(%s) "
            "AND contype IN ('f', 'u') ORDER BY contype",  # foreign keys first
            [tables],
        )
        constraints = cursor.fetchall()
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes i WHERE tablename = ANY(%s) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
            "WHERE c.conindid = format('%%I.%%I', i.schemaname, i.indexname)::regclass)",
            [tables],
        )
        indexes = [
            (name, definition)
            for name, definition in cursor.fetchall()
            if "USING gin" in definition or any(c in definition for c in _RANDOM_COLUMNS)
        ]
        for table, name, _definition in constraints:
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _definition in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
    yield
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '256MB'")
        for _name, definition in indexes:
            cursor.execute(definition)
        for table, name, definition in reversed(constraints):  # unique ones first
            cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        cursor.execute("RESET maintenance_work_mem")


def next_id(model: type[models.Model]) -> int:
    """The first free primary key: rows written with their ids start after any already there."""
    return (model.objects.aggregate(top=models.Max("pk"))["top"] or 0) + 1


# The XML a transfer carries: built and checked once by transfers.protocol, then filled in ---------

_ROW_MARKERS = ("MARKER.csv", "987654321987", "MARKER-FILE-ID")
_TRANSACTION = uuid.UUID("11111111-1111-4111-8111-111111111111")
_FILE_TRANSFER = uuid.UUID("22222222-2222-4222-8222-222222222222")
_STAMP = datetime(1999, 1, 2, 3, 4, 5, tzinfo=UTC)
_USER, _INFREF = "MARKER-USER", "MARKER-INFREF"
_SENDER = uuid.UUID("33333333-3333-4333-8333-333333333333")
_RECEIVER = uuid.UUID("44444444-4444-4444-8444-444444444444")
_FROM_CVR, _TO_CVR = "13572468", "24681357"
_TRIGGER_FIELDS = (*_ROW_MARKERS, str(_TRANSACTION), _STAMP.isoformat())


def cut(document: bytes, markers: tuple[str, ...], fixed: dict[str, str] | None = None) -> str:
    """The document as a %-format: `fixed` markers replaced, the others fields, in order."""
    text = document.decode().replace("%", "%%")
    for marker, value in (fixed or {}).items():
        text = text.replace(marker, value)
    where = [text.find(marker) for marker in markers]
    if any(text.count(marker) != 1 for marker in markers) or where != sorted(where):
        raise CommandError("a marker is missing from the document, or out of order")
    for marker in markers:
        text = text.replace(marker, "%s")
    return text


def _parts() -> tuple[protocol.FileDescriptor, protocol.RoutingInfo]:
    descriptor = protocol.FileDescriptor(
        file_name=_ROW_MARKERS[0],
        size=int(_ROW_MARKERS[1]),
        sender=_USER,
        recipients=(protocol.ROUTING_RECIPIENT,),
        senders_file_id=_ROW_MARKERS[2],
    )
    routing = protocol.RoutingInfo(
        infref=_INFREF,
        sender_it_system=_SENDER,
        sender_authority_cvr=_FROM_CVR,
        transaction_id=_TRANSACTION,
        sender_timestamp=_STAMP,
        recipient_authority_cvr=_TO_CVR,
        recipient_it_system=_RECEIVER,
    )
    return descriptor, routing


_TRIGGER = protocol.build_trigger(protocol.Trigger(*_parts()))
_METADATA = protocol.build_metadata(protocol.Metadata(_FILE_TRANSFER, *_parts()))


def receipt_format(error: tuple[int, str] | None = None) -> str:
    """Filled with the FileTransferUUID and SendersFileId, and an error's detail."""
    errors = () if error is None else (protocol.ReceiptError(*error, "MARKER-DETAIL"),)
    receipt = protocol.Receipt(_FILE_TRANSFER, _ROW_MARKERS[2], not errors, errors=errors)
    markers = (str(_FILE_TRANSFER), _ROW_MARKERS[2]) + (("MARKER-DETAIL",) if errors else ())
    return cut(protocol.build_receipt(receipt), markers)


# The world the transfers run in -------------------------------------------------------------------


@dataclass
class Lane:
    """What a transfer on one route needs, read once per route."""

    route_id: int
    account_id: int
    username: str
    receiver_account_id: int
    infref: str
    municipality_name: str
    parties: tuple[int, ...]  # sending vendor, receiving vendor, municipality: who is concerned
    staff: tuple[int, ...]  # the sending vendor's users, who send a file by hand now and then
    word: str
    code: str
    trigger: str  # %-format: remote name, size, SendersFileId, TransactionId, timestamp
    metadata: str  # %-format: FileTransferUUID, then the trigger's fields


@dataclass
class World:
    vendors: list[Organisation] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    lanes: list[Lane] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def _cvr_numbers(rng: random.Random, taken: set[str]) -> Iterator[str]:
    """Eight digits that pass the modulus-11 check, none of them already registered."""
    while True:
        digits = [rng.randint(1, 9)] + [rng.randint(0, 9) for _ in range(6)]
        check = -sum(d * w for d, w in zip(digits, (2, 7, 6, 5, 4, 3, 2), strict=True)) % 11
        cvr = "".join(map(str, digits)) + str(check)
        if check < 10 and cvr not in taken:
            taken.add(cvr)
            yield cvr


def _host_key(rng: random.Random) -> str:
    private = ed25519.Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return public.decode()


def _slug(text: str) -> str:
    plain = text.lower().translate(str.maketrans({"æ": "ae", "ø": "oe", "å": "aa"}))
    return "".join(c if c.isalnum() else "_" for c in plain).strip("_")


class Planner:
    """The vendors and everything up to the routes, through the ORM: a few thousand rows."""

    def __init__(self, options: dict, now: datetime) -> None:
        self.rng = random.Random(options["seed"])  # noqa: S311 - repeatable, not secret
        self.vendor_count, self.route_count = options["vendors"], options["routes"]
        self.days, self.now = options["days"], now
        self.start = now - timedelta(days=self.days)
        self.world = World()

    def build(self) -> World:
        self.people()
        self.systems()
        plan = self.integrations()
        self.paperwork(plan)
        self.routes(plan)
        self.lanes()
        return self.world

    def people(self) -> None:
        User = get_user_model()
        self.municipalities = list(
            Organisation.objects.filter(kind=Organisation.Kind.MUNICIPALITY).order_by(
                "municipality_code"
            )
        )
        if not self.municipalities:
            raise CommandError("The municipalities are missing: run migrate first.")
        kombit = Organisation.objects.get(kind=Organisation.Kind.KOMBIT)
        cvrs = _cvr_numbers(self.rng, set(Organisation.objects.values_list("cvr", flat=True)))
        vendors = []
        for index in range(self.vendor_count):
            stem = _STEMS[index % len(_STEMS)]
            ending, form = _ENDINGS[(index // len(_STEMS)) % len(_ENDINGS)]
            lap = index // (len(_STEMS) * len(_ENDINGS))
            name = f"{stem} {ending}{f' {lap + 1}' if lap else ''} {form}"
            vendors.append(Organisation(kind=Organisation.Kind.VENDOR, name=name, cvr=next(cvrs)))
        self.world.vendors = Organisation.objects.bulk_create(vendors)

        users = [
            User(username=SUPERUSER, is_superuser=True, is_staff=True),
            User(username=OPERATOR),
        ]
        members = [(users[1], kombit)]
        for index, vendor in enumerate(self.world.vendors, start=1):
            for number in (1, 2):
                users.append(User(username=vendor_username(index, number)))
                members.append((users[-1], vendor))
        for municipality in self.municipalities:
            users.append(User(username=architect_username(municipality.municipality_code)))
            members.append((users[-1], municipality))
        password = make_password(None)  # no one logs in with a password: set one to look around
        for user in users:
            user.password = password
            user.first_name = self.rng.choice(_FIRST_NAMES)
            user.last_name = self.rng.choice(_LAST_NAMES)
            user.email = f"{user.username}@example.invalid"
        User.objects.bulk_create(users)
        Membership.objects.bulk_create(
            Membership(user=user, organisation=organisation) for user, organisation in members
        )
        self.superuser, self.operator = users[0].pk, users[1].pk
        self.staff: dict[int, list[int]] = {}
        for user, organisation in members:
            if organisation.kind == Organisation.Kind.VENDOR:
                self.staff.setdefault(organisation.pk, []).append(user.pk)
        self.world.counts.update(vendors=len(vendors), users=len(users))

    def systems(self) -> None:
        """Three IT systems per vendor, each with an SFTP account in production and in test."""
        systems = [
            ItSystem(
                uuid=uuid.UUID(int=self.rng.getrandbits(128), version=4),
                name=f"{vendor.name.rsplit(' ', 1)[0]} {suffix}",
                vendor=vendor,
                is_sender=sends,
                is_receiver=receives,
            )
            for vendor in self.world.vendors
            for suffix, sends, receives in (
                ("Omsorg", True, False),
                ("Journal", False, True),
                ("Sag", True, True),
            )
        ]
        self.systems_made = ItSystem.objects.bulk_create(systems)
        accounts, made = [], self.start - timedelta(days=120)
        for environment in (Environment.PRODUCTION, Environment.EXTERNAL_TEST):
            host_key = _host_key(self.rng)  # the platform's, pinned by an operator
            host = {
                Environment.PRODUCTION: "sftp.serviceplatformen.dk",
                Environment.EXTERNAL_TEST: "sftpexttest.serviceplatformen.dk",
            }[environment]
            for system in self.systems_made:
                username = _slug(system.name) + ("_test" if environment != "production" else "")
                pair = keys.generate("ed25519", comment=username)
                accounts.append(
                    SftpAccount(
                        it_system=system,
                        environment=environment,
                        username=username[:64],
                        host=host,
                        key_kind=pair.kind,
                        public_key=pair.public_openssh,
                        key_fingerprint=pair.fingerprint,
                        private_key_encrypted=pair.private_encrypted,
                        key_created_at=made,
                        host_key=host_key,
                        host_key_fingerprint=host_key_fingerprint(host_key),
                        host_key_confirmed_by_id=self.operator,
                        host_key_confirmed_at=made,
                    )
                )
        self.accounts = {
            (a.it_system_id, a.environment): a for a in SftpAccount.objects.bulk_create(accounts)
        }
        self.world.counts.update({"IT systems": len(systems), "SFTP accounts": len(accounts)})

    def integrations(self) -> list[tuple[Integration, int, bool]]:
        """Two integrations per vendor, from each sending system to another vendor's receiver;
        with the number of routes each gets and whether it is live (one in ten is still being
        onboarded: its routes are ordered and carry nothing yet)."""
        trios = [self.systems_made[i : i + 3] for i in range(0, len(self.systems_made), 3)]
        pairs = []
        for index, (omsorg, _journal, sag) in enumerate(trios):
            pairs.append((omsorg, trios[(index + 1) % len(trios)][1]))
            pairs.append((sag, trios[(index + 2) % len(trios)][2]))
        per, extra = divmod(self.route_count, len(pairs))
        if per + (extra > 0) > 2 * len(self.municipalities):
            raise CommandError("Too many routes per integration; ask for more vendors.")
        first = (InfRef.objects.aggregate(top=models.Max("number"))["top"] or 1000) + 1
        infrefs = InfRef.objects.bulk_create(
            InfRef(
                name=infref_name(first + index),
                number=first + index,
                version=1,
                it_system=sender,
                assigned_by_id=self.operator,
                created_on_serviceplatform_by_id=self.operator,
                created_on_serviceplatform_at=self.start - timedelta(days=100),
            )
            for index, (sender, _receiver) in enumerate(pairs)
        )
        InfRefRequest.objects.bulk_create(
            InfRefRequest(
                it_system=sender,
                description=f"{sender.name}: data til {receiver.name}",
                requested_by_id=self.staff[sender.vendor_id][0],
                infref=infref,
            )
            for infref, (sender, receiver) in zip(infrefs, pairs, strict=True)
        )
        made = Integration.objects.bulk_create(
            Integration(
                name=f"{sender.name} til {receiver.name}",
                sender=sender,
                receiver=receiver,
                infref=infref,
                legal_basis="Serviceloven § 83; databeskyttelsesforordningens art. 6, stk. 1, e.",
                legal_basis_reviewed_on=(self.start - timedelta(days=30)).date(),
                created_by_id=self.staff[sender.vendor_id][0],
            )
            for infref, (sender, receiver) in zip(infrefs, pairs, strict=True)
        )
        Integration.objects.filter(pk__in=[i.pk for i in made]).update(
            created_at=self.start - timedelta(days=150)
        )
        self.world.counts["integrations"] = len(made)
        return [
            (integration, per + (index < extra), index % 10 != 9)
            for index, integration in enumerate(made)
        ]

    def paperwork(self, plan: list[tuple[Integration, int, bool]]) -> None:
        """Data specifications (1.0, and 1.1 half a year ago for every other one), the GDPR
        declarations that go with them, the accepted tests and the onboarding tasks."""
        first, middle = self.start - timedelta(days=60), self.now - timedelta(days=self.days / 2)
        specifications = DataSpecification.objects.bulk_create(
            DataSpecification(integration=integration) for integration, _n, _live in plan
        )
        newer = {s.integration_id for index, s in enumerate(specifications) if index % 2 == 0}
        versions = SpecificationVersion.objects.bulk_create(
            SpecificationVersion(
                specification=specification,
                major=1,
                minor=minor,
                format=SpecificationVersion.Format.CSV,
                delimiter=";",
                frequency="Dagligt kl. 02:00",
                created_by_id=self.operator,
            )
            for specification in specifications
            for minor in ((0, 1) if specification.integration_id in newer else (0,))
        )
        made = SpecificationVersion.objects.filter(pk__in=[v.pk for v in versions])
        made.filter(minor=0).update(created_at=first)
        made.filter(minor=1).update(created_at=middle)

        declarations = []
        for integration, _routes, live in plan:
            if not live:
                continue
            author = self.staff[integration.sender.vendor_id][0]
            lines = [(1, "1.0", first + timedelta(days=5))]
            if integration.pk in newer:
                lines.append((2, "1.1", middle + timedelta(days=3)))
            for version, specification, submitted in lines:
                content = {"infref": integration.infref.name, "version": version}
                declarations.append(
                    GdprDeclaration(
                        infref_id=integration.infref_id,
                        version=version,
                        status="submitted" if version == len(lines) else "superseded",
                        purpose=f"Overførsel af data: {integration.name}.",
                        includes_cpr=True,
                        legal_basis_art6=["e"],
                        data_specification_version=specification,
                        transfer_frequency=GdprDeclaration.Frequency.DAILY,
                        created_by_id=author,
                        submitted_by_id=author,
                        submitted_at=submitted,
                        submitted_content=content,
                        content_sha256=hashlib.sha256(json.dumps(content).encode()).hexdigest(),
                    )
                )
        self.declarations = GdprDeclaration.objects.bulk_create(declarations)
        IntegrationTest.objects.bulk_create(
            IntegrationTest(
                integration=integration,
                scope="En fuld fil og en fil med fejl.",
                result=IntegrationTest.Result.PASSED if live else IntegrationTest.Result.PLANNED,
            )
            for integration, _routes, live in plan
        )
        self.tasks = [
            OnboardingTask(
                integration=integration,
                number=number,
                state="done" if live or number < 30 else "not_started",
                changed_at=self.start - timedelta(days=30),
            )
            for integration, _routes, live in plan
            for number in ONCE
        ]
        self.world.counts["GDPR declarations"] = len(self.declarations)

    def routes(self, plan: list[tuple[Integration, int, bool]]) -> None:
        """Each integration's routes: one per municipality in production, then routes in the
        external test environment; with task 70 and the declaration's data controllers."""
        routes, joined, tasks_70, consents = [], [], [], []
        expectations = ("daily", "daily", "weekdays", "weekly") + ("",) * 6
        for integration, count, live in plan:
            chosen = self.rng.sample(self.municipalities, min(len(self.municipalities), count))
            places = [(Environment.PRODUCTION, m) for m in chosen]
            places += [(Environment.EXTERNAL_TEST, m) for m in chosen[: count - len(places)]]
            contacts = f"drift@{_slug(integration.sender.vendor.name)}.example"
            for environment, municipality in places:
                draw = self.rng.random()
                state = Route.State.ESTABLISHED
                if not live or draw < 0.02:
                    state = Route.State.ORDERED
                elif draw < 0.05:
                    state = Route.State.SUSPENDED
                frequency = self.rng.choice(expectations) if state == "established" else ""
                routes.append(
                    Route(
                        environment=environment,
                        infref_id=integration.infref_id,
                        sender=integration.sender,
                        receiver=integration.receiver,
                        municipality=municipality,
                        integration=integration,
                        state=state,
                        expected_frequency=frequency,
                        expected_by=clock(6, 0) if frequency else None,
                        contacts=contacts if self.rng.random() < 0.3 else "",
                    )
                )
            # Live: no agreement needed and the test accepted, by the vendor and each municipality.
            parties = [(integration.sender.vendor_id, None)] + [(m.pk, m.pk) for m in chosen]
            consents += [
                Consent(
                    integration=integration,
                    subject=subject,
                    organisation_id=organisation,
                    municipality_id=municipality,
                    given_by_id=self.operator,
                )
                for organisation, municipality in (parties if live else [])
                for subject in (Consent.Subject.NO_AGREEMENT, Consent.Subject.TEST)
            ]
            for municipality in chosen:
                joined.append(
                    IntegrationMunicipality(integration=integration, municipality=municipality)
                )
                tasks_70.append(
                    OnboardingTask(
                        integration=integration,
                        number=70,
                        municipality=municipality,
                        state="done" if live else "in_progress",
                        changed_at=self.start - timedelta(days=10),
                    )
                )
        IntegrationMunicipality.objects.bulk_create(joined)
        Consent.objects.bulk_create(consents)
        OnboardingTask.objects.bulk_create(self.tasks + tasks_70)
        taking_part: dict[int, list[int]] = {}
        for row in joined:
            taking_part.setdefault(row.integration.infref_id, []).append(row.municipality_id)
        controllers = GdprDeclaration.controllers.through
        controllers.objects.bulk_create(
            controllers(gdprdeclaration_id=declaration.pk, organisation_id=municipality)
            for declaration in self.declarations
            for municipality in taking_part[declaration.infref_id]
        )
        receiving = GdprDeclaration.receiving_it_systems.through
        receiver_of = {integration.infref_id: integration.receiver_id for integration, *_ in plan}
        receiving.objects.bulk_create(
            receiving(gdprdeclaration_id=d.pk, itsystem_id=receiver_of[d.infref_id])
            for d in self.declarations
        )
        self.world.routes = Route.objects.bulk_create(routes)
        Route.objects.filter(pk__in=[r.pk for r in routes]).update(
            changed_at=self.start - timedelta(days=5)
        )
        self.world.counts.update(
            {"routes": len(routes), "onboarding tasks": len(self.tasks + tasks_70)}
        )

    def lanes(self) -> None:
        """One lane per route that carries files, and how busy it is: a few carry most."""
        names = dict(InfRef.objects.values_list("pk", "name"))
        systems = {system.pk: system for system in self.systems_made}
        for index, route in enumerate(self.world.routes):
            if route.state == Route.State.ORDERED:
                continue
            sender, receiver = systems[route.sender_id], systems[route.receiver_id]
            account = self.accounts[(sender.pk, route.environment)]
            municipality, infref = route.municipality, names[route.infref_id]
            fixed = {
                f">{_USER}<": f">{account.username}<",
                _INFREF: infref,
                str(_SENDER): str(sender.uuid),
                str(_RECEIVER): str(receiver.uuid),
                _FROM_CVR: municipality.cvr,  # the municipality moves its own data
                _TO_CVR: municipality.cvr,
            }
            self.world.lanes.append(
                Lane(
                    route_id=route.pk,
                    account_id=account.pk,
                    username=account.username,
                    receiver_account_id=self.accounts[(receiver.pk, route.environment)].pk,
                    infref=infref,
                    municipality_name=municipality.name,
                    parties=tuple({sender.vendor_id, receiver.vendor_id, municipality.pk}),
                    staff=tuple(self.staff[sender.vendor_id]),
                    word=_DATA_WORDS[index % len(_DATA_WORDS)],
                    code=municipality.municipality_code,
                    trigger=cut(_TRIGGER, _TRIGGER_FIELDS, fixed),
                    metadata=cut(_METADATA, (str(_FILE_TRANSFER), *_TRIGGER_FIELDS), fixed),
                )
            )
            # Most routes carry a file a day or so, a few many a day: a long tail, as a
            # lognormal has it.
            busy = self.rng.lognormvariate(0, 1)
            if route.environment == Environment.EXTERNAL_TEST:
                busy *= 0.05
            if route.state == Route.State.SUSPENDED:
                busy *= 0.2
            self.world.weights.append(busy)
        self.world.counts["routes carrying files"] = len(self.world.lanes)


# The traffic --------------------------------------------------------------------------------------


def moments(rng: random.Random, count: int, days: int, now: datetime) -> list[float]:
    """When each transfer was queued, oldest first: busier on weekdays, in the nightly batch and
    as the year went on; the newest few minutes ago, still on their way."""
    today = now.astimezone(COPENHAGEN).date()
    midnights, weights = [], []
    for offset in range(days):
        day = today - timedelta(days=days - 1 - offset)
        midnights.append(datetime.combine(day, clock.min, tzinfo=COPENHAGEN).timestamp())
        growth = 0.6 + 0.4 * offset / max(days - 1, 1)
        weights.append(growth * (1.0 if day.weekday() < 5 else 0.3))
    end, random_ = now.timestamp(), rng.random
    stamps = []
    for day in rng.choices(range(days), weights=weights, k=count):
        # The nightly batch from 01:00 to 04:00, or working hours from 07:00 to 17:00.
        second = 3600 + 10800 * random_() if random_() < 0.55 else 25200 + 36000 * random_()
        stamp = midnights[day] + second
        stamps.append(stamp if stamp < end - 1 else end - 1 - 1800 * random_())
    stamps.sort()
    for back, seconds in enumerate((5, 20, 40, 70, 100, 200, 400), start=1):
        if back <= count:
            stamps[-back] = max(stamps[-back], end - seconds)
    stamps.sort()
    return stamps


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def _uuids(bits: int) -> list[str]:
    """Four random (version 4) UUIDs in their text form, from 512 random bits."""
    text = f"{bits:0128x}"
    return [
        f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"
        for h in (text[0:32], text[32:64], text[64:96], text[96:128])
    ]


@dataclass
class Batch:
    """The rows of one batch of transfers, with the rows that follow from them."""

    transfers: list[tuple] = field(default_factory=list)
    received: list[tuple] = field(default_factory=list)
    alerts: list[tuple] = field(default_factory=list)
    alert_concerns: list[tuple] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)
    event_concerns: list[tuple] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # of everything made so far

    def write(self, writer: RowWriter) -> None:
        writer.write(Transfer, TRANSFER_COLUMNS, self.transfers)
        writer.write(ReceivedFile, RECEIVED_COLUMNS, self.received)
        writer.write(Alert, ALERT_COLUMNS, self.alerts)
        writer.write(Alert.concerns.through, ("alert_id", "organisation_id"), self.alert_concerns)
        writer.write(AuditEvent, EVENT_COLUMNS, self.events)
        writer.write(
            AuditEvent.concerns.through, ("auditevent_id", "organisation_id"), self.event_concerns
        )


class Traffic:
    """Transfers as the workers would have left them, in the database's text forms."""

    def __init__(self, rng: random.Random, now: datetime, writer: RowWriter) -> None:
        self.rng, self.end, self.writer = rng, now.timestamp(), writer
        self.data_dir = settings.TRANSFER_DATA_DIR
        # The daily retention run deletes the files, keeping the records (transfers.retention).
        self.payload_kept = settings.TRANSFER_PAYLOAD_RETENTION_DAYS * 86400
        self.received_kept = settings.RECEIVED_FILE_RETENTION_DAYS * 86400
        self.iso = Stamps("T")
        self.local_days: dict[int, str] = {}
        self.success = receipt_format()
        self.errors = [(code, text, receipt_format((code, text))) for code, text in _KOMBIT_ERRORS]
        with translation.override("da"):
            self.queued_label = str(Transfer.State.QUEUED.label)
        self.ids = {model: next_id(model) for model in (Transfer, ReceivedFile, Alert, AuditEvent)}
        self.counts = dict.fromkeys(
            ("transfers", "received files", "alerts", "audit events", *Transfer.State.values), 0
        )

    def _take(self, model: type[models.Model]) -> int:
        self.ids[model] += 1
        return self.ids[model] - 1

    def _day(self, epoch: float) -> str:
        """The Danish date, for the file name."""
        hour = int(epoch // 3600)
        text = self.local_days.get(hour)
        if text is None:
            text = self.local_days[hour] = datetime.fromtimestamp(epoch, COPENHAGEN).strftime(
                "%Y%m%d"
            )
        return text

    @staticmethod
    def _state(age: float, draw: float) -> str:
        if age < 120:  # the last two minutes: waiting for a worker, on their way, sent
            return "queued" if age < 30 else "sending" if age < 60 else "sent"
        if age < 900:
            return "sent" if draw < 0.4 else "queued" if draw < 0.5 else "delivered"
        if draw < 0.945 or draw >= 0.995:
            return "delivered"
        # A few sent long ago that never got their receipt.
        return "failed" if draw < 0.985 else "no_receipt" if draw < 0.99 else "cancelled"

    def add(self, queued: float, lane: Lane, batch: Batch) -> None:
        rng, moment, as_uuid = self.rng, self.writer.moment, self.writer.uuid
        random_ = rng.random
        pk = self._take(Transfer)
        age = self.end - queued
        size = int(math.exp(rng.gauss(12.2, 1.6))) + 1  # median ~200 KB, a long tail
        original = f"{lane.word}_{lane.code}_{self._day(queued)}_{pk % 1000:03d}.csv"
        name_id, files_id, transaction, file_transfer = _uuids(rng.getrandbits(512))
        remote = f"{lane.username}_FDD_{name_id}.csv"
        sha256 = f"{rng.getrandbits(256):064x}"
        draw = random_()
        state = self._state(age, draw)
        self.counts[state] += 1

        attempts = 0 if state in ("queued", "cancelled") else 1
        started = trigger_at = sent = finished = heartbeat = None
        trigger = receipt = last_error = error_text = ""
        error_code, done, platform_id = None, 0, None
        if state == "queued" and age >= 120:
            # Back in the queue after the connection dropped, waiting to try again.
            attempts, started = 1 + int(draw * 100) % 3, queued
            last_error = rng.choice(_SFTP_ERRORS)
        elif attempts:
            started = queued + 0.2 + 4 * random_()
            if random_() < 0.03:
                attempts, started = 2, started + 30  # a retry that went through
        by_receipt = state == "failed" and draw < 0.97
        if state == "sending":
            done, heartbeat = int(size * random_()), self.end - random_()
        elif state in ("sent", "no_receipt", "delivered") or by_receipt:
            done, trigger_at = size, started + size / 20e6 + 0.1
            sent = trigger_at + 0.05
            trigger = lane.trigger % (remote, size, files_id, transaction, self.iso(trigger_at))
        if state == "delivered" or by_receipt:
            finished, platform_id = sent + 2 + 40 * random_(), file_transfer
            if state == "delivered":
                receipt = self.success % (file_transfer, files_id)
            else:
                error_code, description, receipt_text = rng.choice(self.errors)
                detail = f"{lane.infref}: {description.lower()}"
                receipt = receipt_text % (file_transfer, files_id, detail)
                error_text = f"{description}: {detail}"
        elif state == "failed":
            attempts, last_error, finished = 5, rng.choice(_SFTP_ERRORS), started + 600
        elif state == "cancelled":
            finished = queued + 60 + 3600 * random_()
        creator = rng.choice(lane.staff) if random_() < BY_HAND_SHARE else None
        deleted = None
        if finished is not None and state != "sent":
            deleted = finished + self.payload_kept + 86400 * random_()
            deleted = deleted if deleted < self.end else None
        batch.transfers.append(
            (
                pk,
                lane.route_id,
                lane.account_id,
                state,
                original,
                f"{self.data_dir}/outgoing/{remote}",
                size,
                sha256,
                remote,
                as_uuid(files_id),
                as_uuid(transaction),
                platform_id and as_uuid(platform_id),
                done,
                attempts,
                last_error,
                error_code,
                error_text,
                trigger,
                receipt,
                moment(queued),
                heartbeat and moment(heartbeat),
                started and moment(started),
                trigger_at and moment(trigger_at),
                sent and moment(sent),
                finished and moment(finished),
                creator,
                deleted and moment(deleted),
            )
        )
        self.counts["transfers"] += 1
        if state == "delivered" and random_() < RECEIVED_SHARE:
            metadata = lane.metadata % (
                file_transfer,
                remote,
                size,
                files_id,
                transaction,
                self.iso(trigger_at),
            )
            self._received(lane, batch, remote, size, sha256, metadata, file_transfer, finished)
        if state == "failed":
            reason = f"{error_code}: {error_text}" if error_code is not None else last_error
            self._alert(lane, batch, pk, attempts, original, reason, finished, age)
        if creator is not None:
            event = self._take(AuditEvent)
            batch.events.append(
                (
                    event,
                    moment(queued),
                    creator,
                    AuditEvent.Action.SEND.value,
                    "transfers.Transfer",
                    str(pk),
                    f"{original} → {lane.municipality_name} ({self.queued_label})",
                    json.dumps({"sha256": sha256}),
                )
            )
            batch.event_concerns += [(event, party) for party in lane.parties]
            self.counts["audit events"] += 1

    def _received(self, lane, batch, remote, size, sha256, metadata, platform_id, finished) -> None:
        """Fetched by the receiving system's account in the portal a few minutes later."""
        received = finished + 5 + 300 * self.rng.random()
        deleted = received + self.received_kept + 86400 * self.rng.random()
        batch.received.append(
            (
                self._take(ReceivedFile),
                lane.receiver_account_id,
                remote,
                ReceivedFile.State.RECEIVED.value,
                "",
                f"{self.data_dir}/received/{lane.receiver_account_id}/{platform_id}-{remote}",
                size,
                sha256,
                lane.infref,
                lane.username,
                lane.route_id,
                metadata,
                self.writer.uuid(platform_id),
                self.writer.moment(received),
                self.writer.moment(deleted) if deleted < self.end else None,
            )
        )
        self.counts["received files"] += 1

    def _alert(self, lane, batch, pk, attempts, original, reason, finished, age) -> None:
        """The failure's alert; looked at within a day, but the last fortnight's are open."""
        # The values the alert service keeps (portal.alerts.service.transfer_failed), worded
        # when read; `message` is only for alerts from before they were kept.
        params = json.dumps(
            {"file": original, "municipality": lane.municipality_name, "reason": reason}
        )
        resolved = finished + 86400 * self.rng.random() if age > 14 * 86400 else None
        alert = self._take(Alert)
        batch.alerts.append(
            (
                alert,
                Alert.Kind.TRANSFER_FAILED.value,
                f"failed:{pk}:{attempts}",
                lane.route_id,
                pk,
                None,
                "",
                params,
                self.writer.moment(finished),
                resolved and self.writer.moment(resolved),
                lane.staff[0] if resolved else None,
            )
        )
        batch.alert_concerns += [(alert, party) for party in lane.parties]
        self.counts["alerts"] += 1


TRANSFER_COLUMNS = (
    "id", "route_id", "account_id", "state", "original_name", "payload", "size", "sha256",
    "remote_name", "senders_file_id", "transaction_id", "file_transfer_uuid", "bytes_done",
    "attempts", "last_error", "error_code", "error_text", "trigger_xml", "receipt_xml",
    "queued_at", "heartbeat_at", "started_at", "trigger_started_at", "sent_at", "finished_at",
    "created_by_id", "payload_deleted_at",
)  # fmt: skip
RECEIVED_COLUMNS = (
    "id", "account_id", "remote_name", "state", "reason", "stored_path", "size", "sha256",
    "infref_name", "sender_username", "route_id", "metadata_xml", "file_transfer_uuid",
    "received_at", "file_deleted_at",
)  # fmt: skip
ALERT_COLUMNS = (
    "id", "kind", "dedupe_key", "route_id", "transfer_id", "received_file_id", "message",
    "params", "raised_at", "resolved_at", "resolved_by_id",
)  # fmt: skip
EVENT_COLUMNS = (
    "id", "at", "actor_id", "action", "object_type", "object_id", "summary", "details",
)  # fmt: skip
WITH_IDS = (Transfer, ReceivedFile, Alert, AuditEvent)
BULK_MODELS = (
    Transfer, ReceivedFile, Alert, Alert.concerns.through, AuditEvent, AuditEvent.concerns.through
)  # fmt: skip


def fill_traffic(world: World, options: dict, now: datetime) -> dict[str, int]:
    """The transfers and what follows them, a batch at a time."""
    rng = random.Random(options["seed"] + 1)  # noqa: S311 - repeatable, not secret
    count = options["transfers"]
    if count and not world.lanes:
        raise CommandError("No route carries files; ask for more routes.")
    writer = RowWriter()
    traffic = Traffic(rng, now, writer)
    queued = moments(rng, count, options["days"], now)
    lanes = rng.choices(world.lanes, world.weights, k=count)

    def batches() -> Iterator[Batch]:
        for first in range(0, count, BATCH):
            batch = Batch()
            for position in range(first, min(first + BATCH, count)):
                traffic.add(queued[position], lanes[position], batch)
            batch.counts = dict(traffic.counts)
            yield batch

    counts = traffic.counts
    with indexes_set_aside([model._meta.db_table for model in BULK_MODELS]):
        for batch in made_alongside(batches):
            batch.write(writer)
            counts = batch.counts
    return counts


def made_alongside(batches: Callable[[], Iterator[Batch]]) -> Iterator[Batch]:
    """The batches, made by a forked process while this one writes the one before: building
    rows in Python costs about what writing them does, and threads would fight over the GIL.
    The child only computes; it never touches the database connection it inherits."""
    context = multiprocessing.get_context("fork")
    channel = context.Queue(maxsize=2)

    def make() -> None:
        try:
            for batch in batches():
                channel.put(batch)
            channel.put(None)
        except BaseException:
            channel.put(traceback.format_exc())

    maker = context.Process(target=make, name="fill-scale-maker", daemon=True)
    maker.start()
    try:
        while True:
            try:
                batch = channel.get(timeout=1)
            except queue.Empty:
                if not maker.is_alive():
                    raise CommandError("The process making the rows died.") from None
                continue
            if batch is None:
                return
            if isinstance(batch, str):
                raise CommandError(f"Making the rows failed:\n{batch}")
            yield batch
    finally:
        if maker.is_alive():
            maker.terminate()
        maker.join()


# Emptying the portal ------------------------------------------------------------------------------

# What a portal keeps when it is emptied: the reference organisations (the municipalities and
# KOMBIT; vendors are deleted), the task schedules, content types, groups and permissions.
_KEPT = {
    "contenttypes.contenttype",
    "auth.permission",
    "auth.group",
    "auth.group_permissions",
    "accounts.organisation",
    "django_q.schedule",
}


# The migrations whose triggers keep counts of the transfers, and the tables they keep.
_COUNTED_BY = {
    "transfers.migrations.0011_ordered_hour_counts": TransferHour,
    "transfers.migrations.0010_route_tallies": RouteTally,
}


@contextmanager
def counted_after() -> Iterator[None]:
    """The triggers that count transfers per hour and per route set aside while the transfers
    are written, then everything counted in one pass and the triggers back, as their
    migrations do it: a trigger run for each of a million rows made the fill half again as
    long."""
    migrations = {import_module(name): model for name, model in _COUNTED_BY.items()}
    with connection.cursor() as cursor:
        for migration in migrations:
            migration.stop_watching(connection.vendor, cursor.execute)
    yield
    with connection.cursor() as cursor:
        for migration, model in migrations.items():
            cursor.execute(f"DELETE FROM {model._meta.db_table}")  # noqa: S608 - our name
            migration.count_and_watch(connection.vendor, cursor.execute)


def clear() -> None:
    """Empty the portal but for what `_KEPT` names: a fill starts from nothing."""
    tables = [
        model._meta.db_table
        for model in apps.get_models(include_auto_created=True)
        if model._meta.label_lower not in _KEPT and model._meta.managed
    ]
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Deferred checks still pending (inside a caller's transaction) forbid a TRUNCATE.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"TRUNCATE {', '.join(map(quote, tables))} RESTART IDENTITY")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        else:
            # SQLite checks foreign keys at commit, so the order does not matter.
            for table in tables:
                cursor.execute(f"DELETE FROM {quote(table)}")  # noqa: S608 - our names
            marks = ", ".join("?" * len(tables))
            cursor.execute(f"DELETE FROM sqlite_sequence WHERE name IN ({marks})", tables)  # noqa: S608
        Organisation.objects.filter(kind=Organisation.Kind.VENDOR).delete()


@contextmanager
def relaxed_writes() -> Iterator[None]:
    """For the fill only: PostgreSQL commits without waiting for its WAL. SQLite keeps its
    indexes in a large cache and, outside a transaction of the caller's, writes without
    waiting for the disk and with a rollback journal: new pages need no journal, where WAL
    would write the whole fill twice."""
    pragmas = (("cache_size", "-1048576"),)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET synchronous_commit = off")
        elif not connection.in_atomic_block:  # neither may change inside a transaction
            pragmas += (("synchronous", "OFF"), ("journal_mode", "DELETE"))
        before = {}
        for pragma, value in pragmas if connection.vendor == "sqlite" else ():
            cursor.execute(f"PRAGMA {pragma}")
            before[pragma] = cursor.fetchone()[0]
            cursor.execute(f"PRAGMA {pragma} = {value}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("RESET synchronous_commit")
            for pragma, value in before.items():
                cursor.execute(f"PRAGMA {pragma} = {value}")


def settle(tables: Iterable[str]) -> None:
    """Sequences past the ids written, and on PostgreSQL the statistics and visibility map that
    autovacuum would soon gather after a bulk load (index-only scans rely on the latter)."""
    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), WITH_IDS):
            cursor.execute(statement)
        if connection.vendor == "postgresql":
            command = "ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)"
            cursor.execute(f"{command} {', '.join(tables)}")


class Command(BaseCommand):
    help = (
        "Fill an empty portal with vendors, IT systems, integrations, routes and a year of "
        "transfers, for benchmarks. Refuses a database that has transfers unless --clear."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--transfers", type=int, default=1_000_000)
        parser.add_argument("--vendors", type=int, default=50)
        parser.add_argument("--routes", type=int, default=5000)
        parser.add_argument("--days", type=int, default=365, help="history queued over this")
        parser.add_argument("--seed", type=int, default=SEED, help="the same seed, the same data")
        parser.add_argument(
            "--clear",
            "--force",
            action="store_true",
            dest="clear",
            help="empty the portal first: every user, vendor, IT system, route and transfer "
            "goes (the municipalities and KOMBIT stay)",
        )

    def handle(self, *args, **options) -> None:
        if options["transfers"] < 0 or min(options[n] for n in ("vendors", "routes", "days")) < 1:
            raise CommandError("The counts must be positive.")
        if options["routes"] < 2 * options["vendors"]:
            raise CommandError("Ask for at least two routes per vendor: one per integration.")
        User = get_user_model()
        filled = Transfer.objects.exists() or User.objects.filter(username=SUPERUSER).exists()
        if filled and not options["clear"]:
            raise CommandError(
                "The database already has transfers or an earlier fill; --clear empties it first."
            )
        started, now = time.monotonic(), timezone.now()
        with relaxed_writes():
            with transaction.atomic():
                if options["clear"]:
                    clear()
                world = Planner(options, now).build()
                world_seconds = time.monotonic() - started
                with counted_after():
                    made = fill_traffic(world, options, now)
            settle(model._meta.db_table for model in (*BULK_MODELS, Route, *_COUNTED_BY.values()))
        self.report({**world.counts, **made}, world_seconds, time.monotonic() - started)

    def report(self, counts: dict[str, int], world_seconds: float, seconds: float) -> None:
        self.stdout.write(
            f"Filled {connection.vendor} in {seconds:.1f} s (everything up to the routes in "
            f"{world_seconds:.1f} s):"
        )
        states = set(Transfer.State.values)
        for label, value in counts.items():
            if label not in states:
                self.stdout.write(f"  {label:<24} {value:>10,}")
        self.stdout.write(
            "  by state: " + ", ".join(f"{state} {counts[state]:,}" for state in sorted(states))
        )
        self.stdout.write(
            f"  logins (no password: set one to look around): {SUPERUSER}, {OPERATOR}, "
            f"{vendor_username(1)} (staff of the first vendor), {architect_username('751')} "
            "(Aarhus)"
        )
