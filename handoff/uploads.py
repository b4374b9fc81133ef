"""An upload handler that writes the file straight into the transfers' data folder.

Django's own handlers keep small files in memory and write big ones to the system's temporary
folder, from where `queue_send` would copy them again. This one writes every upload, whatever
its size, in 64 KiB pieces next to the payload store and hashes it on the way, so the portal
checks an Idempotency-Key without reading the file again and queues it by renaming it.
"""

import errno
import hashlib
import os
import shutil
import tempfile
import weakref
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile, StopUpload
from django.http import HttpRequest

from transfers.queueing import CHUNK, MAX_FILE_BYTES

FIELD = "file"


def upload_directory() -> Path:
    return Path(settings.TRANSFER_DATA_DIR) / "uploads"


class HashedUpload(UploadedFile):
    """An uploaded file on disk with its size and SHA-256, known when the upload ends."""

    def __init__(self, name: str, content_type: str, charset: str | None, extra: dict | None):
        directory = upload_directory()
        directory.mkdir(parents=True, exist_ok=True)
        descriptor, path = tempfile.mkstemp(prefix="api-", suffix=".upload", dir=directory)
        super().__init__(os.fdopen(descriptor, "w+b"), name, content_type, 0, charset, extra)
        self._path = Path(path)
        # Deleted when closed, or at the latest when forgotten: a request whose response was
        # never closed (a test client, a crash) leaves no file behind.
        self._cleanup = weakref.finalize(self, self._path.unlink, missing_ok=True)
        self._digest = hashlib.sha256()

    def append(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._digest.update(chunk)
        self.file.write(chunk)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def temporary_file_path(self) -> str:
        return str(self._path)

    def move_to(self, destination: Path) -> tuple[int, str]:
        """Into the payload store, by rename (a copy only across file systems)."""
        self.file.flush()
        os.fsync(self.file.fileno())
        try:
            os.replace(self._path, destination)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            self.file.seek(0)
            with destination.open("wb") as out:
                shutil.copyfileobj(self.file, out, CHUNK)
                out.flush()
                os.fsync(out.fileno())
        else:
            self._cleanup.detach()
        return self.size, self.sha256

    def close(self) -> None:
        """Closed by Django at the end of the request; an upload never queued is deleted."""
        self.file.close()
        self._cleanup()


def stage(path: Path) -> HashedUpload:
    """A copy of a file from the host, hashed, ready to be moved into the payload store.

    Copied before the transaction that queues it, so SQLite's write lock is held for a rename,
    not for the seconds a 2 GB copy takes.
    """
    staged = HashedUpload(path.name, "application/octet-stream", None, None)
    try:
        with path.open("rb") as source:
            while chunk := source.read(CHUNK):
                staged.append(chunk)
    except BaseException:
        staged.close()
        raise
    staged.seek(0)
    return staged


class PayloadUploadHandler(FileUploadHandler):
    """Takes the `file` field only; stops reading once the file passes KOMBIT's size limit."""

    def __init__(self, request: HttpRequest | None = None):
        super().__init__(request)
        self.too_large = False
        self.upload: HashedUpload | None = None

    def new_file(
        self,
        field_name,
        file_name,
        content_type,
        content_length,
        charset=None,
        content_type_extra=None,
    ) -> None:
        super().new_file(
            field_name, file_name, content_type, content_length, charset, content_type_extra
        )
        if field_name != FIELD or self.upload is not None:
            raise SkipFile
        self.upload = HashedUpload(self.file_name, content_type, charset, content_type_extra)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        if self.upload.size + len(raw_data) > MAX_FILE_BYTES:
            self.too_large = True
            self.upload.close()
            # Reset, not drained: reading the rest of a file that will be refused helps no one.
            raise StopUpload(connection_reset=True)
        self.upload.append(raw_data)
        return None

    def file_complete(self, file_size: int) -> HashedUpload:
        self.upload.seek(0)
        return self.upload

    def upload_interrupted(self) -> None:
        if self.upload is not None:
            self.upload.close()
