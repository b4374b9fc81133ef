"""The transfer list: filters, search, keyset pagination and the CSV export.

Built to stay fast over a million rows: pages are read by keyset on (queued_at, id), never by
OFFSET, and nothing counts the table. Every queryset starts from `access.visible`.
"""

import base64
import binascii
import csv
import html
import io
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django import forms
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils.safestring import SafeData, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from portal.accounts.access import visible
from portal.core.text import single_line
from transfers.models import Route, Transfer

PAGE_SIZE = 50
CSV_CHUNK = 2000
# Dates typed in the filter are days in Denmark, whatever the server's clock says.
DANISH_TIME = ZoneInfo("Europe/Copenhagen")
ORDER = ("-queued_at", "-id")


def transfers_seen(user) -> QuerySet:
    """The transfers `user` may see, with what a row shows joined in: no query per row."""
    return visible(
        user,
        Transfer.objects.select_related(
            "route__infref", "route__municipality", "route__sender", "route__receiver"
        ),
    )


# Filters ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """The values the drop-downs offer: only those of routes whose transfers the user may see.

    There is no drop-down of routes: a superuser's would hold thousands. A route is the
    combination of the four below (and its environment); the routes page links to the list
    filtered by one route.
    """

    infref: list[tuple[int, str]] = field(default_factory=list)
    municipality: list[tuple[int, str]] = field(default_factory=list)
    sender: list[tuple[int, str]] = field(default_factory=list)
    receiver: list[tuple[int, str]] = field(default_factory=list)


def filter_options(user) -> Options:
    """One query: the routes that carry at least one transfer the user may see."""
    # The transfer's own rule decides, so the options never offer more than the list would show
    # (KOMBIT sees every route but no transfer). Only routes the user may see can qualify
    # (whoever sees a transfer sees its route), and each is asked whether one of its transfers
    # is seen. Asked in the select list, the question stays a subquery per route that stops at
    # the first transfer; asked in WHERE, PostgreSQL turned it into a join that read every
    # transfer the user may see (bench/pages.py measures both at a million rows).
    seen = Exists(visible(user, Transfer.objects.filter(route_id=OuterRef("pk"))))
    # Read as tuples, not models: a superuser's candidates are every route, thousands of them.
    candidates = (
        visible(user, Route.objects.all())
        .annotate(seen=seen)
        .order_by()
        .values_list(
            "seen",
            "infref_id",
            "infref__name",
            "sender_id",
            "sender__name",
            "receiver_id",
            "receiver__name",
            "municipality_id",
            "municipality__name",
            "municipality__municipality_code",
        )
    )
    infrefs, municipalities, senders, receivers = {}, {}, {}, {}
    for (
        seen_one,
        infref_id,
        infref,
        sender_id,
        sender,
        receiver_id,
        receiver,
        municipality_id,
        municipality,
        code,
    ) in candidates:
        if seen_one:
            infrefs[infref_id] = infref
            municipalities[municipality_id] = f"{municipality} ({code})"
            senders[sender_id] = sender
            receivers[receiver_id] = receiver

    def by_label(values: dict[int, str]) -> list[tuple[int, str]]:
        return sorted(values.items(), key=lambda item: (item[1].casefold(), item[0]))

    return Options(
        infref=by_label(infrefs),
        municipality=by_label(municipalities),
        sender=by_label(senders),
        receiver=by_label(receivers),
    )


def route_label(route: Route) -> str:
    """A route in words: InfRef, sender → receiver, municipality, environment."""
    return (
        f"{route.infref.name}: {route.sender.name} → {route.receiver.name} · "
        f"{route.municipality.name} ({route.get_environment_display()})"
    )


class ManyOptionsSelect(forms.Select):
    """A drop-down that may hold hundreds of options (a superuser's IT systems), its options
    written in Python as the form templates write them: the templates take two includes per
    option (seconds, when the list offered 5,000 routes)."""

    def get_context(self, name, value, attrs) -> dict:
        context = forms.Widget.get_context(self, name, value, attrs)  # no per-option dicts
        context["widget"]["optgroups"] = []  # the template draws the select; render() the rest
        return context

    def render(self, name, value, attrs=None, renderer=None) -> str:
        context = self.get_context(name, value, attrs)
        select = self._render(self.template_name, context, renderer)
        chosen, options = set(context["widget"]["value"]), []
        for option_value, label in self.choices:
            text = "" if option_value is None else str(option_value)
            selected = text in chosen
            if selected:
                chosen = set()  # as Select has it: only the first match is selected
            options.append(
                f'\n  <option value="{_escaped(text)}"{" selected" if selected else ""}>'
                f"{_escaped(label)}</option>\n"
            )
        head, closing, tail = select.rpartition("\n</select>")
        return mark_safe(head + "".join(options) + closing + tail)  # noqa: S308 - escaped


def _escaped(value) -> str:
    """As the templates escape (`conditional_escape`), without its per-call lazy-string checks,
    which cost more than the escaping when there are thousands of options."""
    return str(value) if isinstance(value, SafeData) else html.escape(str(value))


class _IdField(forms.IntegerField):
    """An id picked in a drop-down; a crafted id is harmless: the list stays `visible`."""

    def __init__(self, label, widget: type[forms.Widget] = ManyOptionsSelect):
        super().__init__(
            label=label,
            required=False,
            min_value=1,
            max_value=2**63 - 1,  # a bigger number would overflow the database's integer
            widget=widget,
        )


def _within_calendar(day: date) -> None:
    # Midnight in Copenhagen on 1 January of year 1, or the day after 31 December 9999, is
    # outside what datetime can hold.
    if not date(1900, 1, 1) <= day <= date(9998, 12, 31):
        raise forms.ValidationError(_("Give a date from the year 1900 to 9998."))


def _date_field(label) -> forms.DateField:
    return forms.DateField(
        label=label,
        required=False,
        validators=[_within_calendar],
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )


class TransferFilter(forms.Form):
    """The list's GET parameters; a value that does not validate is left out, not an error page."""

    hide_optional = True

    q = forms.CharField(
        label=gettext_lazy("Search"),
        required=False,
        max_length=255,
        validators=[single_line],
        help_text=gettext_lazy(
            "Part of the file name or the remote name, or a SendersFileId, TransactionId or "
            "FileTransferUUID."
        ),
        widget=forms.TextInput(attrs={"type": "search"}),
    )
    state = forms.ChoiceField(
        label=gettext_lazy("State"),
        required=False,
        choices=[("", gettext_lazy("All")), *Transfer.State.choices],
        widget=forms.Select,
    )
    # Set by a link from the routes page, shown as a label that can be removed (`route_label`).
    route = _IdField(gettext_lazy("Route"), widget=forms.HiddenInput)
    infref = _IdField(gettext_lazy("InfRef"))
    municipality = _IdField(gettext_lazy("Municipality"))
    sender = _IdField(gettext_lazy("Sending IT system"))
    receiver = _IdField(gettext_lazy("Receiving IT system"))
    queued_from = _date_field(gettext_lazy("Queued from"))
    queued_to = _date_field(gettext_lazy("Queued to"))

    def __init__(self, data, options: Options | None = None):
        super().__init__(data)
        if options is not None:
            everything = [("", _("All"))]
            for name in ("infref", "municipality", "sender", "receiver"):
                self.fields[name].widget.choices = everything + getattr(options, name)

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("queued_from"), cleaned.get("queued_to")
        if start and end and end < start:
            self.add_error("queued_to", _("The last day comes before the first."))
        return cleaned

    @property
    def values(self) -> dict:
        """The filters that validated; `is_valid` must have run."""
        return {name: value for name, value in self.cleaned_data.items() if value}

    def query(self) -> dict[str, str]:
        """The valid filters as GET parameters, for links that keep them."""
        return {
            name: self.data[name]
            for name, value in self.cleaned_data.items()
            if value and self.data.get(name)
        }


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=DANISH_TIME)


