"""Split one CSV file into one file per municipality (seed: files are always split so)."""

import csv
import hashlib
import os
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from portal.accounts.models import Organisation
from transfers.models import Route, Transfer
from transfers.queueing import CHUNK, checks_of, payload_store, queue_send

SETTLERS = 8  # parts hashed and fsynced at once


def split_csv(
    source: Path,
    column: str,
    directory: Path,
    *,
    delimiter: str = ";",
    encoding: str = "utf-8",
) -> dict[str, Path]:
    """Stream `source` into `<directory>/<stem>-<code>.csv`, header repeated in each.

    Returns municipality code → file. Refuses an unknown column or municipality code; then no
    output is kept.
    """
    known = set(
        Organisation.objects.filter(kind=Organisation.Kind.MUNICIPALITY).values_list(
            "municipality_code", flat=True
        )
    )
    outputs: dict[str, Path] = {}
    try:
        with ExitStack() as stack:
            handle = stack.enter_context(source.open(encoding=encoding, newline=""))
            reader = csv.reader(handle, delimiter=delimiter)
            header = next(reader, None)
            if not header or column not in header:
                raise ValidationError(
                    _("The file has no column named %(column)s.") % {"column": column}
                )
            index = header.index(column)
            writers: dict[str, csv.writer] = {}
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                code = row[index].strip().zfill(3) if index < len(row) else ""
                if code not in known:
                    raise ValidationError(
                        _("Line %(line)s names %(code)r, which is no municipality code.")
                        % {"line": line, "code": code}
                    )
                if code not in writers:
                    path = directory / f"{source.stem}-{code}{source.suffix or '.csv'}"
                    out = stack.enter_context(path.open("w", encoding=encoding, newline=""))
                    writers[code] = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
                    writers[code].writerow(header)
                    outputs[code] = path
                writers[code].writerow(row)
    except (ValidationError, UnicodeDecodeError, csv.Error) as error:
        for path in outputs.values():
            path.unlink(missing_ok=True)
        if isinstance(error, ValidationError):
            raise
        raise ValidationError(
            _("The file cannot be read as CSV: %(error)s") % {"error": error}
        ) from None
    return outputs


class _Part:
    """A part as the split wrote it, beside the payload store: hashed and made durable before
    the queueing transaction, then moved into the store by a rename (`queueing._store`)."""

    def __init__(self, path: Path):
        self.path = path
        self.size, self.sha256 = 0, ""

    def settle(self) -> "_Part":
        digest = hashlib.sha256()
        with self.path.open("rb") as part:
            while chunk := part.read(CHUNK):
                digest.update(chunk)
                self.size += len(chunk)
            os.fsync(part.fileno())
        self.sha256 = digest.hexdigest()
        return self

    def move_to(self, destination: Path) -> tuple[int, str]:
        os.replace(self.path, destination)
        return self.size, self.sha256


def queue_split(
    routes: Iterable[Route], source: Path, column: str, *, user=None, **csv_options
) -> list[Transfer]:
    """Split and queue one transfer per municipality on its route, all or nothing."""
    by_code = {route.municipality.municipality_code: route for route in routes}
    # Beside the store, so that a part moves into it by a rename; a dot-folder, which the
    # integrity check's search for strays passes over.
    outgoing = payload_store()
    outgoing.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=outgoing, prefix=".split-") as temporary:
        parts = split_csv(source, column, Path(temporary), **csv_options)
        missing = sorted(set(parts) - set(by_code))
        if missing:
            raise ValidationError(
                _("No route for municipality code %(codes)s.") % {"codes": ", ".join(missing)}
            )
        codes = sorted(parts)
        # Every route checked at once: one by one, a hundred routes cost two seconds.
        checks = checks_of([by_code[code] for code in codes])
        # Every part made durable at once: an fsync waits milliseconds on the disk, and one
        # after another they were a third of the split's time.
        with ThreadPoolExecutor(SETTLERS, thread_name_prefix="split-settle") as settlers:
            settled = list(settlers.map(lambda code: _Part(parts[code]).settle(), codes))
        queued: list[Transfer] = []
        try:
            with transaction.atomic():
                for code, checked, part in zip(codes, checks, settled, strict=True):
                    queued.append(
                        queue_send(
                            by_code[code],
                            part,
                            original_name=part.path.name,
                            user=user,
                            checked=checked,
                        )
                    )
        except BaseException:
            # The rows are rolled back; their local copies go too, so nothing half-queued stays.
            for transfer in queued:
                Path(transfer.payload).unlink(missing_ok=True)
            raise
        return queued
