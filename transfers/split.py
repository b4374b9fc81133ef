"""Split one CSV file into one file per municipality (seed: files are always split so)."""

import csv
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from portal.accounts.models import Organisation
from transfers.models import Route, Transfer
from transfers.queueing import CHUNK, Outgoing, checks_of, payload_store, queue_sends

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

    Each part holds the source's own lines, as they were written: the split reads a row's
    municipality code and writes nothing of its own, so no cell is quoted or changed. Returns
    municipality code → file. Refuses an unknown column or municipality code; then no output is
    kept.
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
            lines = iter(handle)
            header, header_text = _read_record(next(lines, ""), lines, delimiter)
            if column not in header:
                raise ValidationError(
                    _("The file has no column named %(column)s.") % {"column": column}
                )

            def open_part(code: str, line: int) -> Callable[[str], object]:
                if code not in known:
                    raise ValidationError(
                        _("Line %(line)s names %(code)r, which is no municipality code.")
                        % {"line": line, "code": code}
                    )
                path = directory / f"{source.stem}-{code}{source.suffix or '.csv'}"
                out = stack.enter_context(path.open("w", encoding=encoding, newline=""))
                out.write(header_text)
                outputs[code] = path
                return out.write

            _split(lines, delimiter, header.index(column), open_part)
    except (ValidationError, UnicodeDecodeError, csv.Error) as error:
        for path in outputs.values():
            path.unlink(missing_ok=True)
        if isinstance(error, ValidationError):
            raise
        raise ValidationError(
            _("The file cannot be read as CSV: %(error)s") % {"error": error}
        ) from None
    return outputs


# A part's records are written this many at a time, not one write each.
RECORDS_PER_WRITE = 256


def _split(
    lines: Iterator[str],
    delimiter: str,
    index: int,
    open_part: Callable[[str, int], Callable[[str], object]],
) -> None:
    """Each record of `lines` written to the part of its municipality code, its cell at `index`
    ("" if the row is shorter); blank records are in no part. `open_part(code, line)` opens a
    code's part, or refuses the code, naming the record's line.

    A line without a quote character holds one whole record, whose cells are what lies between
    the delimiters, as the csv module would read them: it is cut as it is, which is most of a
    vendor's extract and several times faster, and its cell read into a code once for all the
    lines that have the same. A line with a quote, or one too long for the csv module's field
    limit (which it must refuse as the csv module does), goes to the csv module with the lines
    that follow, as far as its record reaches. One loop without a call per line, and a part's
    records written together: a generator and a write per record cost up to a quarter of the
    split's CPU (bench/README.md)."""
    limit = csv.field_size_limit()
    code_of: dict[str | None, str] = {None: ""}  # a cell as the line has it -> its code
    pending: dict[str, list[str]] = {}
    writes: dict[str, Callable[[str], object]] = {}
    for record, text in enumerate(lines, start=2):
        if '"' in text or len(text) > limit:
            row, text = _read_record(text, lines, delimiter)
            if not row:
                continue
            code = _code(row, index)
        else:
            cut = text.split(delimiter, index + 1)
            if len(cut) == 1 and not text.rstrip("\r\n"):
                continue  # a blank line
            cell = cut[index] if index < len(cut) else None
            code = code_of.get(cell)
            if code is None:
                # The last cell has the line's break: strip() takes it with the spaces.
                code = code_of[cell] = cell.strip().zfill(3)
            text = _ended(text)
        records = pending.get(code)
        if records is None:
            writes[code] = open_part(code, record)
            records = pending[code] = []
        records.append(text)
        if len(records) >= RECORDS_PER_WRITE:
            writes[code]("".join(records))
            records.clear()
    for code, records in pending.items():
        writes[code]("".join(records))


def _code(row: list[str], index: int) -> str:
    return row[index].strip().zfill(3) if index < len(row) else ""


def _read_record(line: str, lines: Iterator[str], delimiter: str) -> tuple[list[str], str]:
    """One record read by the csv module, from `line` and as many of `lines` as it takes, with
    its text."""
    taken = [line]

    def reading() -> Iterator[str]:
        yield line
        for more in lines:
            taken.append(more)
            yield more

    return next(csv.reader(reading(), delimiter=delimiter), []), _ended("".join(taken))


def _ended(text: str) -> str:
    """A last line without its line break gets one, so that a record written after it in the
    same part stays a record of its own."""
    return text if text.endswith(("\n", "\r")) else text + "\r\n"


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
        return queue_sends(
            [
                Outgoing(by_code[code], part, part.path.name, checked)
                for code, checked, part in zip(codes, checks, settled, strict=True)
            ],
            user=user,
        )
