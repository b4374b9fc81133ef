import os
import re
import tempfile
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend

from portal.outbox.mail import eml_bytes

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def eml_filename(message_id: str) -> str:
    """A file name for the message, safe on any file system and free of path separators."""
    safe = _UNSAFE.sub("_", message_id.strip().strip("<>")).strip("._")[:150]
    return f"{safe or 'message'}.eml"


class OutboxFolderBackend(BaseEmailBackend):
    """Writes each message as its own .eml file to EMAIL_FILE_PATH instead of sending it.

    A file appears complete or not at all: it is written under a hidden temporary name in the
    same folder and renamed into place, so whatever watches the folder never reads half a message.
    """

    def __init__(self, *args, file_path: str | os.PathLike | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.file_path = Path(file_path or settings.EMAIL_FILE_PATH)

    def send_messages(self, email_messages) -> int:
        sent = 0
        for message in email_messages:
            try:
                self._write(message)
            except Exception:
                if not self.fail_silently:
                    raise
            else:
                sent += 1
        return sent

    def _write(self, message) -> Path:
        data = eml_bytes(message)
        message_id = BytesHeaderParser().parsebytes(data)["Message-ID"] or ""
        self.file_path.mkdir(parents=True, exist_ok=True)
        # The time first, so the folder lists in the order the messages were written.
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        target = self.file_path / f"{stamp}-{eml_filename(message_id)}"
        handle, temporary = tempfile.mkstemp(dir=self.file_path, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target
