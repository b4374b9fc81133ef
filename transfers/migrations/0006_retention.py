from django.db import migrations, models

SCHEDULE = "transfers: delete files past their retention period"


def add_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=SCHEDULE,
        defaults={
            "func": "transfers.retention.delete_expired_files",
            "schedule_type": "D",
            "repeats": -1,
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("transfers", "0005_route_expectations"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.AddField(
            model_name="receivedfile",
            name="file_deleted_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="file deleted at"),
        ),
        migrations.AddField(
            model_name="transfer",
            name="payload_deleted_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="local copy deleted at"),
        ),
        migrations.RunPython(add_schedule, remove_schedule),
    ]