def search(transfers: QuerySet, text: str) -> QuerySet:
    """A UUID matches the three platform ids exactly; anything else is part of a name."""
    text = text.strip()
    if not text:
        return transfers
    try:
        value = uuid.UUID(text)
    except ValueError:
        return transfers.filter(Q(original_name__icontains=text) | Q(remote_name__icontains=text))
    return transfers.filter(
        Q(senders_file_id=value) | Q(transaction_id=value) | Q(file_transfer_uuid=value)
    )


def apply_filters(transfers: QuerySet, values: dict) -> QuerySet:
    if state := values.get("state"):
        transfers = transfers.filter(state=state)
    for name, lookup in (
        ("route", "route_id"),
        ("infref", "route__infref_id"),
        ("municipality", "route__municipality_id"),
        ("sender", "route__sender_id"),
        ("receiver", "route__receiver_id"),
    ):
        if value := values.get(name):
            transfers = transfers.filter(**{lookup: value})
    if start := values.get("queued_from"):
        transfers = transfers.filter(queued_at__gte=day_start(start))
    if end := values.get("queued_to"):
        transfers = transfers.filter(queued_at__lt=day_start(end + timedelta(days=1)))
    if text := values.get("q"):
        transfers = search(transfers, text)
    return transfers


# Keyset pagination --------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """A position in the list: the page holds the rows just older (or newer) than this row."""

    queued_at: datetime
    pk: int
    newer: bool

    def encode(self) -> str:
        raw = f"{'n' if self.newer else 'o'}|{self.queued_at.isoformat()}|{self.pk}"
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> "Cursor | None":
        """The cursor, or None for anything that is not one a page made."""
        if not text or len(text) > 96:
            return None
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
            direction, stamp, pk = raw.split("|")
            queued_at = datetime.fromisoformat(stamp)
            number = int(pk)
            if queued_at.tzinfo is None:
                return None
            queued_at = queued_at.astimezone(UTC)
        except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
            return None
        if direction not in ("n", "o") or not pk.isdigit():
            return None
        if not 0 < number < 2**63:
            return None
        return cls(queued_at=queued_at, pk=number, newer=direction == "n")

    @classmethod
    def of(cls, transfer: Transfer, *, newer: bool) -> "Cursor":
        return cls(queued_at=transfer.queued_at, pk=transfer.pk, newer=newer)


