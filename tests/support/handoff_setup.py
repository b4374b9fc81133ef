"""Shared by the hand-off tests (API, folders, commands): a route that may send, and tokens."""

import hashlib
import subprocess
import sys

import pytest

from handoff import tokens
from tests.support import engine
from tests.support.system import ROOT, child_environment
from transfers.models import ReceivedFile, Route, SftpAccount


def skip_declaration_pdf(monkeypatch) -> None:
    """The declaration's PDF for KOMBIT is not what these tests look at, and takes a second."""
    monkeypatch.setattr("gdpr.mail.render_declaration_pdf", lambda declaration: b"%PDF-1.7\n")


@pytest.fixture
def no_declaration_pdf(monkeypatch) -> None:
    skip_declaration_pdf(monkeypatch)


@pytest.fixture(name="ready")
def ready_fixture(
    staff_a, operator, system_a, system_b, aarhus, odense, monkeypatch
) -> engine.ReadyRoute:
    """Routes for Aarhus and Odense, ready but with no simulator: `ready.route` is Aarhus'."""
    skip_declaration_pdf(monkeypatch)
    return engine.ready_route(
        staff=staff_a,
        operator=operator,
        sender=system_a,
        receiver=system_b,
        municipalities=[aarhus, odense],
        host_key=engine.PINNED,
    )


def token_for(it_system, user=None, days: int = 30) -> str:
    _token, plain = tokens.issue(it_system, name="test", valid_days=days, user=user)
    return plain


def bearer(plain: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {plain}"}


def received_file(account: SftpAccount, route: Route, tmp_path, data: bytes, name: str):
    stored = tmp_path / name
    stored.write_bytes(data)
    return ReceivedFile.objects.create(
        account=account,
        remote_name=name,
        state=ReceivedFile.State.RECEIVED,
        stored_path=str(stored),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        infref_name=route.infref.name,
        sender_username="alfa_omsorg",
        route=route,
    )


def manage(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`manage.py ARGS` in its own process on the test's database: real exit codes."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=child_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
