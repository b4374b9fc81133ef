from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import migrations

NAME = "gdpr: reminders of declarations to be renewed"


def add_schedule(apps, schema_editor):
    copenhagen = ZoneInfo("Europe/Copenhagen")
    tomorrow = datetime.now(copenhagen).date() + timedelta(days=1)
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=NAME,
        defaults={
            "func": "gdpr.reminders.remind_renewals",
            "schedule_type": "D",
            "repeats": -1,
            # Every morning, Danish time, before the day's sends.
            "next_run": datetime.combine(tomorrow, time(6, 0), tzinfo=copenhagen),
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("gdpr", "0005_declaration_renewal_reminded"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(add_schedule, remove_schedule)]
