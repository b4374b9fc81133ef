"""The four steps of an InfRef request and the life of a GDPR declaration (seed, chapter 2).

Views call these functions; each step is one transaction that locks the row it moves, so two
clicks, two browser tabs or two operators can never take the same step twice.
"""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import formats, timezone
from django.utils.translation import gettext_lazy as _

from gdpr import mail
from gdpr.infref import infref_name
from gdpr.models import ANSWER_FIELDS, HOLDS_IT_SYSTEM, GdprDeclaration, InfRef, InfRefRequest
from gdpr.signals import infref_changed
from portal.accounts.models import Organisation
from portal.audit.log import record
from portal.audit.models import AuditEvent
from portal.itsystems.models import ItSystem

# What a declaration must answer before it can be submitted; drafts may be saved half-done.
REQUIRED_FOR_SUBMISSION = (
    "purpose",
    "data_subject_categories",
    "personal_data_categories",
    "legal_basis_art6",
    "legal_basis_detail",
    "dpa_title",
    "dpa_signed_on",
    "data_specification_version",
    "retention",
    "deletion",
    "security_measures",
    "transfer_frequency",
    "transfer_volume",
    "contact_name",
    "contact_email",
    "signatory_name",
    "signatory_title",
    "signed_on",
)


class AlreadyRequested(ValidationError):
    """A second request for an IT system that an open or assigned request already holds."""

    def __init__(self, existing: InfRefRequest):
        self.existing = existing
        if existing.infref_id:
            message = _("%(it_system)s already has the InfRef %(infref)s.")
        else:
            message = _(
                "%(it_system)s already has an open InfRef request, made %(requested_at)s. "
                "Follow that request, or withdraw it before making a new one."
            )
        super().__init__(
            message,
            code="already_requested",
            params={
                "it_system": existing.it_system.name,
                "infref": existing.infref.name if existing.infref_id else "",
                "requested_at": formats.date_format(
                    timezone.localtime(existing.requested_at), "SHORT_DATE_FORMAT"
                ),
            },
        )


class RequestWithdrawn(ValidationError):
    """KOMBIT's step on a request the vendor has taken back."""

    def __init__(self):
        super().__init__(
            _("The vendor has withdrawn this request, so no InfRef is assigned to it."),
            code="withdrawn",
        )


def request_holding(it_system: ItSystem) -> InfRefRequest | None:
    """The open or assigned request for the IT system, if there is one."""
    return InfRefRequest.objects.filter(HOLDS_IT_SYSTEM, it_system=it_system).first()


def refuse_a_second_request(it_system: ItSystem) -> None:
    existing = request_holding(it_system)
    if existing is not None:
        raise AlreadyRequested(existing)


def request_infref(*, it_system: ItSystem, description: str, user) -> InfRefRequest:
    """Step 1: the vendor asks KOMBIT for an InfRef; the request mail goes through the outbox.

    Once per IT system: AlreadyRequested names the request that holds it.
    """
    if not it_system.is_sender:
        raise ValidationError({"it_system": _("An InfRef is requested for a sending IT system.")})
    with transaction.atomic():
        # Two requests for one IT system queue here; the second then finds the first.
        ItSystem.objects.select_for_update().get(pk=it_system.pk)
        refuse_a_second_request(it_system)
        try:
            with transaction.atomic():
                request = InfRefRequest.objects.create(
                    it_system=it_system, description=description, requested_by=user
                )
        except IntegrityError:
            # The constraint caught what the check could not see: nothing is mailed.
            existing = request_holding(it_system)
            if existing is None:
                raise
            raise AlreadyRequested(existing) from None
        request.request_mail = mail.infref_request(request)
        request.save(update_fields=["request_mail"])
    return request


def withdraw_request(request: InfRefRequest, user) -> InfRefRequest:
    """The vendor takes back a request KOMBIT has not answered, and KOMBIT is told by mail.

    The IT system is then free for a new request.
    """
    with transaction.atomic():
        request = InfRefRequest.objects.select_for_update().get(pk=request.pk)
        if request.is_withdrawn:
            raise ValidationError(_("This request is already withdrawn."), code="already_withdrawn")
        if request.infref_id:
            raise ValidationError(
                _("KOMBIT has assigned %(name)s, so the request can no longer be withdrawn."),
                code="already_assigned",
                params={"name": request.infref.name},
            )
        request.withdrawn_by = user
        request.withdrawn_at = timezone.now()
        request.withdrawal_mail = mail.infref_withdrawn(request)
        request.save(update_fields=["withdrawn_by", "withdrawn_at", "withdrawal_mail"])
        record(
            user,
            AuditEvent.Action.INFREF_REQUEST_WITHDRAWN,
            request,
            # The request was addressed to KOMBIT, so KOMBIT's log shows it going too.
            concerns=[request.vendor, *Organisation.objects.filter(kind=Organisation.Kind.KOMBIT)],
        )
    return request


def next_free_number() -> int:
    highest = InfRef.objects.aggregate(highest=Max("number"))["highest"]
    return (highest or 0) + 1


