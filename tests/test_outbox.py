"""The outbox: mail is recorded, sent once through a real SMTP server, retried, and shown."""

import ast
import hashlib
import socket
import time
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ, Schedule, Task

from portal.outbox.mail import SEND_TASK, enqueue, queue_mail
from portal.outbox.models import MailAttachment, OutgoingMail
from portal.outbox.tasks import resend, retry_delay, send_outgoing_mail
from tests.support.smtp import Recorder, free_port
from tests.support.workers import worker_cluster

# Mixed line endings and a byte that is not UTF-8: sent as text these would not survive intact.
CSV = b"InfRef;System\r\n1001;Alfa Omsorg\n1002;\xe6\xf8\xe5\r\n"
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 4 + b"\n%%EOF\n"
ATTACHMENTS = [("dataflows.csv", CSV, "text/csv"), ("Erklæring.pdf", PDF, "application/pdf")]


@pytest.fixture
def no_smtp_server(settings):
    """Django pointed at a loopback port where nothing listens: every connection is refused."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    # A privileged port nothing here serves (tcpmux), rather than a free port found by binding
    # one: a test that binds is a system test (tests/support/system.py).
    settings.EMAIL_PORT = 1
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_TIMEOUT = 10


@pytest.fixture
def outbox_folder(settings, tmp_path) -> Path:
    settings.EMAIL_BACKEND = "portal.outbox.backends.OutboxFolderBackend"
    settings.EMAIL_FILE_PATH = tmp_path / "outbox"
    return settings.EMAIL_FILE_PATH


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def attachment_digests(message) -> dict[str, str]:
    return {
        part.get_filename(): sha256(part.get_payload(decode=True))
        for part in message.iter_attachments()
    }


def queued_task_ids() -> list[int]:
    return [task.task["args"][0] for task in OrmQ.objects.all() if task.task["func"] == SEND_TASK]


def mail_for(organisation, **overrides) -> OutgoingMail:
    arguments = {
        "to": ["drift@alfa.example"],
        "subject": "InfRef 1001 is assigned",
        "body": "Your InfRef is ready.\nKind regards, the FDD portal",
        "attachments": ATTACHMENTS,
        "organisation": organisation,
    }
    arguments.update(overrides)
    return queue_mail(**arguments)


# Queueing


def test_queueing_records_the_mail_and_hands_only_its_id_to_the_task_queue(
    vendor_a, staff_a, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        mail = mail_for(vendor_a, created_by=staff_a)
        assert not OrmQ.objects.exists()
    assert queued_task_ids() == [mail.pk]
    mail.refresh_from_db()
    assert mail.state == OutgoingMail.State.QUEUED
    assert mail.attempts == 0
    assert mail.created_by == staff_a
    assert mail.message_id.startswith("<") and mail.message_id.endswith("@localhost>")
    stored = {a.filename: (bytes(a.content), a.sha256) for a in mail.attachments.all()}
    assert stored == {name: (content, sha256(content)) for name, content, _type in ATTACHMENTS}


def test_a_rolled_back_transaction_queues_nothing(vendor_a, django_capture_on_commit_callbacks):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        mail_for(vendor_a)
        raise RuntimeError("the caller's work failed")
    assert callbacks == []
    assert not OutgoingMail.objects.exists()
    assert not MailAttachment.objects.exists()
    assert not OrmQ.objects.exists()


@pytest.mark.parametrize(
    "to",
    [[], ["not-an-address"], ["drift@alfa.example", "two@@example.dk"], "drift@alfa.example"],
    ids=["none", "malformed", "one-of-two-malformed", "a-string-not-a-list"],
)
def test_missing_or_malformed_recipients_are_refused(vendor_a, to):
    with pytest.raises(ValidationError):
        mail_for(vendor_a, to=to)
    assert not OutgoingMail.objects.exists()


def test_a_subject_with_a_line_break_is_refused(vendor_a):
    with pytest.raises(ValidationError):
        mail_for(vendor_a, subject="Hello\nBcc: everyone@example.dk")
    assert not OutgoingMail.objects.exists()


def test_a_mail_to_kombit_is_marked_as_such(vendor_a):
    assert mail_for(vendor_a, to=["KDI@kombit.dk"]).addressed_to_kombit
    assert not mail_for(vendor_a).addressed_to_kombit


# Sending


def test_a_queued_mail_reaches_the_smtp_server_intact(smtp_server, vendor_a):
    mail = mail_for(vendor_a, to=["drift@alfa.example", "kdi@kombit.dk"])
    assert send_outgoing_mail(mail.pk) == "sent"

    [envelope] = smtp_server.envelopes
    assert envelope.rcpt_tos == ["drift@alfa.example", "kdi@kombit.dk"]
    [received] = smtp_server.messages()
    assert received["Subject"] == mail.subject
    assert received["Message-ID"] == mail.message_id
    assert received["From"] == "fdd-portal@localhost"
    # SMTP carries lines ending in CRLF.
    text = received.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.strip() == mail.body
    assert attachment_digests(received) == {a.filename: a.sha256 for a in mail.attachments.all()}

    mail.refresh_from_db()
    assert mail.state == OutgoingMail.State.SENT
    assert mail.attempts == 1
    assert mail.sent_at is not None
    assert mail.last_error == ""


def test_a_duplicated_task_sends_the_mail_once(smtp_server, vendor_a):
    mail = mail_for(vendor_a)
    assert send_outgoing_mail(mail.pk) == "sent"
    assert send_outgoing_mail(mail.pk) == "not queued"
    assert len(smtp_server.envelopes) == 1
    mail.refresh_from_db()
    assert mail.attempts == 1


def test_a_task_for_a_mail_being_sent_elsewhere_does_nothing(smtp_server, vendor_a):
    mail = mail_for(vendor_a)
    OutgoingMail.objects.filter(pk=mail.pk).update(state=OutgoingMail.State.SENDING)
    assert send_outgoing_mail(mail.pk) == "not queued"
    assert smtp_server.envelopes == []


def test_a_task_for_a_deleted_mail_does_nothing(smtp_server, vendor_a):
    mail = mail_for(vendor_a)
    mail.delete()
    assert send_outgoing_mail(mail.pk) == "not queued"
    assert smtp_server.envelopes == []


def test_a_refused_connection_is_recorded_and_retried_later(no_smtp_server, vendor_a):
    mail = mail_for(vendor_a)
    before = timezone.now()
    assert send_outgoing_mail(mail.pk) == "retry scheduled"

    mail.refresh_from_db()
    assert mail.state == OutgoingMail.State.QUEUED
    assert mail.attempts == 1
    assert mail.last_error.startswith("ConnectionRefusedError")
    assert mail.sent_at is None
    [retry] = Schedule.objects.filter(func=SEND_TASK)
    assert retry.schedule_type == Schedule.ONCE
    assert retry.func == SEND_TASK
    assert ast.literal_eval(retry.args) == (mail.pk,)
    assert retry.next_run >= before + timedelta(seconds=30)


@pytest.mark.system
def test_a_hung_smtp_server_costs_one_timeout_and_a_retry(settings, vendor_a):
    """A server that accepts the connection and never greets must not hold the worker."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = silent.getsockname()
        settings.EMAIL_USE_TLS = False
        settings.EMAIL_TIMEOUT = 1
        mail = mail_for(vendor_a)
        started = time.monotonic()
        assert send_outgoing_mail(mail.pk) == "retry scheduled"
        assert time.monotonic() - started < 30
    mail.refresh_from_db()
    assert (mail.state, mail.attempts) == (OutgoingMail.State.QUEUED, 1)
    assert "timed out" in mail.last_error


