"""The world the transfers run in: vendors and everything up to the routes, through the ORM.

A few thousand rows: the vendors with their staff and the municipalities' architects, their IT
systems and SFTP accounts, InfRefs, integrations with their data specifications, GDPR
declarations, tests, consents and onboarding tasks, and the routes. Then a `Lane` per route that
carries files: what a transfer on it needs, read once.
"""

import hashlib
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import time as clock

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import models

from bench.scale import Refused, documents
from bench.scale.logins import OPERATOR, SUPERUSER, architect_username, vendor_username
from gdpr.infref import infref_name
from gdpr.models import GdprDeclaration, InfRef, InfRefRequest
from portal.accounts.models import Membership, Organisation
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
from transfers import keys
from transfers.models import Environment, Route, SftpAccount
from transfers.sftp import host_key_fingerprint

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
_HOSTS = {
    Environment.PRODUCTION: "sftp.serviceplatformen.dk",
    Environment.EXTERNAL_TEST: "sftpexttest.serviceplatformen.dk",
}
Task = OnboardingTask.State


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
    remote: str  # %-format: the UUID of the remote name
    summary: str  # %-format: the file's name, as the audit log sums a queued transfer up
    trigger: str  # %-format: remote name, size, SendersFileId, TransactionId, timestamp
    metadata: str  # %-format: FileTransferUUID, then the trigger's fields


@dataclass
class World:
    vendors: list[Organisation] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    lanes: list[Lane] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class Plan:
    """One integration, how many routes it gets, and whether it is live (else still being
    onboarded: its routes are ordered and carry nothing yet)."""

    integration: Integration
    routes: int
    live: bool


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

    def __init__(self, *, vendors: int, routes: int, days: int, seed: int, now: datetime) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - repeatable, not secret
        self.vendor_count, self.route_count = vendors, routes
        self.days, self.now = days, now
        self.start = now - timedelta(days=days)
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
            raise Refused("The municipalities are missing: run migrate first.")
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
        for environment, host in _HOSTS.items():
            host_key = _host_key(self.rng)  # the platform's, pinned by an operator
            for system in self.systems_made:
                username = _slug(system.name) + (
                    "_test" if environment != Environment.PRODUCTION else ""
                )
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

    def integrations(self) -> list[Plan]:
        """Two integrations per vendor, from each sending system to another vendor's receiver;
        one in ten is still being onboarded."""
        trios = [self.systems_made[i : i + 3] for i in range(0, len(self.systems_made), 3)]
        pairs = []
        for index, (omsorg, _journal, sag) in enumerate(trios):
            pairs.append((omsorg, trios[(index + 1) % len(trios)][1]))
            pairs.append((sag, trios[(index + 2) % len(trios)][2]))
        per, extra = divmod(self.route_count, len(pairs))
        if per + (extra > 0) > 2 * len(self.municipalities):
            raise Refused("Too many routes per integration; ask for more vendors.")
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
            Plan(integration, routes=per + (index < extra), live=index % 10 != 9)
            for index, integration in enumerate(made)
        ]

    def paperwork(self, plan: list[Plan]) -> None:
        """Data specifications (1.0, and 1.1 half a year ago for every other one), the GDPR
        declarations that go with them, the accepted tests and the onboarding tasks."""
        first, middle = self.start - timedelta(days=60), self.now - timedelta(days=self.days / 2)
        specifications = DataSpecification.objects.bulk_create(
            DataSpecification(integration=step.integration) for step in plan
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
        for step in plan:
            if not step.live:
                continue
            integration = step.integration
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
                        status=GdprDeclaration.Status.SUBMITTED
                        if version == len(lines)
                        else GdprDeclaration.Status.SUPERSEDED,
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
                integration=step.integration,
                scope="En fuld fil og en fil med fejl.",
                result=IntegrationTest.Result.PASSED
                if step.live
                else IntegrationTest.Result.PLANNED,
            )
            for step in plan
        )
        self.tasks = [
            OnboardingTask(
                integration=step.integration,
                number=number,
                state=Task.DONE if step.live or number < 30 else Task.NOT_STARTED,
                changed_at=self.start - timedelta(days=30),
            )
            for step in plan
            for number in ONCE
        ]
        self.world.counts["GDPR declarations"] = len(self.declarations)

    def routes(self, plan: list[Plan]) -> None:
        """Each integration's routes: one per municipality in production, then routes in the
        external test environment; with task 70 and the declaration's data controllers."""
        routes, joined, tasks_70, consents = [], [], [], []
        Frequency = Route.Frequency
        expectations = (Frequency.DAILY, Frequency.DAILY, Frequency.WEEKDAYS, Frequency.WEEKLY)
        expectations += (Frequency.NONE,) * 6
        for step in plan:
            integration, count, live = step.integration, step.routes, step.live
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
                frequency = (
                    self.rng.choice(expectations)
                    if state == Route.State.ESTABLISHED
                    else Frequency.NONE
                )
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
                        state=Task.DONE if live else Task.IN_PROGRESS,
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
        receiver_of = {step.integration.infref_id: step.integration.receiver_id for step in plan}
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
            trigger, metadata = documents.trigger_and_metadata(
                route, account, sender, receiver, infref
            )
            self.world.lanes.append(
                Lane(
                    route_id=route.pk,
                    account_id=account.pk,
                    username=account.username,
                    receiver_account_id=self.accounts[(receiver.pk, route.environment)].pk,
                    infref=infref,
                    municipality_name=municipality.name,
                    parties=tuple({party.pk for party in route.parties()}),
                    staff=tuple(self.staff[sender.vendor_id]),
                    word=_DATA_WORDS[index % len(_DATA_WORDS)],
                    code=municipality.municipality_code,
                    remote=documents.remote_name_format(account),
                    summary=documents.queued_summary_format(route),
                    trigger=trigger,
                    metadata=metadata,
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