def assign_infref(request: InfRefRequest, *, name: str, user) -> InfRef:
    """Step 2: KOMBIT assigns the InfRef and the requester is told."""
    with transaction.atomic():
        request = InfRefRequest.objects.select_for_update().get(pk=request.pk)
        if request.is_withdrawn:
            raise RequestWithdrawn()
        if request.infref_id:
            raise ValidationError(
                _("This request already has the InfRef %(name)s."),
                code="already_assigned",
                params={"name": request.infref.name},
            )
        infref = InfRef(name=name, it_system=request.it_system, assigned_by=user)
        infref.full_clean()
        infref.save()
        request.infref = infref
        request.save(update_fields=["infref"])
        mail.infref_assigned(request)
    return infref


def proposed_infref_name() -> str:
    return infref_name(next_free_number(), 1)


def open_draft(infref: InfRef, user) -> GdprDeclaration:
    """The draft to work on: the existing one, or a new version.

    A new version starts from the latest one, naming the newest data-specification version and
    the municipalities and receiving IT systems that joined the InfRef's integrations since;
    the first starts from what the portal knows
    (`_fill_from_the_portal`). Either way the vendor checks every answer before submitting.
    """
    with transaction.atomic():
        InfRef.objects.select_for_update().get(pk=infref.pk)
        draft = infref.declarations.filter(status=GdprDeclaration.Status.DRAFT).first()
        if draft:
            return draft
        latest = infref.declarations.order_by("-version").first()
        integrations = _integrations_under(infref)
        draft = GdprDeclaration(infref=infref, created_by=user)
        draft.version = latest.version + 1 if latest else 1
        if latest:
            # Only the answers: renew_by and outdated_at belong to the version they were set on.
            for field in ANSWER_FIELDS:
                setattr(draft, field, getattr(latest, field))
            # A new version is made because the data moved on: it covers the newest version.
            versions = specification_versions(infref)
            if versions:
                draft.data_specification_version = versions[0]
        else:
            _fill_from_the_portal(draft, integrations, user)
        draft.save()
        controllers, receivers = _parties_of(integrations)
        if latest:
            controllers = {*latest.controllers.all(), *controllers}
            receivers = {*latest.receiving_it_systems.all(), *receivers}
        draft.controllers.set(controllers)
        draft.receiving_it_systems.set(receivers)
    return draft


def _integrations_under(infref: InfRef) -> list:
    from portal.onboarding.models import Integration  # onboarding imports this module

    return list(
        Integration.objects.filter(infref=infref)
        .select_related("processing_agreement")
        .order_by("name", "pk")
    )


def _parties_of(integrations: list) -> tuple[list[Organisation], list[ItSystem]]:
    """The municipalities and receiving IT systems of the integrations: who the data go to."""
    municipalities = Organisation.objects.filter(
        kind=Organisation.Kind.MUNICIPALITY, integrations__in=integrations
    ).distinct()
    receivers = ItSystem.objects.filter(
        is_receiver=True, integrations_received__in=integrations
    ).distinct()
    return list(municipalities), list(receivers)


def _fill_from_the_portal(draft: GdprDeclaration, integrations: list, user) -> None:
    """A first draft answers what the portal already holds, so the vendor does not type it
    again: the newest data-specification version, the registered data-processing agreement,
    the integrations' legal basis and the user as contact person."""
    versions = specification_versions(draft.infref)
    if versions:
        draft.data_specification_version = versions[0]
    agreement = next(
        (i.processing_agreement for i in integrations if hasattr(i, "processing_agreement")),
        None,
    )
    if agreement is not None:
        draft.dpa_title = agreement.title
        draft.dpa_signed_on = agreement.signed_on
    legal_bases = dict.fromkeys(
        i.legal_basis.strip() for i in integrations if i.legal_basis.strip()
    )
    draft.legal_basis_detail = "\n\n".join(legal_bases)
    draft.contact_name = user.get_full_name() or user.get_username()
    draft.contact_email = user.email


def specification_versions(infref: InfRef | None) -> list[str]:
    """The version labels of the data specifications of the InfRef's integrations, newest
    first: the versions a declaration may say it covers."""
    # Imported here: specs imports onboarding, which imports this module.
    from portal.specs.models import SpecificationVersion

    if infref is None or infref.pk is None:
        return []
    numbers = set(
        SpecificationVersion.objects.filter(specification__integration__infref=infref).values_list(
            "major", "minor"
        )
    )
    return [f"{major}.{minor}" for major, minor in sorted(numbers, reverse=True)]


