"""Alerts keep their kind's values in `params` and are worded when read.

The old text stays where it is, in the column `message`, now the field `legacy_message`: rows
raised before keep saying what they said, and writers that insert by column name (the bench's
scale fill, python -m bench.scale) go on working. Only the model's state is renamed, so no table
is rebuilt; `params` may be null, which SQLite adds without a rebuild as well.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0003_waiting_and_no_receipt"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RenameField(
                    model_name="alert", old_name="message", new_name="legacy_message"
                ),
                migrations.AlterField(
                    model_name="alert",
                    name="legacy_message",
                    field=models.TextField(blank=True, db_column="message", verbose_name="message"),
                ),
            ],
        ),
        migrations.AddField(
            model_name="alert",
            name="params",
            field=models.JSONField(blank=True, editable=False, null=True, verbose_name="details"),
        ),
    ]
