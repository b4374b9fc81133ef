import io

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models.functions import Length
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _

from portal.accounts.access import get_visible_or_404, visible
from portal.core.paging import page_of
from portal.outbox.backends import eml_filename
from portal.outbox.mail import build_message, eml_bytes
from portal.outbox.models import MailAttachment, OutgoingMail
from portal.outbox.tasks import resend


def _visible_mail(request: HttpRequest, pk: int) -> OutgoingMail:
    return get_visible_or_404(
        request.user, OutgoingMail.objects.select_related("organisation"), pk=pk
    )


@login_required
def mail_list(request: HttpRequest) -> HttpResponse:
    mails = visible(request.user, OutgoingMail.objects.select_related("organisation"))
    # The body can be long and is not shown in the list.
    mails = mails.defer("body").order_by("-created", "-pk")
    listing = page_of(request, mails)
    return render(request, "outbox/mail_list.html", {"listing": listing, "page": listing.page})


@login_required
def mail_detail(request: HttpRequest, pk: int) -> HttpResponse:
    mail = _visible_mail(request, pk)
    attachments = mail.attachments.defer("content").annotate(size=Length("content")).order_by("pk")
    return render(
        request,
        "outbox/mail_detail.html",
        {
            "mail": mail,
            "attachments": attachments,
            "from_email": settings.DEFAULT_FROM_EMAIL,
            "may_resend": request.user.is_superuser and mail.state == OutgoingMail.State.FAILED,
        },
    )


@login_required
def mail_attachment(request: HttpRequest, pk: int, attachment_pk: int) -> FileResponse:
    mail = _visible_mail(request, pk)
    attachment = get_object_or_404(MailAttachment, mail=mail, pk=attachment_pk)
    return FileResponse(
        io.BytesIO(bytes(attachment.content)),
        as_attachment=True,
        filename=attachment.filename,
        content_type=attachment.content_type or "application/octet-stream",
    )


@login_required
def mail_eml(request: HttpRequest, pk: int) -> FileResponse:
    mail = _visible_mail(request, pk)
    return FileResponse(
        io.BytesIO(eml_bytes(build_message(mail))),
        as_attachment=True,
        filename=eml_filename(mail.message_id),
        content_type="message/rfc822",
    )


@login_required
def mail_resend(request: HttpRequest, pk: int) -> HttpResponse:
    # Only superusers resend; to anyone else the address does not exist.
    if not request.user.is_superuser:
        raise Http404
    mail = _visible_mail(request, pk)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if resend(mail):
        messages.success(request, _("The mail is queued to be sent again."))
    else:
        messages.warning(request, _("Only a mail that failed can be sent again."))
    return redirect("outbox:detail", pk=mail.pk)
