"""A received file's Sender is what the metadata names: any string of up to 255 characters (the
contract's SFTPUserType), no longer only an SFTP user name of the portal's 64."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('transfers', '0014_transfer_form_token'),
    ]

    operations = [
        migrations.AlterField(
            model_name='receivedfile',
            name='sender_username',
            field=models.CharField(blank=True, max_length=255, verbose_name='sender'),
        ),
    ]
