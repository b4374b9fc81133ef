"""GDPR declarations as the tests make them: every answer of the form, a draft submitted through
the form, and a submitted declaration made as rows for the pages that read it."""

from gdpr import workflow
from gdpr.forms import DeclarationForm
from gdpr.models import GdprDeclaration


def complete_answers(controllers, receivers) -> dict:
    """Every answer, as the form posts them, naming data-specification version 1.0: the
    integration under the InfRef must have that version (`specs.spec_version`)."""
    return {
        "controllers": [o.pk for o in controllers],
        "receiving_it_systems": [s.pk for s in receivers],
        "purpose": "Overførsel af borgerdata ved systemskifte i ældreplejen.",
        "data_subject_categories": "Borgere der modtager hjemmepleje.",
        "personal_data_categories": "Navn, adresse, CPR-nummer, helbredsoplysninger.",
        "includes_cpr": "on",
        "includes_special_categories": "on",
        "special_categories_detail": "Helbredsoplysninger.",
        "legal_basis_art6": ["c", "e"],
        "legal_basis_art9": ["h"],
        "legal_basis_detail": "Serviceloven § 83; databeskyttelsesloven § 7, stk. 4.",
        "dpa_title": "Databehandleraftale mellem Aarhus Kommune og Alfa Software A/S",
        "dpa_signed_on": "2026-03-01",
        "data_specification_version": "1.0",
        "retention": "Data slettes hos modtager efter indlæsning.",
        "deletion": "Filer slettes fra SFTP efter hentning.",
        "security_measures": "Kryptering under transport (SFTP), adgangsstyring, logning.",
        "transfer_frequency": "daily",
        "transfer_volume": "Ca. 2.000 borgere, 5 MB pr. kommune pr. døgn.",
        "contact_name": "Ada Jensen",
        "contact_email": "ada@alfa.example",
        "contact_phone": "+45 12 34 56 78",
        "signatory_name": "Bodil Alfa",
        "signatory_title": "Administrerende direktør",
        "signed_on": "2026-11-20",
    }


def submit(draft: GdprDeclaration, answers: dict, user) -> GdprDeclaration:
    """`draft` filled in with `answers` through the form, and submitted."""
    form = DeclarationForm(answers, instance=draft)
    assert form.is_valid(), form.errors
    form.save()
    return workflow.submit_declaration(draft, user)


def declare(infref, version, submitted_at, user, controllers, spec_version="1.0"):
    """A submitted declaration; the one before it, if any, superseded."""
    draft = GdprDeclaration.objects.create(
        infref=infref, version=version, created_by=user, data_specification_version=spec_version
    )
    draft.controllers.set(controllers)
    infref.declarations.filter(status="submitted").update(status="superseded")
    GdprDeclaration.objects.filter(pk=draft.pk).update(
        status="submitted",
        submitted_by=user,
        submitted_at=submitted_at,
        submitted_content={"version": version},
        content_sha256="a" * 64,
    )
    return GdprDeclaration.objects.get(pk=draft.pk)
