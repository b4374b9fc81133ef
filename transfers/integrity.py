"""Do the stored files still match their records? Read every one and compare its SHA-256.

The database names each file the portal keeps, with the SHA-256 taken when it was written:
transfers' local copies, received files, specification documents and data-processing
agreements. After a restore, a disk error or a hand that went where it should not, `verify`
reads them all (in 64 KiB pieces, so a 2 GB payload costs no memory) and names each record
whose file is missing or whose content differs. Contents kept in the database itself with a
hash beside them are compared too, as they cost nothing to read: mail attachments (the
declaration PDFs mailed to KOMBIT among them) and the frozen snapshots of submitted GDPR
declarations. A declaration's PDF is rendered from its snapshot when asked for and is never
stored, so there is no PDF file to check.

A file deleted by retention is no problem: its record says so, and it is not looked for.
With `strays`, files in the portal's stores that no record names are reported as well; they
are no error (a send queued during a backup leaves one), and work in progress is left out:
`.part` and other temporary names, dot-folders such as a fetch's `.incoming`, the API's
`uploads` and the receipts a worker keeps until the server's copy is gone.
"""

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

CHUNK = 64 * 1024
MISSING, CHANGED, UNREADABLE, NOT_RECORDED = "missing", "changed", "unreadable", "not recorded"
# Names of files still being written or about to go: never a stray.
TEMPORARY_SUFFIXES = (".part", ".tmp", ".upload")
IN_DATABASE = "in the database"


@dataclass(frozen=True)
class Finding:
    """What is wrong with one stored thing, and the record that names it."""

    problem: str  # MISSING, CHANGED, UNREADABLE or NOT_RECORDED
    record: str  # "transfers.Transfer 12"; empty for a file no record names
    where: str  # the file's path, or IN_DATABASE
    detail: str = ""

    def __str__(self) -> str:
        subject = f"{self.record} {self.where}" if self.record else self.where
        line = f"{self.problem}: {subject}"
        return f"{line} ({self.detail})" if self.detail else line


@dataclass
class Summary:
    checked: int = 0
    missing: int = 0
    changed: int = 0
    unreadable: int = 0
    not_recorded: int = 0

    @property
    def ok(self) -> bool:
        """No record lacks its file or content; files no record names do not count."""
        return not (self.missing or self.changed or self.unreadable)

    def __str__(self) -> str:
        line = f"checked {self.checked}, missing {self.missing}, changed {self.changed}"
        if self.unreadable:
            line += f", unreadable {self.unreadable}"
        if self.not_recorded:
            line += f", not recorded {self.not_recorded}"
        return line


@dataclass(frozen=True)
class RecordedFile:
    record: str
    path: Path
    sha256: str  # empty when the record holds none: then only presence is checked
    size: int | None


