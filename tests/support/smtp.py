"""A real SMTP server on a loopback port for the outbox to send to, and the outbox's worker's
round: each queued mail sent once.

    with local_smtp_server(settings) as recorder:
        send_queued_mail()
        [message] = recorder.messages()

conftest.py's `smtp_server` fixture runs one for a test.
"""

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller

from portal.outbox.models import OutgoingMail
from portal.outbox.tasks import send_outgoing_mail


class Recorder:
    """An aiosmtpd handler that keeps every envelope it is given."""

    def __init__(self) -> None:
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self):
        return [message_from_bytes(e.content, policy=policy.default) for e in self.envelopes]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def local_smtp_server(settings) -> Iterator[Recorder]:
    """A real SMTP server on a loopback port, and Django's mail settings pointed at it."""
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 10
    try:
        yield recorder
    finally:
        controller.stop()


def send_queued_mail() -> None:
    """What the outbox's worker does: send each queued mail once, oldest first."""
    for mail in OutgoingMail.objects.filter(state=OutgoingMail.State.QUEUED).order_by("pk"):
        assert send_outgoing_mail(mail.pk) == "sent"
