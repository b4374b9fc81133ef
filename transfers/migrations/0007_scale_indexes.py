"""Indexes for a million transfers: the day charts and the review's counts read an index alone,
the review finds a municipality's received files newest first, and on PostgreSQL a search for
part of a name finds it through trigrams (pg_trgm)."""

from django.db import migrations, models

# The expressions are the ones Django writes for `icontains` on PostgreSQL, or the planner
# would not match them to the indexes.
TRIGRAM_INDEXES = {
    "transfer_original_name_trgm": 'UPPER(("original_name")::text)',
    "transfer_remote_name_trgm": 'UPPER(("remote_name")::text)',
}


def add_trigram_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite has no trigram index; its search reads the table
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, expression in TRIGRAM_INDEXES.items():
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON "transfers_transfer" '
            f"USING gin (({expression}) gin_trgm_ops)"
        )


def remove_trigram_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in TRIGRAM_INDEXES:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


class Migration(migrations.Migration):
    dependencies = [("transfers", "0006_retention")]

    operations = [
        migrations.RemoveIndex(model_name="transfer", name="transfer_route_queued"),
        migrations.AddIndex(
            model_name="transfer",
            index=models.Index(
                fields=["route", "queued_at", "state"], name="transfer_route_queued_state"
            ),
        ),
        migrations.AddIndex(
            model_name="transfer",
            index=models.Index(
                fields=["queued_at", "route", "state", "size"], name="transfer_queued_totals"
            ),
        ),
        migrations.AddIndex(
            model_name="receivedfile",
            index=models.Index(fields=["route", "received_at"], name="received_route_received"),
        ),
        migrations.RunPython(add_trigram_indexes, remove_trigram_indexes),
    ]