def test_the_portal_sets_a_timeout_for_the_smtp_server():
    from django.conf import settings

    assert settings.EMAIL_TIMEOUT == 30  # the default of portal.settings


@pytest.mark.system
def test_the_retry_sends_the_same_message(settings, no_smtp_server, vendor_a):
    settings.EMAIL_PORT = free_port()  # where the server starts once the first try is refused
    mail = mail_for(vendor_a)
    send_outgoing_mail(mail.pk)
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=settings.EMAIL_PORT)
    controller.start()
    try:
        assert send_outgoing_mail(mail.pk) == "sent"
    finally:
        controller.stop()
    [received] = recorder.messages()
    assert received["Message-ID"] == mail.message_id
    mail.refresh_from_db()
    assert (mail.state, mail.attempts, mail.last_error) == (OutgoingMail.State.SENT, 2, "")


def test_the_mail_fails_after_the_last_attempt(settings, no_smtp_server, vendor_a):
    settings.OUTBOX_MAX_ATTEMPTS = 3
    mail = mail_for(vendor_a)
    outcomes = [send_outgoing_mail(mail.pk) for _attempt in range(4)]
    assert outcomes == ["retry scheduled", "retry scheduled", "failed", "not queued"]
    mail.refresh_from_db()
    assert mail.state == OutgoingMail.State.FAILED
    assert mail.attempts == 3
    assert "ConnectionRefusedError" in mail.last_error
    first, second = Schedule.objects.filter(func=SEND_TASK).order_by("next_run")
    assert second.next_run - first.next_run >= timedelta(seconds=29)