@dataclass(frozen=True)
class Page:
    rows: list[Transfer]
    newer: str = ""  # cursor of the page before (newer rows); empty on the first page
    older: str = ""  # cursor of the page after; empty on the last

    @property
    def is_first(self) -> bool:
        return not self.newer

    @property
    def all_final(self) -> bool:
        return all(transfer.state in Transfer.State.FINAL for transfer in self.rows)


def first_rows(queryset: QuerySet, order: tuple[str, ...], limit: int) -> list:
    """The first `limit` rows of `queryset` in `order`, in two queries: the ids, which the
    database sorts from its indexes alone, then those rows. A vendor's newest transfers are
    found among tens of thousands, and sorting them as whole rows, each with its trigger and
    receipt, is slow.

    The rows are read by id alone, with the queryset's related rows and columns but not its
    filters (nor its annotations): the ids have passed them, and PostgreSQL joined every route
    to apply the access rule again to a page of rows."""
    ids = list(queryset.order_by(*order).values_list("pk", flat=True)[:limit])
    by_id = queryset.model._default_manager.all()
    by_id.query.select_related = queryset.query.select_related
    by_id.query.deferred_loading = queryset.query.deferred_loading
    rows = by_id.order_by().in_bulk(ids)
    return [rows[pk] for pk in ids if pk in rows]


def _first_page(transfers: QuerySet) -> Page:
    rows = first_rows(transfers, ORDER, PAGE_SIZE + 1)
    older = Cursor.of(rows[PAGE_SIZE - 1], newer=False).encode() if len(rows) > PAGE_SIZE else ""
    return Page(rows=rows[:PAGE_SIZE], older=older)


