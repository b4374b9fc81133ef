"""A route's transfers by time with their states and sizes, in one index: a vendor's or an
architect's day charts count and sum a month of their routes' transfers from the index alone.
With (route, queued_at, state) only, each of those thousands of rows was then read from the
table for its size (most of a vendor's dashboard at a million transfers).

Made in SQL, as the trigram indexes are (0007); 0019 drops the narrower index and has the model
declare this one.
"""

from django.db import migrations

INDEX = "transfer_route_queued_totals"


class Migration(migrations.Migration):
    dependencies = [("transfers", "0017_transfer_name_index")]

    operations = [
        migrations.RunSQL(
            f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON "transfers_transfer" '
            '("route_id", "queued_at", "state", "size")',
            f'DROP INDEX IF EXISTS "{INDEX}"',
        )
    ]