def test_retries_back_off_to_at_most_an_hour():
    delays = [retry_delay(attempts).total_seconds() for attempts in range(1, 10)]
    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_the_last_error_never_shows_the_smtp_password(settings, smtp_server, vendor_a):
    settings.EMAIL_HOST_USER = "portal"
    settings.EMAIL_HOST_PASSWORD = "s3cret-smtp-password"
    mail = mail_for(vendor_a)
    send_outgoing_mail(mail.pk)
    mail.refresh_from_db()
    assert mail.attempts == 1
    assert mail.last_error
    assert "s3cret-smtp-password" not in mail.last_error


def test_resend_queues_a_failed_mail_again_as_the_same_message(
    settings, smtp_server, vendor_a, django_capture_on_commit_callbacks
):
    mail = mail_for(vendor_a)
    OutgoingMail.objects.filter(pk=mail.pk).update(
        state=OutgoingMail.State.FAILED, attempts=5, last_error="SMTPServerDisconnected: gone"
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert resend(mail)
    assert queued_task_ids() == [mail.pk]
    assert (mail.state, mail.attempts) == (OutgoingMail.State.QUEUED, 0)
    assert send_outgoing_mail(mail.pk) == "sent"
    [received] = smtp_server.messages()
    assert received["Message-ID"] == mail.message_id
    assert OutgoingMail.objects.count() == 1


def test_resend_leaves_a_mail_that_has_not_failed_alone(vendor_a):
    mail = mail_for(vendor_a)
    OutgoingMail.objects.filter(pk=mail.pk).update(state=OutgoingMail.State.SENT, attempts=1)
    assert not resend(mail)
    assert (mail.state, mail.attempts) == (OutgoingMail.State.SENT, 1)


# The folder backend


def folder_contents(folder: Path) -> list[Path]:
    return sorted(folder.iterdir())


def test_the_folder_backend_writes_one_complete_eml_file(outbox_folder, vendor_a):
    mail = mail_for(vendor_a)
    assert not outbox_folder.exists()
    assert send_outgoing_mail(mail.pk) == "sent"

    [written] = folder_contents(outbox_folder)
    assert written.suffix == ".eml"
    assert not written.name.startswith(".")
    assert "<" not in written.name and "@" not in written.name
    received = message_from_bytes(written.read_bytes(), policy=policy.default)
    assert received["Message-ID"] == mail.message_id
    assert received["To"] == "drift@alfa.example"
    assert attachment_digests(received) == {a.filename: a.sha256 for a in mail.attachments.all()}


def test_the_folder_backend_takes_any_django_mail(outbox_folder):
    assert send_mail("Password reset", "Follow the link.", None, ["ada@alfa.example"]) == 1
    assert send_mail("Second", "Another.", None, ["bo@beta.example"]) == 1
    written = folder_contents(outbox_folder)
    assert len(written) == 2
    assert all(path.suffix == ".eml" for path in written)
    subjects = {message_from_bytes(p.read_bytes())["Subject"] for p in written}
    assert subjects == {"Password reset", "Second"}


def test_the_eml_download_is_the_file_the_folder_backend_wrote(
    outbox_folder, client_for, staff_a, vendor_a
):
    mail = mail_for(vendor_a)
    send_outgoing_mail(mail.pk)
    [written] = folder_contents(outbox_folder)
    response = client_for(staff_a).get(reverse("outbox:eml", args=[mail.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "message/rfc822"
    assert response["Content-Disposition"].startswith("attachment;")
    assert b"".join(response.streaming_content) == written.read_bytes()


# Pages and access


@pytest.fixture
def mail_a(vendor_a):
    return mail_for(vendor_a)


def mail_urls(mail: OutgoingMail) -> list[str]:
    attachment = mail.attachments.order_by("pk").first()
    return [
        reverse("outbox:detail", args=[mail.pk]),
        reverse("outbox:attachment", args=[mail.pk, attachment.pk]),
        reverse("outbox:eml", args=[mail.pk]),
    ]


def test_the_sender_organisation_sees_its_mail(client_for, staff_a, mail_a):
    client = client_for(staff_a)
    listing = client.get(reverse("outbox:list"))
    assert list(listing.context["page"].object_list) == [mail_a]
    for url in mail_urls(mail_a):
        assert client.get(url).status_code == 200
    detail = client.get(reverse("outbox:detail", args=[mail_a.pk])).content.decode()
    assert mail_a.subject in detail
    assert "&lt;" + mail_a.message_id[1:-1] + "&gt;" in detail
    for attachment in mail_a.attachments.all():
        assert attachment.sha256 in detail
    assert reverse("outbox:resend", args=[mail_a.pk]) not in detail


def test_another_vendors_staff_find_nothing(client_for, staff_b, mail_a):
    client = client_for(staff_b)
    assert not client.get(reverse("outbox:list")).context["page"].object_list
    for url in mail_urls(mail_a):
        assert client.get(url).status_code == 404


def test_an_attachment_of_another_mail_is_not_found_through_ones_own(
    client_for, staff_a, vendor_a, vendor_b
):
    own = mail_for(vendor_a)
    other = mail_for(vendor_b).attachments.first()
    url = reverse("outbox:attachment", args=[own.pk, other.pk])
    assert client_for(staff_a).get(url).status_code == 404


def test_kombit_operators_see_mail_addressed_to_kombit_only(client_for, operator, vendor_a):
    to_kombit = mail_for(vendor_a, to=["kdi@kombit.dk"])
    to_vendor = mail_for(vendor_a)
    client = client_for(operator)
    assert list(client.get(reverse("outbox:list")).context["page"].object_list) == [to_kombit]
    for url in mail_urls(to_kombit):
        assert client.get(url).status_code == 200
    for url in mail_urls(to_vendor):
        assert client.get(url).status_code == 404


def test_anonymous_visitors_are_sent_to_log_in(client, mail_a):
    for url in [reverse("outbox:list"), *mail_urls(mail_a)]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_an_attachment_downloads_as_the_stored_bytes(client_for, staff_a, mail_a):
    client = client_for(staff_a)
    for attachment in mail_a.attachments.all():
        response = client.get(reverse("outbox:attachment", args=[mail_a.pk, attachment.pk]))
        assert response["Content-Type"] == attachment.content_type
        assert response["Content-Disposition"].startswith("attachment;")
        assert sha256(b"".join(response.streaming_content)) == attachment.sha256


def test_the_list_is_paginated_newest_first(client_for, staff_a, vendor_a):
    for number in range(51):
        mail_for(vendor_a, subject=f"Mail {number}", attachments=())
    client = client_for(staff_a)
    first = client.get(reverse("outbox:list")).context["page"]
    assert len(first.object_list) == 50
    assert first.object_list[0].subject == "Mail 50"
    second = client.get(reverse("outbox:list"), {"page": 2}).context["page"]
    assert [mail.subject for mail in second.object_list] == ["Mail 0"]


def failed(mail: OutgoingMail) -> OutgoingMail:
    OutgoingMail.objects.filter(pk=mail.pk).update(state=OutgoingMail.State.FAILED, attempts=5)
    mail.refresh_from_db()
    return mail


@pytest.mark.parametrize("who", ["staff_a", "operator"])
def test_only_superusers_may_resend(request, client_for, vendor_a, who):
    mail = failed(mail_for(vendor_a, to=["kdi@kombit.dk"]))
    client = client_for(request.getfixturevalue(who))
    detail = client.get(reverse("outbox:detail", args=[mail.pk])).content.decode()
    assert reverse("outbox:resend", args=[mail.pk]) not in detail
    assert client.post(reverse("outbox:resend", args=[mail.pk])).status_code == 404
    mail.refresh_from_db()
    assert mail.state == OutgoingMail.State.FAILED


def test_a_superuser_resends_a_failed_mail(
    client_for, superuser, vendor_a, django_capture_on_commit_callbacks
):
    mail = failed(mail_for(vendor_a))
    client = client_for(superuser)
    url = reverse("outbox:resend", args=[mail.pk])
    assert url in client.get(reverse("outbox:detail", args=[mail.pk])).content.decode()
    assert client.get(url).status_code == 405
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url)
    assert response["Location"] == reverse("outbox:detail", args=[mail.pk])
    mail.refresh_from_db()
    assert (mail.state, mail.attempts) == (OutgoingMail.State.QUEUED, 0)
    assert queued_task_ids() == [mail.pk]


def test_resending_a_mail_that_was_sent_changes_nothing(client_for, superuser, vendor_a):
    mail = mail_for(vendor_a)
    OutgoingMail.objects.filter(pk=mail.pk).update(state=OutgoingMail.State.SENT, attempts=1)
    response = client_for(superuser).post(reverse("outbox:resend", args=[mail.pk]))
    assert response.status_code == 302
    mail.refresh_from_db()
    assert mail.state == OutgoingMail.State.SENT


# The admin


@pytest.mark.parametrize("model", ["outgoingmail", "mailattachment"])
def test_the_admin_lists_and_adds(client_for, superuser, mail_a, model):
    client = client_for(superuser)
    for view in ("changelist", "add"):
        assert client.get(reverse(f"admin:outbox_{model}_{view}")).status_code == 200
    instance = mail_a if model == "outgoingmail" else mail_a.attachments.first()
    change = client.get(reverse(f"admin:outbox_{model}_change", args=[instance.pk]))
    assert change.status_code == 200


def test_a_mail_added_in_the_admin_is_queued_like_any(
    client_for, superuser, vendor_a, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(superuser).post(
            reverse("admin:outbox_outgoingmail_add"),
            {
                "to": '["drift@alfa.example"]',
                "subject": "From the admin",
                "body": "Hello",
                "organisation": vendor_a.pk,
            },
        )
    assert response.status_code == 302
    mail = OutgoingMail.objects.get()
    assert (mail.subject, mail.to, mail.created_by) == (
        "From the admin",
        ["drift@alfa.example"],
        superuser,
    )
    assert mail.message_id
    assert queued_task_ids() == [mail.pk]


def test_the_admin_refuses_a_malformed_recipient(client_for, superuser):
    response = client_for(superuser).post(
        reverse("admin:outbox_outgoingmail_add"),
        {"to": '["nobody"]', "subject": "From the admin", "body": "Hello"},
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["to"]
    assert not OutgoingMail.objects.exists()


def test_the_admin_attaches_a_file_to_a_queued_mail_only(client_for, superuser, vendor_a):
    queued = mail_for(vendor_a, attachments=())
    sent = mail_for(vendor_a, attachments=())
    OutgoingMail.objects.filter(pk=sent.pk).update(state=OutgoingMail.State.SENT)
    client = client_for(superuser)
    url = reverse("admin:outbox_mailattachment_add")
    for mail in (queued, sent):
        client.post(url, {"mail": mail.pk, "file": SimpleUploadedFile("flow.csv", CSV, "text/csv")})
    [attachment] = MailAttachment.objects.all()
    assert attachment.mail == queued
    assert (attachment.filename, bytes(attachment.content)) == ("flow.csv", CSV)
    assert attachment.sha256 == sha256(CSV)


def test_the_admin_resends_failed_mails(
    client_for, superuser, vendor_a, django_capture_on_commit_callbacks
):
    mail = failed(mail_for(vendor_a))
    with django_capture_on_commit_callbacks(execute=True):
        client_for(superuser).post(
            reverse("admin:outbox_outgoingmail_changelist"),
            {"action": "resend_failed", "_selected_action": [mail.pk]},
        )
    mail.refresh_from_db()
    assert mail.state == OutgoingMail.State.QUEUED
    assert queued_task_ids() == [mail.pk]


# Through a running worker cluster


@pytest.mark.django_db(transaction=True)
def test_a_worker_cluster_sends_a_queued_mail_once_despite_a_duplicated_task(
    monkeypatch, smtp_server, settings
):
    for name in ("EMAIL_BACKEND", "EMAIL_HOST", "EMAIL_PORT"):
        monkeypatch.setenv(name, str(getattr(settings, name)))
    monkeypatch.setenv("EMAIL_USE_TLS", "false")
    mail = queue_mail(to=["drift@alfa.example"], subject="Through the queue", body="Hello")
    enqueue(mail.pk)
    assert len(queued_task_ids()) == 2

    with worker_cluster():
        deadline = time.monotonic() + 60
        while Task.objects.filter(func=SEND_TASK).count() < 2 and time.monotonic() < deadline:
            time.sleep(0.25)

    assert sorted(Task.objects.values_list("success", "result")) == [
        (True, "not queued"),
        (True, "sent"),
    ]
    [received] = smtp_server.messages()
    assert received["Message-ID"] == mail.message_id
    mail.refresh_from_db()
    assert (mail.state, mail.attempts) == (OutgoingMail.State.SENT, 1)


def test_mail_abandoned_in_sending_is_queued_again_and_sent_once(smtp_server, settings, vendor_a):
    from datetime import timedelta

    from django.utils import timezone

    from portal.outbox.tasks import requeue_abandoned

    mail = queue_mail(to=["kdi@kombit.dk"], subject="Forladt", body="x", organisation=vendor_a)
    # A worker claimed the row and died before it recorded anything.
    OutgoingMail.objects.filter(pk=mail.pk).update(
        state=OutgoingMail.State.SENDING, claimed_at=timezone.now() - timedelta(hours=1)
    )
    fresh = queue_mail(to=["kdi@kombit.dk"], subject="I gang", body="y", organisation=vendor_a)
    OutgoingMail.objects.filter(pk=fresh.pk).update(
        state=OutgoingMail.State.SENDING, claimed_at=timezone.now()
    )
    assert requeue_abandoned() == 1
    mail.refresh_from_db()
    assert mail.state == OutgoingMail.State.QUEUED
    assert OutgoingMail.objects.get(pk=fresh.pk).state == OutgoingMail.State.SENDING

    send_outgoing_mail(mail.pk)
    send_outgoing_mail(mail.pk)
    assert [m["Subject"] for m in smtp_server.messages()] == ["Forladt"]


def test_the_sweep_is_scheduled_by_a_migration(db):
    from django_q.models import Schedule

    sweep = Schedule.objects.get(func="portal.outbox.tasks.requeue_abandoned")
    assert (sweep.schedule_type, sweep.minutes, sweep.repeats) == (Schedule.MINUTES, 5, -1)