def read_page(transfers: QuerySet, cursor_text: str = "") -> Page:
    """One page of `transfers`, newest first; a cursor that is not valid reads the first page."""
    cursor = Cursor.decode(cursor_text)
    if cursor is None:
        return _first_page(transfers)
    at, pk = cursor.queued_at, cursor.pk
    if cursor.newer:
        # The redundant bound lets the index on queued_at find the start, not only the order.
        after = transfers.filter(queued_at__gte=at).filter(Q(queued_at__gt=at) | Q(pk__gt=pk))
        rows = first_rows(after, ("queued_at", "id"), PAGE_SIZE + 1)
        if len(rows) <= PAGE_SIZE:
            # Back at the top: show the first page whole rather than a short one.
            return _first_page(transfers)
        rows = rows[:PAGE_SIZE][::-1]
        return Page(
            rows=rows,
            newer=Cursor.of(rows[0], newer=True).encode(),
            older=Cursor.of(rows[-1], newer=False).encode(),
        )
    before = transfers.filter(queued_at__lte=at).filter(Q(queued_at__lt=at) | Q(pk__lt=pk))
    rows = first_rows(before, ORDER, PAGE_SIZE + 1)
    if not rows:
        return _first_page(transfers)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return Page(
        rows=rows,
        newer=Cursor.of(rows[0], newer=True).encode(),
        older=Cursor.of(rows[-1], newer=False).encode() if more else "",
    )


# States shown, for telling what changed since -------------------------------------------------


def encode_states(rows: Iterable[Transfer]) -> str:
    return ",".join(f"{transfer.pk}:{transfer.state}" for transfer in rows)


def decode_states(text: str) -> dict[int, str]:
    """`id:state,…` as sent back by a polling page; anything malformed is dropped."""
    shown = {}
    for item in text.split(",")[: PAGE_SIZE * 2]:
        pk, _sep, state = item.partition(":")
        if pk.isdigit() and len(pk) < 19 and state in Transfer.State.values:
            shown[int(pk)] = state
    return shown


# CSV ----------------------------------------------------------------------------------------

BOM = "\ufeff"
# A cell Excel would read as a formula is written as text (OWASP "CSV injection", ASVS 1.2.10),
# also when spaces or a line break come first: a spreadsheet may trim them on import.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")


def _text(value: str) -> str:
    formula = value.startswith(_FORMULA_START) or value.lstrip().startswith(_FORMULA_START)
    return "'" + value if formula else value


def _when(value: datetime | None) -> str:
    return value.astimezone(DANISH_TIME).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def csv_header() -> list[str]:
    return [
        _("Queued"),
        _("State"),
        _("File"),
        _("Size (bytes)"),
        "SHA-256",
        "InfRef",
        _("Municipality"),
        _("Municipality code"),
        _("Sender"),
        _("Receiver"),
        "SendersFileId",
        "TransactionId",
        "FileTransferUUID",
        _("Attempts"),
        _("KOMBIT error code"),
        _("KOMBIT error text"),
        _("Sent"),
        _("Finished"),
    ]


# Read as tuples, not models: a million rows must stream in well under a minute.
CSV_FIELDS = (
    "queued_at",
    "state",
    "original_name",
    "size",
    "sha256",
    "route__infref__name",
    "route__municipality__name",
    "route__municipality__municipality_code",
    "route__sender__name",
    "route__receiver__name",
    "senders_file_id",
    "transaction_id",
    "file_transfer_uuid",
    "attempts",
    "error_code",
    "error_text",
    "sent_at",
    "finished_at",
)


def csv_row(values: tuple, states: dict[str, str]) -> list:
    (
        queued_at,
        state,
        name,
        size,
        sha256,
        infref,
        municipality,
        code,
        sender,
        receiver,
        senders_file_id,
        transaction_id,
        file_transfer_uuid,
        attempts,
        error_code,
        error_text,
        sent_at,
        finished_at,
    ) = values
    return [
        _when(queued_at),
        states.get(state, state),
        _text(name),
        size,
        sha256,
        _text(infref),
        _text(municipality),
        code or "",
        _text(sender),
        _text(receiver),
        senders_file_id,
        transaction_id,
        file_transfer_uuid or "",
        attempts,
        "" if error_code is None else error_code,
        _text(error_text),
        _when(sent_at),
        _when(finished_at),
    ]


def csv_lines(transfers: QuerySet) -> Iterator[str]:
    """The export in pieces: a BOM so Excel reads UTF-8, `;` as Danish Excel expects."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    out.write(BOM)
    writer.writerow(csv_header())
    states = {value: str(label) for value, label in Transfer.State.choices}
    rows = transfers.order_by(*ORDER).values_list(*CSV_FIELDS).iterator(chunk_size=CSV_CHUNK)
    for number, values in enumerate(rows, start=1):
        writer.writerow(csv_row(values, states))
        if number % CSV_CHUNK == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()
