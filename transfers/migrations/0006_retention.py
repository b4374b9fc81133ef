from django.db import migrations, models


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
        # This made the retention's django-q2 schedule, now kept by portal.core.schedules.
        migrations.RunPython(migrations.RunPython.noop, migrations.RunPython.noop),
    ]
