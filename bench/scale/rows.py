"""Rows into the database a million at a time, by column name and in its own text forms.

A row is made as a dict keyed by the model's field names (`Table`), so no code depends on the
order of a table's columns; it leaves for the database as a tuple in the order the insert names.
Moments and UUIDs are made as text the database takes as it is (`Stamps`, `RowWriter.uuid`), so
nothing adapts a million values one by one.
"""

import operator
from collections.abc import Callable
from datetime import date

from django.db import connection, models


class Table:
    """The fields of one model that a fill writes, by the model's names for them.

    Rows are dicts keyed by the fields' attnames (`route_id`, the key the model stores), and are
    written under the columns those fields have in the database (`Alert.legacy_message` is the
    column `message`). A field the model does not have fails here, at once, not at the insert.
    """

    def __init__(self, model: type[models.Model], *names: str) -> None:
        fields = [model._meta.get_field(name) for name in names]
        self.model = model
        self.names = tuple(field.attname for field in fields)
        self.columns = tuple(field.column for field in fields)
        self._in_order = operator.itemgetter(*self.names)

    def tuples(self, rows: list[dict]) -> list[tuple]:
        """The rows in the order of `columns`, as the database takes them."""
        if rows and rows[0].keys() != set(self.names):
            raise ValueError(
                f"a row for {self.model._meta.label} has the fields {sorted(rows[0])}, "
                f"not {sorted(self.names)}"
            )
        return list(map(self._in_order, rows))


class Stamps:
    """Moments (seconds since the epoch) as text, millions of times: the date once per day and
    the time of day from a table, where datetime would build and format an object each time."""

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
    """Rows into one table at a time, as the database takes them fastest: COPY on PostgreSQL,
    one large executemany on SQLite."""

    def __init__(self) -> None:
        connection.ensure_connection()
        self.postgresql = connection.vendor == "postgresql"
        # Django keeps aware moments as naive UTC text and a UUID as 32 hex digits on SQLite.
        self.moment = Stamps() if self.postgresql else Stamps(suffix="")
        self.uuid: Callable[[str], str] = (
            str if self.postgresql else lambda text: text.replace("-", "")
        )

    def write(self, table: Table, rows: list[tuple]) -> None:
        """`rows` as `table.tuples` made them."""
        if not rows:
            return
        quote = connection.ops.quote_name
        name = quote(table.model._meta.db_table)
        columns = ", ".join(quote(column) for column in table.columns)
        if self.postgresql:
            with (
                connection.cursor() as cursor,
                cursor.cursor.copy(f"COPY {name} ({columns}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            return
        marks = ", ".join("?" * len(table.columns))
        insert = f"INSERT INTO {name} ({columns}) VALUES ({marks})"  # noqa: S608 - our names
        connection.connection.executemany(insert, rows)


def next_id(model: type[models.Model]) -> int:
    """The first free primary key: rows written with their ids start after any already there."""
    return (model.objects.aggregate(top=models.Max("pk"))["top"] or 0) + 1
