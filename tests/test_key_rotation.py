"""Private keys at rest: rotated to a new encryption key, and no worker runs without one."""

import io
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.utils import timezone

from tests.support.system import ROOT, child_environment
from transfers import keys, tasks
from transfers.models import SftpAccount, Transfer
from transfers.queueing import queue_send

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()


@pytest.fixture
def accounts(settings, system_a, system_b):
    """Two accounts whose private keys were encrypted with OLD."""
    settings.SFTP_KEY_ENCRYPTION_KEY = OLD
    made = []
    for system, username in ((system_a, "alfa_omsorg"), (system_b, "beta_journal")):
        pair = keys.generate("ed25519")
        made.append(
            SftpAccount.objects.create(
                it_system=system,
                environment="simulator",
                username=username,
                host="127.0.0.1",
                port=2222,
                public_key=pair.public_openssh,
                key_fingerprint=pair.fingerprint,
                private_key_encrypted=pair.private_encrypted,
            )
        )
    return {account.pk: keys.decrypt_private_key(account.private_key_encrypted) for account in made}


def stored(pk: int) -> bytes:
    return bytes(SftpAccount.objects.get(pk=pk).private_key_encrypted)


def rotate(*args: str) -> str:
    out = io.StringIO()
    call_command("rotate_sftp_keys", *args, stdout=out)
    return out.getvalue()


def test_rotation_re_encrypts_every_key_with_the_new_one(settings, accounts):
    settings.SFTP_KEY_ENCRYPTION_KEY = f"{NEW},{OLD}"
    assert "Re-encrypted 2 private key(s)" in rotate()

    settings.SFTP_KEY_ENCRYPTION_KEY = NEW
    for pk, private in accounts.items():
        assert keys.decrypt_private_key(stored(pk)) == private
    assert "Every private key can be decrypted." in rotate("--check")
    settings.SFTP_KEY_ENCRYPTION_KEY = OLD
    for pk in accounts:
        with pytest.raises(keys.KeyUnavailable):
            keys.decrypt_private_key(stored(pk))


def test_rotation_without_the_old_key_changes_nothing_and_names_the_accounts(settings, accounts):
    before = {pk: stored(pk) for pk in accounts}
    settings.SFTP_KEY_ENCRYPTION_KEY = NEW
    with pytest.raises(CommandError, match=r"2 SFTP account\(s\): alfa_omsorg .*beta_journal"):
        rotate()
    with pytest.raises(CommandError, match="cannot decrypt"):
        rotate("--check")
    assert {pk: stored(pk) for pk in accounts} == before


def test_a_new_key_is_a_valid_fernet_key():
    Fernet(rotate("--new-key").strip())


def test_a_malformed_key_in_the_list_is_named_by_position_not_echoed(settings, accounts):
    settings.SFTP_KEY_ENCRYPTION_KEY = f"{NEW},not-a-key-at-all"
    with pytest.raises(CommandError) as refused:
        rotate()
    assert "key 2 is not a valid Fernet key" in str(refused.value)
    assert "not-a-key-at-all" not in str(refused.value)


@pytest.mark.system
@pytest.mark.django_db(transaction=True)
def test_workers_refuse_to_start_without_the_key(settings, accounts):
    started = subprocess.run(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=child_environment(SFTP_KEY_ENCRYPTION_KEY=NEW),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode != 0
    assert "The workers do not start" in started.stderr
    assert "alfa_omsorg" in started.stderr and "rotate_sftp_keys" in started.stderr
    assert NEW not in started.stderr + started.stdout


def test_a_send_waits_uncounted_instead_of_failing_when_the_key_is_missing(
    settings, ready_route, staff_a
):
    ready = ready_route()
    transfer = queue_send(ready.route, io.BytesIO(b"a;b\r\n"), original_name="x.csv", user=staff_a)
    # It had waited for the platform before: the wait for the key does not count to that.
    Transfer.objects.filter(pk=transfer.pk).update(waiting_since=timezone.now())
    settings.SFTP_KEY_ENCRYPTION_KEY = NEW

    assert tasks.send_transfer(transfer.pk) == "waiting for key"
    transfer.refresh_from_db()
    assert transfer.state == Transfer.State.QUEUED
    assert transfer.attempts == 0
    assert transfer.waiting_since is None
    assert "rotate_sftp_keys" in transfer.last_error
    assert NEW not in transfer.last_error
    assert not list((ready.sim.data_dir / "alfa_omsorg" / "OUT").glob("*"))
