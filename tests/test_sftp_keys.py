"""SSH keys: made or imported, private halves encrypted at rest and never shown."""

import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from django.core.exceptions import ValidationError
from django.urls import reverse

from transfers import keys
from transfers.models import SftpAccount


def _ssh_keygen_fingerprint(public: str, tmp_path) -> str:
    path = tmp_path / "key.pub"
    path.write_text(public + "\n")
    output = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return output.split()[1]


@pytest.mark.system
@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_generated_keys_are_openssh_and_fingerprinted_as_ssh_keygen_does(kind, tmp_path):
    pair = keys.generate(kind, comment="alfa_omsorg")
    assert pair.public_openssh.startswith({"rsa": "ssh-rsa ", "ed25519": "ssh-ed25519 "}[kind])
    assert pair.public_openssh.endswith(" alfa_omsorg")
    assert pair.fingerprint == _ssh_keygen_fingerprint(pair.public_openssh, tmp_path)
    assert b"PRIVATE KEY" not in pair.private_encrypted
    private = serialization.load_ssh_private_key(
        keys.decrypt_private_key(pair.private_encrypted), None
    )
    if kind == "rsa":
        assert private.key_size == 4096


def test_an_imported_key_with_passphrase_is_accepted_and_reencrypted():
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.BestAvailableEncryption(b"hemmelig"),
    )
    with pytest.raises(ValidationError, match="adgangsfrase"):
        keys.import_private_key(pem)
    with pytest.raises(ValidationError, match="ikke en privat nøgle"):
        keys.import_private_key(pem, "forkert")
    pair = keys.import_private_key(pem, "hemmelig")
    assert pair.kind == "ed25519"
    assert b"hemmelig" not in pair.private_encrypted


def test_a_small_rsa_key_and_garbage_are_refused():
    small = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValidationError, match="mindst 3072 bit"):
        keys.import_private_key(small)
    with pytest.raises(ValidationError):
        keys.import_private_key(b"-----BEGIN NONSENSE-----\nAAAA\n")


def test_without_the_encryption_key_the_workers_stop_with_one_clear_message(settings):
    pair = keys.generate("ed25519")
    settings.SFTP_KEY_ENCRYPTION_KEY = None
    with pytest.raises(keys.KeyUnavailable, match="SFTP_KEY_ENCRYPTION_KEY is not set"):
        keys.decrypt_private_key(pair.private_encrypted)
    settings.SFTP_KEY_ENCRYPTION_KEY = "bm90LWEtdmFsaWQta2V5"
    with pytest.raises(keys.KeyUnavailable, match="not a valid Fernet key"):
        keys.decrypt_private_key(pair.private_encrypted)


def test_keys_made_with_another_encryption_key_are_reported(settings):
    pair = keys.generate("ed25519")
    settings.SFTP_KEY_ENCRYPTION_KEY = "Q2hhbmdlZC1rZXktMzItYnl0ZXMtbG9uZy1mb3JGZXI="
    with pytest.raises(keys.KeyUnavailable, match="cannot be decrypted"):
        keys.decrypt_private_key(pair.private_encrypted)


def test_vendor_staff_make_a_key_and_see_only_the_public_half(client_for, staff_a, system_a):
    account = SftpAccount.objects.create(
        it_system=system_a,
        environment="simulator",
        username="alfa_omsorg",
        host="127.0.0.1",
        port=2222,
    )
    client = client_for(staff_a)
    client.post(reverse("transfers:account_generate", args=[account.pk]), {"kind": "ed25519"})
    account.refresh_from_db()
    page = client.get(reverse("transfers:account", args=[account.pk])).content.decode()
    assert account.public_key in page
    assert account.key_fingerprint in page
    assert "PRIVATE KEY" not in page
    private = keys.decrypt_private_key(account.private_key_encrypted).decode()
    assert private.splitlines()[1] not in page


def test_another_vendor_cannot_touch_the_account(client_for, staff_b, system_a):
    account = SftpAccount.objects.create(
        it_system=system_a,
        environment="simulator",
        username="alfa_omsorg",
        host="127.0.0.1",
        port=2222,
    )
    client = client_for(staff_b)
    assert client.get(reverse("transfers:account", args=[account.pk])).status_code == 404
    response = client.post(
        reverse("transfers:account_generate", args=[account.pk]), {"kind": "rsa"}
    )
    assert response.status_code == 404
    account.refresh_from_db()
    assert not account.public_key
