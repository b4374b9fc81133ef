from django.db import migrations

from portal.accounts.municipalities import KOMBIT_CVR, KOMBIT_NAME, read_municipalities


def load(apps, schema_editor):
    Organisation = apps.get_model("accounts", "Organisation")
    for municipality in read_municipalities():
        Organisation.objects.update_or_create(
            municipality_code=municipality.code,
            defaults={"kind": "municipality", "name": municipality.name, "cvr": municipality.cvr},
        )
    Organisation.objects.update_or_create(
        kind="kombit", defaults={"name": KOMBIT_NAME, "cvr": KOMBIT_CVR}
    )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
