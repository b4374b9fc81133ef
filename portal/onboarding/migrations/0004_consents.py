"""The test before production is accepted by both parties, each saying yes for itself: the
vendor's earlier single acceptance becomes the vendor's yes, and the municipalities are asked."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def vendor_acceptance_as_consent(apps, schema_editor):
    IntegrationTest = apps.get_model("onboarding", "IntegrationTest")
    Consent = apps.get_model("onboarding", "Consent")
    accepted = IntegrationTest.objects.filter(accepted_at__isnull=False).select_related(
        "integration__sender"
    )
    for test in accepted:
        consent = Consent.objects.create(
            integration=test.integration,
            subject="test",
            organisation_id=test.integration.sender.vendor_id,
            given_by_id=test.accepted_by_id,
        )
        Consent.objects.filter(pk=consent.pk).update(given_at=test.accepted_at)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_single_line_text"),
        ("onboarding", "0003_single_line_text"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Consent",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "subject",
                    models.CharField(
                        choices=[
                            ("agreement", "The data-processing agreement is in place"),
                            ("no_agreement", "No data-processing agreement is needed"),
                            ("test", "The test before production is accepted"),
                        ],
                        max_length=16,
                        verbose_name="what is agreed",
                    ),
                ),
                ("given_at", models.DateTimeField(auto_now_add=True, verbose_name="given at")),
                (
                    "given_by",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="given by",
                    ),
                ),
                (
                    "integration",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="consents",
                        to="onboarding.integration",
                        verbose_name="integration",
                    ),
                ),
                (
                    "municipality",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="accounts.organisation",
                        verbose_name="for municipality",
                    ),
                ),
                (
                    "organisation",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="accounts.organisation",
                        verbose_name="party",
                    ),
                ),
            ],
            options={
                "verbose_name": "consent",
                "verbose_name_plural": "consents",
                "ordering": ["given_at"],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("municipality__isnull", True)),
                        fields=("integration", "subject", "organisation"),
                        name="consent_once_per_party",
                    ),
                    models.UniqueConstraint(
                        condition=models.Q(("municipality__isnull", False)),
                        fields=("integration", "subject", "organisation", "municipality"),
                        name="consent_once_per_municipality",
                    ),
                ],
            },
        ),
        migrations.RunPython(vendor_acceptance_as_consent, migrations.RunPython.noop),
        migrations.RemoveField(
            model_name="integrationtest",
            name="accepted_at",
        ),
        migrations.RemoveField(
            model_name="integrationtest",
            name="accepted_by",
        ),
    ]
