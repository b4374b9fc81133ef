"""The transfer list's filters: the form of its GET parameters, and the transfers they leave.

The page and the API (`GET /api/v1/transfers`) take the same parameters through the same form.
"""

import uuid
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django import forms
from django.db import connections
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from portal.core.text import single_line
from transfers.list_options import Options
from transfers.models import Transfer
from transfers.widgets import ManyOptionsSelect

# Dates typed in the filter are days in Denmark, whatever the server's clock says.
DANISH_TIME = ZoneInfo("Europe/Copenhagen")


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
    # Set by a link from the routes page, shown as a label that can be removed
    # (`listing.route_label`).
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


# SQLite's index of the names by trigrams (migration 0017): the transfers whose names hold the
# phrase, letters of any case.
_NAMED_ON_SQLITE = "SELECT rowid FROM transfer_names WHERE transfer_names MATCH %s"
# Trigrams: a shorter part of a name has none to look up.
_SHORTEST_INDEXED = 3


def search(transfers: QuerySet, text: str) -> QuerySet:
    """A UUID matches the three platform ids exactly; anything else is part of a name."""
    text = text.strip()
    if not text:
        return transfers
    try:
        value = uuid.UUID(text)
    except ValueError:
        return _names_containing(transfers, text)
    return transfers.filter(
        Q(senders_file_id=value) | Q(transaction_id=value) | Q(file_transfer_uuid=value)
    )


def _names_containing(transfers: QuerySet, text: str) -> QuerySet:
    """The transfers whose file name or remote name contains `text`, in any case.

    PostgreSQL finds them through its trigram indexes on these very expressions (0007). SQLite
    reads the whole table for them unless its index is asked first; what the index finds is
    then held to the same test, so both ways find the same transfers.
    """
    if connections[transfers.db].vendor == "sqlite" and len(text) >= _SHORTEST_INDEXED:
        # The statement is ours; the text goes in as a parameter.
        named = RawSQL(_NAMED_ON_SQLITE, [_covering_trigrams(text)])  # noqa: S611
        transfers = transfers.filter(pk__in=named)
    return transfers.filter(Q(original_name__icontains=text) | Q(remote_name__icontains=text))


def _covering_trigrams(text: str) -> str:
    """An FTS5 query for the trigrams that cover `text` end to end, each once: a name that
    contains `text` contains them all. Every trigram asked for costs the index a read of all
    the rows that have it (a date's "202" is in nearly every name), so the third of them that
    cover the text are asked, not all of them as a phrase would; the names found are tested
    whole afterwards anyway."""
    starts = [*range(0, len(text) - 2, 3), len(text) - 3]
    trigrams = dict.fromkeys(text[start : start + 3] for start in starts)
    return " AND ".join('"' + trigram.replace('"', '""') + '"' for trigram in trigrams)


def apply_filters(transfers: QuerySet, values: dict) -> QuerySet:
    """`transfers` narrowed by the filters that validated (`TransferFilter.values`)."""
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
