"""Queue mail for sending, and build the message a queued row stands for.

The row is the record of what the portal sends: every attempt, the folder backend and the .eml
download build their bytes from it with `build_message` and `eml_bytes`, so what is shown is
what was sent.
"""

import hashlib
from collections.abc import Sequence
from email import encoders
from email.mime.base import MIMEBase
from email.utils import formatdate, parseaddr

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, make_msgid
from django.core.validators import validate_email
from django.db import transaction
from django.utils.translation import gettext_lazy as _
from django_q.tasks import async_task

from portal.core import task_names
from portal.core.text import single_line
from portal.outbox.models import MailAttachment, OutgoingMail

SEND_TASK = task_names.SEND_MAIL


def validate_recipients(to: Sequence[str]) -> list[str]:
    """The addresses, stripped, or ValidationError if there are none or one is malformed."""
    if isinstance(to, str) or not isinstance(to, Sequence):
        # A bare string would be taken one character at a time.
        raise ValidationError(_("Give the recipients as a list of addresses."), code="invalid")
    addresses = [address.strip() if isinstance(address, str) else address for address in to]
    if not addresses:
        raise ValidationError(_("A mail needs at least one recipient."), code="required")
    for address in addresses:
        if not isinstance(address, str):
            raise ValidationError(_("Give the recipients as a list of addresses."), code="invalid")
        validate_email(address)
    return addresses


def validate_subject(subject: str) -> str:
    # Django refuses a line break in a header only when it builds the message, in the worker;
    # refusing it here tells the caller instead of failing every attempt.
    single_line(subject)
    return subject


def _message_id_domain() -> str:
    return parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "localhost"


def queue_mail(
    *,
    to: list[str],
    subject: str,
    body: str,
    attachments: Sequence[tuple[str, bytes, str]] = (),
    organisation=None,
    created_by=None,
) -> OutgoingMail:
    """Record a mail and send it once the caller's transaction commits.

    `attachments` are (file name, content, content type). Raises ValidationError for an empty
    or malformed recipient list or a multi-line subject.
    """
    addresses = validate_recipients(to)
    validate_subject(subject)
    with transaction.atomic():
        mail = OutgoingMail.objects.create(
            to=addresses,
            subject=subject,
            body=body,
            message_id=make_msgid(domain=_message_id_domain()),
            organisation=organisation,
            created_by=created_by,
        )
        MailAttachment.objects.bulk_create(
            MailAttachment(
                mail=mail,
                filename=filename,
                content_type=content_type,
                content=bytes(content),
                sha256=hashlib.sha256(content).hexdigest(),
            )
            for filename, content, content_type in attachments
        )
        # The worker must not look for a row that a rolled-back transaction never wrote.
        transaction.on_commit(lambda: enqueue(mail.pk))
    return mail


def enqueue(mail_id: int) -> None:
    """Hand the row's id to the task queue; the row itself says whether it still needs sending."""
    async_task(SEND_TASK, mail_id, group="outbox")


class _RecordedMessage(EmailMessage):
    """An EmailMessage whose bytes depend only on the row it was built from."""

    def message(self):
        message = super().message()
        # The email package draws MIME boundaries at random; deriving them from the
        # Message-ID makes every rendering of the row the same bytes.
        seed = self.extra_headers["Message-ID"]
        for index, part in enumerate(message.walk()):
            if part.is_multipart():
                digest = hashlib.sha256(f"{seed}/{index}".encode()).hexdigest()[:40]
                part.set_boundary(f"=_fdd_{digest}")
        return message


def _attachment_part(filename: str, content: bytes, content_type: str) -> MIMEBase:
    # Django re-encodes text/* attachments as text, which may change line endings; base64 of
    # the stored bytes keeps the received file identical to the recorded one (same SHA-256).
    maintype, _slash, subtype = content_type.partition("/")
    if not maintype or not subtype:
        maintype, subtype = "application", "octet-stream"
    part = MIMEBase(maintype, subtype)
    part.set_payload(content)
    encoders.encode_base64(part)
    name = filename if filename.isascii() else ("utf-8", "", filename)
    part.add_header("Content-Disposition", "attachment", filename=name)
    return part


def build_message(mail: OutgoingMail) -> EmailMessage:
    """The message `mail` stands for, with its recorded Message-ID and creation date."""
    message = _RecordedMessage(
        subject=mail.subject,
        body=mail.body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=list(mail.to),
        headers={
            "Message-ID": mail.message_id,
            # The date the portal composed the message (RFC 5322 3.6.1), the same on every
            # attempt, so a retry is byte for byte the message first tried.
            "Date": formatdate(mail.created.timestamp(), localtime=settings.EMAIL_USE_LOCALTIME),
        },
    )
    for attachment in mail.attachments.order_by("pk"):
        message.attach(
            _attachment_part(
                attachment.filename, bytes(attachment.content), attachment.content_type
            )
        )
    return message


def eml_bytes(message: EmailMessage) -> bytes:
    """The message as an .eml file: what the folder backend writes and the portal offers."""
    return message.message().as_bytes()
