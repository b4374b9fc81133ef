"""Steps the sending vendor and a municipality agree bilaterally, each party saying yes for itself.

The seed leaves the data-processing agreement (task 20) and the test before production (chapter 4)
to the parties: "aftales bilateralt". The vendor's yes covers the whole integration; a
municipality's yes covers that municipality. A step holds for a municipality once both said yes.
"""

from collections.abc import Iterable

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from portal.accounts.access import scope_of
from portal.accounts.models import Organisation
from portal.audit.log import record
from portal.audit.models import AuditEvent
from portal.onboarding.models import Consent, Integration

Subject = Consent.Subject


def parties_for(user, integration: Integration) -> list[Organisation]:
    """The parties the user may say yes for: the sending vendor, and the integration's
    municipalities the user acts for."""
    scope = scope_of(user)
    parties = []
    if integration.sender.vendor_id in scope.vendor_ids:
        parties.append(integration.sender.vendor)
    parties += list(integration.municipalities.filter(pk__in=scope.municipality_ids))
    return parties


def _party(integration: Integration, organisation: Organisation) -> Organisation | None:
    """The municipality a party's yes is for: None for the sending vendor."""
    if organisation.pk == integration.sender.vendor_id:
        return None
    if integration.municipalities.filter(pk=organisation.pk).exists():
        return organisation
    raise PermissionDenied


# Task 20's two answers: a party says one of them, and withdraws it before saying the other.
OPPOSITE = {Subject.AGREEMENT: Subject.NO_AGREEMENT, Subject.NO_AGREEMENT: Subject.AGREEMENT}


def _refuse_the_other_answer(integration: Integration, subject: str, organisation) -> None:
    if (
        subject in OPPOSITE
        and integration.consents.filter(
            subject=OPPOSITE[subject], organisation=organisation
        ).exists()
    ):
        raise ValidationError(
            _("Your organisation has already said the opposite; withdraw that first."),
            code="contradiction",
        )


def give(integration: Integration, subject: str, organisation: Organisation, user) -> Consent:
    """Record the organisation's yes; saying it twice keeps the first."""
    if subject == Subject.AGREEMENT and not hasattr(integration, "processing_agreement"):
        raise ValidationError(
            _("Register the data-processing agreement before confirming it."), code="no_agreement"
        )
    if subject == Subject.TEST:
        test = getattr(integration, "test", None)
        if test is None or not test.has_cleared:
            raise ValidationError(
                _("Only a passed test, or one agreed to be skipped, can be accepted."),
                code="test_not_cleared",
            )
    municipality = _party(integration, organisation)
    _refuse_the_other_answer(integration, subject, organisation)
    try:
        with transaction.atomic():
            consent, created = Consent.objects.get_or_create(
                integration=integration,
                subject=subject,
                organisation=organisation,
                municipality=municipality,
                defaults={"given_by": user},
            )
    except IntegrityError:  # a double submit raced us; the first yes stands
        return Consent.objects.get(
            integration=integration, subject=subject, organisation=organisation
        )
    if created:
        _audit(user, AuditEvent.Action.CONSENT_GIVEN, consent)
    return consent


def withdraw(integration: Integration, subject: str, organisation: Organisation, user) -> bool:
    """Take the organisation's yes back; False if there was none."""
    _party(integration, organisation)
    consent = integration.consents.filter(subject=subject, organisation=organisation).first()
    if consent is None:
        return False
    _audit(user, AuditEvent.Action.CONSENT_WITHDRAWN, consent)
    consent.delete()
    return True


def reset(integration: Integration, subject: str, user) -> None:
    """A changed agreement or test result is a new thing: every yes to the old one lapses."""
    for consent in integration.consents.filter(subject=subject):
        _audit(user, AuditEvent.Action.CONSENT_WITHDRAWN, consent, lapsed=True)
        consent.delete()


def _audit(user, action: str, consent: Consent, **details) -> None:
    integration = consent.integration
    record(
        user,
        action,
        integration,
        concerns=[integration.sender.vendor, consent.organisation, consent.municipality],
        integration=integration.name,
        subject=consent.subject,
        party=consent.organisation.name,
        **details,
    )


def holds(
    consents: Iterable[Consent], subject: str, integration: Integration, municipality_id: int
) -> bool:
    """Whether the sending vendor and the municipality have both said yes to `subject`."""
    return vendor_and_municipality_hold(
        consents, subject, integration.sender.vendor_id, municipality_id
    )


def vendor_and_municipality_hold(
    consents: Iterable[Consent], subject: str, vendor_id: int, municipality_id: int
) -> bool:
    said = {(c.organisation_id, c.municipality_id) for c in consents if c.subject == subject}
    return (vendor_id, None) in said and (municipality_id, municipality_id) in said


def waiting_for(
    consents: Iterable[Consent], subject: str, integration: Integration, municipality: Organisation
) -> list[Organisation]:
    """The parties whose yes to `subject` for `municipality` is still missing."""
    return parties_missing(consents, subject, integration.sender.vendor, municipality)


def parties_missing(
    consents: Iterable[Consent], subject: str, vendor: Organisation, municipality: Organisation
) -> list[Organisation]:
    said = {c.organisation_id for c in consents if c.subject == subject}
    return [party for party in (vendor, municipality) if party.pk not in said]
