"""A 1 GiB file through the API to a real server process, whose peak memory must stay flat."""

import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from handoff.uploads import upload_directory
from tests.support.handoff_setup import ready_fixture, token_for  # noqa: F401
from tests.support.system import ROOT, child_environment
from transfers.models import Transfer

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]
SIZE = 2**30
BLOCK = 2**20
# The server reads and writes in 64 KiB pieces; anything near the file's size would mean it
# held the file. The figure measured is printed for the record (pytest -s).
GROWTH_LIMIT = 64 * 2**20


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def peak_rss(pid: int) -> int:
    """VmHWM: the most memory the process has held at once, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def serve(port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "runserver",
            "--noreload",
            "--nothreading",
            "--skip-checks",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        env=child_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def in_uploads() -> set[Path]:
    folder = upload_directory()
    return set(folder.iterdir()) if folder.exists() else set()


def wait_until_up(port: int, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, "the server stopped"
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/login/")
            connection.getresponse()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the server did not start")


def upload(port: int, token: str, route_id: int, size: int) -> tuple[dict, str, float]:
    """POST a multipart body made block by block: the client never holds the file either."""
    boundary = uuid.uuid4().hex
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="stor.csv"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    block = os.urandom(BLOCK)
    digest = hashlib.sha256()

    def body():
        yield head
        sent = 0
        while sent < size:
            piece = block[: min(BLOCK, size - sent)]
            digest.update(piece)
            sent += len(piece)
            yield piece
        yield tail

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.monotonic()
    connection.request(
        "POST",
        f"/api/v1/routes/{route_id}/transfers",
        body=body(),
        headers={
            "Authorization": f"Bearer {token}",
            "Idempotency-Key": uuid.uuid4().hex,
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + size + len(tail)),
        },
    )
    response = connection.getresponse()
    answer = json.loads(response.read())
    seconds = time.monotonic() - started
    assert response.status == 201, answer
    return answer, digest.hexdigest(), seconds


def test_a_1_gib_upload_keeps_the_servers_memory_flat(ready, system_a):
    token = token_for(system_a)
    port = free_port()
    server = serve(port)
    queued = []
    try:
        wait_until_up(port, server)
        # Once through the whole path first, so what is measured is the file, not the imports.
        queued.append(upload(port, token, ready.route.pk, 4 * BLOCK)[0])
        before = peak_rss(server.pid)
        answer, sha256, seconds = upload(port, token, ready.route.pk, SIZE)
        queued.append(answer)
        growth = peak_rss(server.pid) - before
    finally:
        server.terminate()
        server.wait(timeout=30)
    try:
        print(
            f"\n1 GiB upload: {seconds:.1f} s ({SIZE / seconds / 1e6:.0f} MB/s); server peak "
            f"RSS {before / 2**20:.1f} MiB before, grew {growth / 2**20:.1f} MiB"
        )
        transfer = Transfer.objects.get(pk=answer["id"])
        assert (transfer.size, transfer.sha256) == (SIZE, sha256)
        assert Path(transfer.payload).stat().st_size == SIZE
        assert growth < GROWTH_LIMIT
    finally:
        for done in queued:
            Path(Transfer.objects.get(pk=done["id"]).payload).unlink(missing_ok=True)


def test_a_body_declared_too_large_is_refused_before_it_is_read(ready, system_a):
    """The probe: Content-Length 3000000000 with an 80-byte body held the request open."""
    token = token_for(system_a)
    port = free_port()
    server = serve(port)
    try:
        wait_until_up(port, server)
        uploads_before = in_uploads()
        with socket.create_connection(("127.0.0.1", port), timeout=15) as client:
            client.sendall(
                (
                    f"POST /api/v1/routes/{ready.route.pk}/transfers HTTP/1.1\r\n"
                    f"Host: 127.0.0.1:{port}\r\n"
                    f"Authorization: Bearer {token}\r\n"
                    "Content-Type: multipart/form-data; boundary=x\r\n"
                    "Content-Length: 3000000000\r\n\r\n"
                ).encode()
                + b"--x\r\n"
                + b"a" * 74
            )
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                piece = client.recv(65536)
                if not piece:
                    break
                answer += piece
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413"), answer
        assert json.loads(body)["code"] == "too_large"
        assert in_uploads() == uploads_before  # not a byte of it was written
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert not Transfer.objects.exists()
