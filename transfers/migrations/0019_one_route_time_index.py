"""One index of a route's transfers by time, not two: 0018's (route, queued_at, state, size)
leads with every column of the older (route, queued_at, state), so it serves each query that
one did, and every transfer written kept both up to date. The model now declares the wider one.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("transfers", "0018_route_totals_index")]

    operations = [
        migrations.RemoveIndex(model_name="transfer", name="transfer_route_queued_state"),
        # 0018 made it in SQL: only the model's state learns of it here.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="transfer",
                    index=models.Index(
                        fields=["route", "queued_at", "state", "size"],
                        name="transfer_route_queued_totals",
                    ),
                )
            ]
        ),
    ]
