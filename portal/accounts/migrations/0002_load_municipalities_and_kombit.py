from django.db import migrations

from portal.accounts.municipalities import load_reference_organisations


def load(apps, schema_editor):
    load_reference_organisations(apps.get_model("accounts", "Organisation"))


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