def sha256_of(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of a file, read in CHUNK pieces."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as data:
        while chunk := data.read(CHUNK):
            size += len(chunk)
            digest.update(chunk)
    return size, digest.hexdigest()


def recorded_files(*, deleted: bool = False) -> Iterator[RecordedFile]:
    """Every file a record says is stored; with `deleted`, instead those whose record says
    retention deleted them."""
    from portal.onboarding.models import ProcessingAgreement
    from portal.specs.models import SpecificationDocument
    from transfers.models import ReceivedFile, Transfer

    transfers = Transfer.objects.filter(payload_deleted_at__isnull=not deleted)
    for pk, path, sha256, size in (
        transfers.order_by("pk").values_list("pk", "payload", "sha256", "size").iterator()
    ):
        yield RecordedFile(f"transfers.Transfer {pk}", Path(path), sha256, size)
    received = ReceivedFile.objects.filter(
        state=ReceivedFile.State.RECEIVED, file_deleted_at__isnull=not deleted
    ).exclude(stored_path="")
    for pk, path, sha256, size in (
        received.order_by("pk").values_list("pk", "stored_path", "sha256", "size").iterator()
    ):
        yield RecordedFile(f"transfers.ReceivedFile {pk}", Path(path), sha256, size)
    if deleted:
        return  # documents and agreements go with their records, never by retention
    storage = SpecificationDocument._meta.get_field("file").storage
    documents = SpecificationDocument.objects.exclude(file="").order_by("pk")
    for pk, name, sha256, size in documents.values_list("pk", "file", "sha256", "size").iterator():
        yield RecordedFile(
            f"specs.SpecificationDocument {pk}", Path(storage.path(name)), sha256, size
        )
    storage = ProcessingAgreement._meta.get_field("document").storage
    agreements = ProcessingAgreement.objects.exclude(document="").order_by("pk")
    for pk, name, sha256 in agreements.values_list("pk", "document", "document_sha256").iterator():
        yield RecordedFile(
            f"onboarding.ProcessingAgreement {pk}", Path(storage.path(name)), sha256, None
        )


def check_file(recorded: RecordedFile) -> Finding | None:
    """None when the file is there and hashes to its record's SHA-256."""
    try:
        size, sha256 = sha256_of(recorded.path)
    except FileNotFoundError:
        return Finding(MISSING, recorded.record, str(recorded.path), _where_hint(recorded.path))
    except IsADirectoryError:
        return Finding(MISSING, recorded.record, str(recorded.path), "a folder is in its place")
    except OSError as error:
        return Finding(UNREADABLE, recorded.record, str(recorded.path), error.strerror or "")
    if recorded.size is not None and size != recorded.size:
        detail = f"{size} bytes, recorded {recorded.size}"
        return Finding(CHANGED, recorded.record, str(recorded.path), detail)
    if recorded.sha256 and sha256 != recorded.sha256:
        detail = f"SHA-256 {sha256}, recorded {recorded.sha256}"
        return Finding(CHANGED, recorded.record, str(recorded.path), detail)
    return None


def _where_hint(path: Path) -> str:
    # Records name payloads and received files by their full path: a data folder restored to
    # another place makes every one of them "missing", and this says why.
    data = Path(settings.DATA_DIR).resolve()
    if not path.resolve().is_relative_to(data):
        return f"recorded outside PORTAL_DATA_DIR {data}"
    return ""


def database_contents() -> Iterator[tuple[str, Finding | None]]:
    """Each content the database keeps beside its own SHA-256: its record, and a finding if
    the content no longer hashes to it."""
    from gdpr.models import GdprDeclaration
    from portal.outbox.models import MailAttachment

    attachments = MailAttachment.objects.order_by("pk").values_list("pk", "content", "sha256")
    for pk, content, recorded in attachments.iterator(chunk_size=100):
        record = f"outbox.MailAttachment {pk}"
        actual = hashlib.sha256(bytes(content)).hexdigest()
        yield record, _differs(record, actual, recorded)
    submitted = (
        GdprDeclaration.objects.exclude(status=GdprDeclaration.Status.DRAFT)
        .only("pk", "status", "submitted_content", "content_sha256")
        .order_by("pk")
    )
    for declaration in submitted.iterator(chunk_size=100):
        record = f"gdpr.GdprDeclaration {declaration.pk}"
        actual = declaration.compute_sha256()
        yield record, _differs(record, actual, declaration.content_sha256, "submitted content")


def _differs(record: str, actual: str, recorded: str, what: str = "") -> Finding | None:
    if actual == recorded:
        return None
    detail = f"{what + ' ' if what else ''}SHA-256 {actual}, recorded {recorded}"
    return Finding(CHANGED, record, IN_DATABASE, detail)


def store_folders() -> list[Path]:
    """The folders whose files records name; what else lies there is a stray."""
    transfers = Path(settings.TRANSFER_DATA_DIR)
    return [transfers / "outgoing", transfers / "received", Path(settings.MEDIA_ROOT)]


def stored_files() -> Iterator[Path]:
    """Every finished file in the stores: no dot-names (staging folders, hidden temporaries),
    no temporary suffixes, no links followed."""
    for folder in store_folders():
        for directory, subfolders, names in os.walk(folder):
            subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
            for name in sorted(names):
                if name.startswith(".") or name.endswith(TEMPORARY_SUFFIXES):
                    continue
                path = Path(directory) / name
                if path.is_file() and not path.is_symlink():
                    yield path


def strays(recorded: set[str]) -> Iterator[Finding]:
    """Files in the stores that no live record names (`recorded`: their resolved paths)."""
    deleted = {_resolved(f.path): f.record for f in recorded_files(deleted=True)}
    for path in stored_files():
        resolved = _resolved(path)
        if resolved in recorded:
            continue
        # A file whose record says retention deleted it is personal data kept too long.
        gone = deleted.get(resolved)
        yield Finding(
            NOT_RECORDED, "", str(path), f"{gone} says retention deleted it" if gone else ""
        )


def _resolved(path: Path) -> str:
    # Strings, not Paths: a million of them in a set is a third of the memory.
    return os.path.realpath(path)


def verify(
    report: Callable[[Finding], None],
    *,
    with_strays: bool = False,
    checked: Callable[[str, str], None] | None = None,
) -> Summary:
    """Check every recorded file and database content, calling `report` with each problem as
    it is found (a long run shows them as it goes) and `checked(record, where)` for each one
    that is fine."""
    summary = Summary()
    counters = {MISSING: "missing", CHANGED: "changed", UNREADABLE: "unreadable"}
    names: set[str] = set()

    def tally(record: str, where: str, finding: Finding | None) -> None:
        summary.checked += 1
        if finding is None:
            if checked is not None:
                checked(record, where)
            return
        attribute = counters[finding.problem]
        setattr(summary, attribute, getattr(summary, attribute) + 1)
        report(finding)

    for recorded in recorded_files():
        if with_strays:
            names.add(_resolved(recorded.path))
        tally(recorded.record, str(recorded.path), check_file(recorded))
    for record, finding in database_contents():
        tally(record, IN_DATABASE, finding)
    if with_strays:
        for finding in strays(names):
            summary.not_recorded += 1
            report(finding)
    return summary
