"""A forgotten password set again from the mailed link: the mailbox the link is sent to, the link
as received, and the new password the person chooses."""

import re
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.smtp import Recorder, local_smtp_server

NEW_PASSWORD = "Fjordens blå hejrer 2026"
LINK = re.compile(r"https?://[^\s/]+(/account/password-reset/[^/\s]+/[^/\s]+/)")


def received_text(message) -> str:
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")


def link_in(message) -> str:
    """The path of the one reset link in a received mail."""
    [path] = LINK.findall(received_text(message))
    return path


@contextmanager
def smtp_mailbox(settings, portal_url: str) -> Iterator[Recorder]:
    """A local SMTP server the outbox sends to, and the portal's links pointing at `portal_url`."""
    settings.PORTAL_BASE_URL = portal_url
    with local_smtp_server(settings) as recorder:
        yield recorder
