"""The transfer list as CSV: every filtered row, streamed, one column per entry of `columns`."""

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from transfers.list_filters import DANISH_TIME
from transfers.listing import ORDER
from transfers.models import Transfer

CSV_CHUNK = 2000
BOM = "\ufeff"
# A cell Excel would read as a formula is written as text (OWASP "CSV injection", ASVS 1.2.10),
# also when spaces or a line break come first: a spreadsheet may trim them on import.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")


class Column(NamedTuple):
    """One column of the export: its header, the field it is read from, and how a value of
    the field is written in a cell."""

    header: str
    field: str
    cell: Callable[[Any], Any]


def _as_is(value: Any) -> Any:
    return value


def _text(value: str) -> str:
    formula = value.startswith(_FORMULA_START) or value.lstrip().startswith(_FORMULA_START)
    return "'" + value if formula else value


def _when(value: datetime | None) -> str:
    return value.astimezone(DANISH_TIME).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _blank_if_none(value: Any) -> Any:
    return "" if value is None else value


def columns() -> list[Column]:
    """The columns, headed in the active language."""
    # Each state's label translated once, not for every row.
    states = {value: str(label) for value, label in Transfer.State.choices}
    return [
        Column(_("Queued"), "queued_at", _when),
        Column(_("State"), "state", lambda state: states.get(state, state)),
        Column(_("File"), "original_name", _text),
        Column(_("Size (bytes)"), "size", _as_is),
        Column("SHA-256", "sha256", _as_is),
        Column("InfRef", "route__infref__name", _text),
        Column(_("Municipality"), "route__municipality__name", _text),
        Column(_("Municipality code"), "route__municipality__municipality_code", _blank_if_none),
        Column(_("Sender"), "route__sender__name", _text),
        Column(_("Receiver"), "route__receiver__name", _text),
        Column("SendersFileId", "senders_file_id", _as_is),
        Column("TransactionId", "transaction_id", _as_is),
        Column("FileTransferUUID", "file_transfer_uuid", _blank_if_none),
        Column(_("Attempts"), "attempts", _as_is),
        Column(_("KOMBIT error code"), "error_code", _blank_if_none),
        Column(_("KOMBIT error text"), "error_text", _text),
        Column(_("Sent"), "sent_at", _when),
        Column(_("Finished"), "finished_at", _when),
    ]


def cells(table: Sequence[Column], values: tuple) -> list:
    """A row's cells, from its values read in the order of `table`."""
    return [column.cell(value) for column, value in zip(table, values, strict=True)]


def file_name() -> str:
    """The name the download is saved under, stamped with the time in Denmark."""
    stamp = timezone.localtime(timezone.now(), DANISH_TIME).strftime("%Y%m%d-%H%M")
    return f"transfers-{stamp}.csv"


def csv_lines(transfers: QuerySet) -> Iterator[str]:
    """The export in pieces: a BOM so Excel reads UTF-8, `;` as Danish Excel expects."""
    table = columns()
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    out.write(BOM)
    writer.writerow([column.header for column in table])
    # Read as tuples, not models: a million rows must stream in well under a minute.
    fields = [column.field for column in table]
    rows = transfers.order_by(*ORDER).values_list(*fields).iterator(chunk_size=CSV_CHUNK)
    for number, values in enumerate(rows, start=1):
        writer.writerow(cells(table, values))
        if number % CSV_CHUNK == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()
