"""An index of the open alerts, newest first: the overview counts them and shows the newest ten,
which without it read every alert ever raised (bench/pages.py, the superuser's overview)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0004_alert_params"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="alert",
            index=models.Index(
                models.F("raised_at").desc(),
                models.F("id").desc(),
                condition=models.Q(resolved_at__isnull=True),
                name="alert_open_newest",
            ),
        ),
    ]
