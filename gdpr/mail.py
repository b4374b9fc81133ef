"""The mails of the InfRef process, composed in Danish and sent through the outbox."""

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation

from gdpr.models import GdprDeclaration, InfRefRequest
from gdpr.pdf import declaration_pdf_filename, render_declaration_pdf
from portal.outbox.mail import queue_mail
from portal.outbox.models import OutgoingMail


def _link(name: str, *args) -> str:
    return settings.PORTAL_BASE_URL.rstrip("/") + reverse(name, args=args)


def _render(template: str, context: dict) -> tuple[str, str]:
    """(subject, body) from a template whose first line is the subject."""
    with translation.override("da"):
        text = render_to_string(template, context).strip()
    subject, _, body = text.partition("\n")
    return subject.strip(), body.strip() + "\n"


def _to_kombit_about(request: InfRefRequest, template: str, sender) -> OutgoingMail:
    subject, body = _render(
        template, {"request": request, "link": _link("gdpr:request", request.pk)}
    )
    return queue_mail(
        to=[settings.KOMBIT_MAIL_ADDRESS],
        subject=subject,
        body=body,
        organisation=request.vendor,
        created_by=sender,
    )


def infref_request(request: InfRefRequest) -> OutgoingMail:
    return _to_kombit_about(request, "gdpr/mail/infref_request.txt", request.requested_by)


def infref_assigned(request: InfRefRequest) -> OutgoingMail | None:
    if not request.requested_by.email:
        return None
    subject, body = _render(
        "gdpr/mail/infref_assigned.txt",
        {"request": request, "link": _link("gdpr:request", request.pk)},
    )
    return queue_mail(
        to=[request.requested_by.email],
        subject=subject,
        body=body,
        organisation=request.vendor,
        created_by=request.infref.assigned_by,
    )


def declaration_submitted(declaration: GdprDeclaration) -> OutgoingMail:
    subject, body = _render(
        "gdpr/mail/declaration_submitted.txt",
        {"declaration": declaration, "infref": declaration.infref},
    )
    pdf = render_declaration_pdf(declaration)
    return queue_mail(
        to=[settings.KOMBIT_MAIL_ADDRESS],
        subject=subject,
        body=body,
        attachments=[(declaration_pdf_filename(declaration), pdf, "application/pdf")],
        organisation=declaration.infref.vendor,
        created_by=declaration.submitted_by,
    )


def infref_withdrawn(request: InfRefRequest) -> OutgoingMail:
    return _to_kombit_about(request, "gdpr/mail/infref_withdrawn.txt", request.withdrawn_by)


def renewal_asked(declaration: GdprDeclaration) -> OutgoingMail | None:
    """To the vendor's staff: the declaration is to be renewed, and by when."""
    return _to_vendor_about_renewal(declaration, "gdpr/mail/renewal_asked.txt")


def renewal_reminder(declaration: GdprDeclaration, *, overdue: bool) -> OutgoingMail | None:
    """To the vendor's staff: the renewal date comes within a week, or has passed and sends
    have stopped (gdpr.reminders)."""
    template = "gdpr/mail/renewal_overdue.txt" if overdue else "gdpr/mail/renewal_soon.txt"
    return _to_vendor_about_renewal(declaration, template)


def _to_vendor_about_renewal(declaration: GdprDeclaration, template: str) -> OutgoingMail | None:
    from portal.onboarding.reminders import addresses_of  # onboarding imports gdpr

    vendor = declaration.infref.vendor
    to = addresses_of(vendor)
    if not to:
        return None
    subject, body = _render(
        template,
        {
            "declaration": declaration,
            "infref": declaration.infref,
            "link": _link("gdpr:request", declaration.infref.request.pk)
            if hasattr(declaration.infref, "request")
            else settings.PORTAL_BASE_URL,
        },
    )
    return queue_mail(to=to, subject=subject, body=body, organisation=vendor)