def submission_problems(declaration: GdprDeclaration) -> dict[str, str]:
    """Field → message for everything a submitted declaration must answer and does not."""
    problems = {}
    missing = _("Answer this before submitting.")
    for field in REQUIRED_FOR_SUBMISSION:
        if getattr(declaration, field) in (None, "", []):
            problems[field] = missing
    # The declaration covers a version that exists, so what it declares can be read.
    versions = specification_versions(declaration.infref)
    if not versions:
        problems["data_specification_version"] = _(
            "Save the data specification's first version before submitting."
        )
    elif (
        declaration.data_specification_version
        and declaration.data_specification_version not in versions
    ):
        problems["data_specification_version"] = _(
            "The data specification has no version %(version)s; choose one of its versions."
        ) % {"version": declaration.data_specification_version}
    if not declaration.controllers.exists():
        problems["controllers"] = _("Name at least one municipality as data controller.")
    if not declaration.receiving_it_systems.exists():
        problems["receiving_it_systems"] = _("Name at least one receiving IT system.")
    if declaration.includes_special_categories:
        if not declaration.special_categories_detail:
            problems["special_categories_detail"] = _("Say which special categories.")
        if not declaration.legal_basis_art9:
            problems["legal_basis_art9"] = _("Special categories need a legal basis under art. 9.")
    elif declaration.legal_basis_art9:
        problems["legal_basis_art9"] = _(
            "An art. 9 basis is given only when special categories are included."
        )
    if declaration.includes_criminal_offence_data and not declaration.criminal_offence_detail:
        problems["criminal_offence_detail"] = _("Say which criminal-offence data.")
    return problems


def submit_declaration(declaration: GdprDeclaration, user) -> GdprDeclaration:
    """Step 3: the draft becomes the current declaration and is mailed to KOMBIT as a PDF."""
    with transaction.atomic():
        InfRef.objects.select_for_update().get(pk=declaration.infref_id)
        declaration = GdprDeclaration.objects.get(pk=declaration.pk)
        if declaration.status != GdprDeclaration.Status.DRAFT:
            raise ValidationError(
                _("Version %(version)s has already been submitted."),
                code="already_submitted",
                params={"version": declaration.version},
            )
        problems = submission_problems(declaration)
        if problems:
            raise ValidationError(problems)
        # The one-submitted-per-InfRef constraint needs the old version out of the way first.
        declaration.infref.declarations.filter(status=GdprDeclaration.Status.SUBMITTED).update(
            status=GdprDeclaration.Status.SUPERSEDED
        )
        declaration.status = GdprDeclaration.Status.SUBMITTED
        declaration.submitted_by = user
        declaration.submitted_at = timezone.now()
        declaration.submitted_content = declaration.live_content()
        declaration.content_sha256 = declaration.compute_sha256()
        declaration.save(
            update_fields=[
                "status",
                "submitted_by",
                "submitted_at",
                "submitted_content",
                "content_sha256",
            ]
        )
        declaration.submission_mail = mail.declaration_submitted(declaration)
        GdprDeclaration.objects.filter(pk=declaration.pk).update(
            submission_mail=declaration.submission_mail
        )
        infref_changed.send(sender=InfRef, infref=declaration.infref)
        record(
            user,
            AuditEvent.Action.DECLARATION_SUBMITTED,
            declaration,
            concerns=[declaration.infref.vendor, *declaration.controllers.all()],
            sha256=declaration.content_sha256,
        )
    return declaration


def mark_created(infref: InfRef, user) -> InfRef:
    """Step 4: KOMBIT has created the InfRef on Serviceplatformen."""
    with transaction.atomic():
        infref = InfRef.objects.select_for_update().get(pk=infref.pk)
        if infref.created_on_serviceplatform_at:
            raise ValidationError(
                _("%(name)s is already marked as created."),
                code="already_created",
                params={"name": infref.name},
            )
        if infref.current_declaration() is None:
            raise ValidationError(
                _("%(name)s has no submitted GDPR declaration yet."),
                code="not_declared",
                params={"name": infref.name},
            )
        infref.created_on_serviceplatform_by = user
        infref.created_on_serviceplatform_at = timezone.now()
        infref.save(
            update_fields=["created_on_serviceplatform_by", "created_on_serviceplatform_at"]
        )
        infref_changed.send(sender=InfRef, infref=infref)
    return infref


def mark_outdated(infref: InfRef, reason: str) -> GdprDeclaration | None:
    """The data specification moved on: the current declaration no longer covers the data."""
    current = infref.current_declaration()
    if current is None or current.outdated_at:
        return current
    current.outdated_reason = reason
    current.outdated_at = timezone.now()
    current.save(update_fields=["outdated_reason", "outdated_at", "updated_at"])
    infref_changed.send(sender=InfRef, infref=infref)
    return current


def ask_for_renewal(infref: InfRef, reason: str) -> GdprDeclaration | None:
    """A backward-compatible change of the data: the current declaration is to be renewed within
    DECLARATION_RENEWAL_DAYS. Sends go on until that day; a declaration already outdated or
    already asked for keeps its state and its first deadline."""
    current = infref.current_declaration()
    if current is None or current.outdated_at or current.renew_by:
        return current
    current.renew_reason = reason
    current.renew_by = timezone.localdate() + timedelta(days=settings.DECLARATION_RENEWAL_DAYS)
    current.save(update_fields=["renew_reason", "renew_by", "updated_at"])
    infref_changed.send(sender=InfRef, infref=infref)
    transaction.on_commit(lambda: mail.renewal_asked(current))
    return current
