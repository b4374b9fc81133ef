"""Backup and restore that are tested (issue 15, item 7): `verify_files`, the runbook of
docs/operations.md on PostgreSQL, and the refusal of a database a newer portal migrated.

- `verify_files` on a small world made through the portal's own functions: all intact is exit
  0; a missing or changed file (or database content) is named with its record, exit 1; a file
  deleted by retention is not looked for; strays are named only when asked, never an error.
- The runbook: a private PostgreSQL server, a portal whose worker cluster sends files through
  the simulator and fetches them, a submitted declaration, a specification document and an
  agreement; `pg_dump -Fc` and a tar of the data folder, as docs/operations.md says; the
  database dropped and the folder deleted; `pg_restore` into a new database, the files back,
  `migrate`, `check`, `verify_files`; then the restored portal answers and sends one more file.
- A database with a migration this code does not have: `migrate` stops with one message and
  changes nothing; without that row the same older database migrates as ever.

The functions `documents` and `after_restore` run inside portal processes on the private
database (`python -c "...; tests.test_backup_restore.documents()"`), which the test's own
connection cannot reach.
"""

import hashlib
import io
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone

from gdpr.models import GdprDeclaration
from portal.onboarding.models import ProcessingAgreement
from portal.outbox.models import MailAttachment
from portal.specs.documents import inspect_document
from portal.specs.models import SpecificationDocument
from portal.specs.versions import create_version
from tests.support import private_portal
from tests.support.handoff_setup import ready_fixture, received_file  # noqa: F401
from tests.support.pdf import ONE_PAGE, pdf
from tests.support.private_postgres import private_postgres
from tests.support.simulator_fixtures import running_simulator, wait_for, write_registry
from tests.support.specs import STRUCTURE
from tests.support.system import ROOT, child_environment
from transfers.models import ReceivedFile, Transfer
from transfers.queueing import queue_send
from transfers.retention import delete_expired_files

DATA = "kommunekode;cpr;navn\r\n751;0101011234;Åse Ørsted\r\n".encode() * 200


def _specification_and_agreement(integration, staff) -> tuple:
    """A specification version with a PDF document, and the signed agreement, as the pages
    store them (content checked, random name under MEDIA_ROOT, SHA-256 recorded)."""
    upload = SimpleUploadedFile("beskrivelse.pdf", pdf(2))
    # A minor version after the one the declaration names: sends go on (the declaration is only
    # to be renewed), so the world keeps sending after the restore.
    version = create_version(
        integration,
        major=1,
        minor=1,
        structure=STRUCTURE,
        fields=integration.data_specification.latest_version().fields.all(),
        user=staff,
        documents=[(upload, inspect_document(upload))],
    )
    agreement = ProcessingAgreement(
        integration=integration, title="Databehandleraftale 2026", signed_on=date(2026, 3, 1)
    )
    agreement.document.save("aftale.pdf", ContentFile(ONE_PAGE), save=False)
    agreement.document_sha256 = hashlib.sha256(ONE_PAGE).hexdigest()
    agreement.save()
    return version.documents.get(), agreement


# -- verify_files on a small world ----------------------------------------------------------------


@dataclass
class World:
    kept: list[Transfer]
    expired: Transfer  # its local copy deleted by retention
    received: list[ReceivedFile]
    document: SpecificationDocument
    agreement: ProcessingAgreement
    # 2 local copies, 2 received files, a document, an agreement, the declaration's PDF
    # attached to its mail, the declaration's snapshot
    checked: int = 8


@pytest.fixture
def world(ready, settings, tmp_path) -> World:
    settings.DATA_DIR = tmp_path
    settings.TRANSFER_DATA_DIR = tmp_path / "transfers"
    settings.MEDIA_ROOT = tmp_path / "media"
    kept = [
        queue_send(ready.route, io.BytesIO(DATA * n), original_name="borgere.csv") for n in (1, 2)
    ]
    expired = queue_send(ready.route, io.BytesIO(DATA), original_name="gammel.csv")
    Transfer.objects.filter(pk=expired.pk).update(
        state=Transfer.State.DELIVERED, finished_at=timezone.now() - timedelta(days=400)
    )
    assert delete_expired_files().payloads == 1
    inbox = settings.TRANSFER_DATA_DIR / "received" / ready.receiver.username
    inbox.mkdir(parents=True)
    received = [
        received_file(ready.receiver, ready.route, inbox, DATA * n, f"fil-{n}.csv") for n in (1, 3)
    ]
    document, agreement = _specification_and_agreement(ready.route.integration, ready.staff)
    assert MailAttachment.objects.count() == 1
    assert GdprDeclaration.objects.filter(status="submitted").count() == 1
    return World(kept, Transfer.objects.get(pk=expired.pk), received, document, agreement)


def verify_files(*arguments: str) -> tuple[int, list[str]]:
    out = io.StringIO()
    try:
        call_command("verify_files", *arguments, stdout=out)
        code = 0
    except SystemExit as exit:
        code = exit.code
    return code, out.getvalue().splitlines()


def flip_a_byte(path: Path, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if at is None else at
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_every_file_intact_is_exit_0_and_counted(world):
    assert world.expired.payload_deleted_at is not None
    assert not Path(world.expired.payload).exists()
    code, lines = verify_files()
    assert code == 0
    assert lines == [f"checked {world.checked}, missing 0, changed 0"]
    assert verify_files("--quiet") == (0, [])


def test_a_missing_or_changed_file_is_named_with_its_record_and_exit_1(world):
    missing = Path(world.kept[0].payload)
    missing.unlink()
    changed = Path(world.received[1].stored_path)
    flip_a_byte(changed)
    document = Path(world.document.file.path)
    document.write_bytes(document.read_bytes()[:-1])  # one byte short
    agreement = Path(world.agreement.document.path)
    flip_a_byte(agreement, at=0)

    code, lines = verify_files()
    assert code == 1
    changed_sha = hashlib.sha256(changed.read_bytes()).hexdigest()
    agreement_sha = hashlib.sha256(agreement.read_bytes()).hexdigest()
    assert lines == [
        f"missing: transfers.Transfer {world.kept[0].pk} {missing}",
        f"changed: transfers.ReceivedFile {world.received[1].pk} {changed} "
        f"(SHA-256 {changed_sha}, recorded {world.received[1].sha256})",
        f"changed: specs.SpecificationDocument {world.document.pk} {document} "
        f"({world.document.size - 1} bytes, recorded {world.document.size})",
        f"changed: onboarding.ProcessingAgreement {world.agreement.pk} {agreement} "
        f"(SHA-256 {agreement_sha}, recorded {world.agreement.document_sha256})",
        f"checked {world.checked}, missing 1, changed 3",
    ]
    assert verify_files("--quiet") == (1, lines[:-1])


def test_contents_kept_in_the_database_are_compared_with_their_sha256(world):
    attachment = MailAttachment.objects.get()
    MailAttachment.objects.filter(pk=attachment.pk).update(content=b"%PDF-1.7\nchanged\n")
    declaration = GdprDeclaration.objects.get(status="submitted")
    content = {**declaration.submitted_content, "purpose": "Noget andet"}
    # A queryset update, as a hand in the database would: save() refuses a submitted one.
    GdprDeclaration.objects.filter(pk=declaration.pk).update(submitted_content=content)

    code, lines = verify_files("--quiet")
    assert code == 1
    assert [line.split(" (")[0] for line in lines] == [
        f"changed: outbox.MailAttachment {attachment.pk} in the database",
        f"changed: gdpr.GdprDeclaration {declaration.pk} in the database",
    ]
    assert f"recorded {declaration.content_sha256})" in lines[1]


def test_strays_are_named_only_when_asked_and_are_no_error(world, settings):
    transfers, media = settings.TRANSFER_DATA_DIR, settings.MEDIA_ROOT
    unknown = transfers / "outgoing" / "alfa_omsorg_FDD_unknown.csv"
    orphan = media / "specifications" / "0123abcd.pdf"
    kept_too_long = Path(world.expired.payload)
    work_in_progress = [
        transfers / "outgoing" / "alfa_omsorg_FDD_half.csv.part",
        transfers / "received" / "beta_journal" / ".incoming" / "0a1b.part",
        transfers / "received" / "beta_journal" / ".incoming" / "0a1b.metadata",
        transfers / "uploads" / "api-x1y2.upload",
        transfers / "receipts" / "alfa_omsorg_FDD_x.csv.sftpreceipt",
    ]
    for path in [unknown, orphan, kept_too_long, *work_in_progress]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(DATA)

    assert verify_files() == (0, [f"checked {world.checked}, missing 0, changed 0"])
    code, lines = verify_files("--strays")
    assert code == 0
    assert sorted(lines[:-1]) == sorted(
        [
            f"not recorded: {unknown}",
            f"not recorded: {orphan}",
            f"not recorded: {kept_too_long} "
            f"(transfers.Transfer {world.expired.pk} says retention deleted it)",
        ]
    )
    assert lines[-1] == f"checked {world.checked}, missing 0, changed 0, not recorded 3"


# -- the runbook on PostgreSQL --------------------------------------------------------------------

FILES = 4
# docs/operations.md, "Restore": as the portal's role, so ownership and comments (the pg_trgm
# extension's belongs to whoever created it) are left out.
RESTORE_OPTIONS = ["--no-owner", "--no-comments", "--exit-on-error"]
# docs/operations.md, "Back up": the data folder without the cache and work in progress.
TAR_EXCLUDES = [
    "--exclude=./cache",
    "--exclude=./transfers/uploads",
    "--exclude=.incoming",
    "--exclude=*.part",
]


def _manage(
    environment: dict, *arguments: str, timeout: float = 180
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _in_portal(environment: dict, function: str) -> dict:
    """One of this module's functions in a portal process; what it printed last, as JSON."""
    code = f"import django; django.setup(); import tests.test_backup_restore as t; t.{function}()"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def documents() -> None:
    """In a portal process: the specification document and the agreement of the world."""
    from django.contrib.auth import get_user_model

    from portal.onboarding.models import Integration

    staff = get_user_model().objects.get(username="staff-a")
    document, agreement = _specification_and_agreement(Integration.objects.get(), staff)
    print(json.dumps({"document": document.pk, "agreement": agreement.pk}), flush=True)


def after_restore() -> None:
    """In a portal process on the restored database: a request to the web application (the
    health check, which also needs the restored cluster's heartbeat), and one more send."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from transfers.models import Route

    client, deadline = Client(), time.monotonic() + 60
    while (status := client.get("/healthz", HTTP_HOST="localhost").status_code) != 200:
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    staff = get_user_model().objects.get(username="staff-a")
    transfer = queue_send(
        Route.objects.get(), io.BytesIO(DATA), original_name="efter.csv", user=staff
    )
    print(json.dumps({"healthz": status, "queued": transfer.remote_name}), flush=True)


def _counts(server, database: str) -> dict[str, int]:
    sql = (
        "SELECT (SELECT count(*) FROM transfers_transfer WHERE state = 'delivered'), "
        "(SELECT count(*) FROM transfers_receivedfile WHERE state = 'received'), "
        "(SELECT count(*) FROM specs_specificationdocument), "
        "(SELECT count(*) FROM onboarding_processingagreement), "
        "(SELECT count(*) FROM outbox_mailattachment), "
        "(SELECT count(*) FROM gdpr_gdprdeclaration WHERE status = 'submitted')"
    )
    import psycopg

    try:
        row = server.execute(sql, database)[0]
    except psycopg.OperationalError:
        return {}
    names = ("delivered", "received", "documents", "agreements", "attachments", "declarations")
    return dict(zip(names, row, strict=True))


@pytest.mark.system
def test_the_runbook_restores_a_portal_that_verifies_and_works(tmp_path):
    """Back up, lose everything, restore into a new database, verify, work on."""
    with private_postgres() as server:
        data, backup = tmp_path / "data", tmp_path / "backup"
        backup.mkdir()
        server.create_database("fdd")
        environment = child_environment(
            DATABASE_URL=server.url("fdd"),
            PORTAL_DATA_DIR=str(data),
            TRANSFER_RETRY_SECONDS="1",
            TRANSFER_TIMEOUT_SECONDS="5",
            TRANSFER_STALE_SECONDS="10",
        )
        migrated = _manage(environment, "migrate", "--no-input", "-v0")
        assert migrated.returncode == 0, migrated.stderr
        registry = write_registry(tmp_path / "registry.json")
        with running_simulator(tmp_path / "sp", registry) as sim:
            # The health check asks the local Serviceplatform where the settings say it is.
            environment["SIMULATOR_PORT"] = str(sim.port)
            sent = private_portal.set_up(environment, sim, registry, files=FILES, size=30_000)
            _in_portal(environment, "documents")
            with (
                private_portal.ticking(environment),
                private_portal.cluster(environment, tmp_path / "cluster.log"),
            ):
                wait_for(
                    lambda: (
                        _counts(server, "fdd").get("received") == FILES
                        and _counts(server, "fdd")["delivered"] == FILES
                    ),
                    timeout=120,
                    interval=0.5,
                )
            before = _counts(server, "fdd")

            # Back up as docs/operations.md says: the database first, then the files.
            dump, archive = backup / "fdd.dump", backup / "fdd-data.tar.gz"
            pg_dump = [str(server.bin_dir / "pg_dump"), "-Fc", "-f", str(dump), server.url("fdd")]
            subprocess.run(pg_dump, check=True, timeout=60)
            tar = ["tar", "-C", str(data), *TAR_EXCLUDES, "-czf", str(archive), "."]
            subprocess.run(tar, check=True, timeout=60)

            # Everything lost.
            server.execute('DROP DATABASE "fdd"')
            shutil.rmtree(data)

            # Restore: a new database owned by the portal's own role (no superuser), the dump
            # restored as that role, the files, the same keys, migrate, verify.
            server.execute("CREATE ROLE fdd LOGIN")
            server.execute('CREATE DATABASE "fdd_restored" OWNER fdd')
            restored_url = server.url("fdd_restored").replace("//postgres@", "//fdd@")
            pg_restore = [
                str(server.bin_dir / "pg_restore"),
                *RESTORE_OPTIONS,
                f"--dbname={restored_url}",
                str(dump),
            ]
            done = subprocess.run(pg_restore, timeout=60, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            data.mkdir()
            subprocess.run(["tar", "-C", str(data), "-xzf", str(archive)], check=True, timeout=60)
            restored = {**environment, "DATABASE_URL": restored_url}
            for step in (("migrate", "--no-input"), ("check",), ("rotate_sftp_keys", "--check")):
                done = _manage(restored, *step)
                assert done.returncode == 0, (step, done.stdout, done.stderr)
            assert _counts(server, "fdd_restored") == before

            expected = 2 * FILES + 2 + before["attachments"] + 1
            assert before["attachments"] >= 1 and before["declarations"] == 1
            verified = _manage(restored, "verify_files")
            assert verified.returncode == 0, verified.stdout
            assert verified.stdout.splitlines() == [f"checked {expected}, missing 0, changed 0"]

            # The restored portal answers and works: one more file sent and fetched.
            with (
                private_portal.ticking(restored),
                private_portal.cluster(restored, tmp_path / "restored.log"),
            ):
                answer = _in_portal(restored, "after_restore")
                assert answer["healthz"] == 200
                wait_for(
                    lambda: (
                        _counts(server, "fdd_restored").get("received") == FILES + 1
                        and _counts(server, "fdd_restored")["delivered"] == FILES + 1
                    ),
                    timeout=60,
                    interval=0.5,
                )
            assert answer["queued"] not in sent
            verified = _manage(restored, "verify_files", "--strays")
            assert verified.stdout.splitlines() == [f"checked {expected + 2}, missing 0, changed 0"]

            # One byte of one restored file changed: named, exit 1.
            pk, stored = server.execute(
                "SELECT id, stored_path FROM transfers_receivedfile ORDER BY id LIMIT 1",
                "fdd_restored",
            )[0]
            flip_a_byte(Path(stored))
            verified = _manage(restored, "verify_files", "--quiet")
            assert verified.returncode == 1
            assert verified.stdout.startswith(f"changed: transfers.ReceivedFile {pk} {stored} (")
            assert len(verified.stdout.splitlines()) == 1


# -- a database migrated by a newer portal --------------------------------------------------------

FUTURE = ("transfers", "9999_from_the_future")
REFUSAL = (
    "The database was migrated by a newer version of the portal "
    "(transfers.9999_from_the_future); run that version or restore a matching backup."
)


def _snapshot(path: Path) -> tuple:
    with sqlite3.connect(path) as db:
        return (
            db.execute("SELECT count(*) FROM django_migrations").fetchone()[0],
            db.execute("SELECT app, name FROM django_migrations ORDER BY id").fetchall(),
            db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall(),
        )


@pytest.mark.system
def test_a_database_migrated_by_a_newer_portal_is_refused_and_left_alone(tmp_path):
    """An older database (transfers' last migration not applied) that also records a
    migration this code lacks: `migrate` would apply the one and keep quiet about the other;
    it stops instead, with the message, and nothing changes."""
    database = tmp_path / "portal.sqlite3"
    environment = child_environment(
        DATABASE_URL=f"sqlite:///{database}", PORTAL_DATA_DIR=str(tmp_path / "data")
    )
    for step in (("migrate", "-v0"), ("migrate", "transfers", "0011", "-v0")):
        done = _manage(environment, *step)
        assert done.returncode == 0, done.stderr
    with sqlite3.connect(database) as db:
        insert = "INSERT INTO django_migrations (app, name, applied) VALUES (?, ?, ?)"
        db.execute(insert, (*FUTURE, "2031-01-01 00:00:00"))
        # An app no longer installed (or another package's) leaves rows that are no refusal.
        db.execute(insert, ("retired_app", "0001_initial", "2020-01-01 00:00:00"))
    before = _snapshot(database)

    refused = _manage(environment, "migrate", "--no-input")
    assert refused.returncode != 0
    assert REFUSAL in refused.stderr
    assert _snapshot(database) == before
    checked = _manage(environment, "check", "--database", "default")
    assert checked.returncode != 0 and REFUSAL in checked.stderr
    workers = _manage(environment, "qcluster", timeout=60)
    assert workers.returncode != 0 and REFUSAL in workers.stderr
    assert _snapshot(database) == before

    with sqlite3.connect(database) as db:
        db.execute("DELETE FROM django_migrations WHERE app = ? AND name = ?", FUTURE)
    migrated = _manage(environment, "migrate", "--no-input")
    assert migrated.returncode == 0, migrated.stderr
    assert "Applying transfers.0012_single_line_text... OK" in migrated.stdout
    applied = migrated.stdout.count("... OK")
    # The future row gone, the ones this code had and the database lacked applied.
    assert _snapshot(database)[0] == before[0] - 1 + applied
