"""SSH keys of the portal's SFTP accounts: made or imported here, private halves encrypted at rest.

The encryption key comes from the environment (`SFTP_KEY_ENCRYPTION_KEY`, a Fernet key); a private
key is decrypted only in the worker that connects, and never shown again after it is made.

To rotate, the setting takes several keys separated by commas: the first encrypts, all of them
decrypt, until `manage.py rotate_sftp_keys` has re-encrypted every private key with the first.
"""

import base64
import hashlib
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables

RSA_BITS = 4096
RSA_MINIMUM_BITS = 3072


class KeyUnavailable(ImproperlyConfigured):
    """The workers cannot decrypt private keys: stop with one clear message, not per transfer."""


_UNDECRYPTABLE = (
    "A private key cannot be decrypted with SFTP_KEY_ENCRYPTION_KEY; the key it was encrypted "
    "with may have been replaced without re-encrypting (keep the old key after the new one, "
    "separated by a comma, and run `manage.py rotate_sftp_keys`)."
)


# The functions below that hold a private key, a passphrase or the encryption key are marked
# @sensitive_variables(): Django's error reports blank their local variables (and those of the
# frames they call), so a failure while a key is handled never mails or shows the key.


@dataclass(frozen=True)
class KeyPair:
    kind: str  # "rsa" or "ed25519"
    public_openssh: str
    fingerprint: str
    private_encrypted: bytes


@sensitive_variables()
def _fernet() -> MultiFernet:
    """The configured keys: the first encrypts, every one of them decrypts."""
    setting = settings.SFTP_KEY_ENCRYPTION_KEY
    if not setting:
        raise KeyUnavailable("SFTP_KEY_ENCRYPTION_KEY is not set; private keys cannot be used.")
    ciphers = []
    for position, key in enumerate(setting.split(","), 1):
        try:
            ciphers.append(Fernet(key.strip()))
        except (ValueError, TypeError) as error:
            # The key itself is never echoed: error messages end up in logs.
            raise KeyUnavailable(
                f"SFTP_KEY_ENCRYPTION_KEY: key {position} is not a valid Fernet key: {error}"
            ) from None
    return MultiFernet(ciphers)


def check_setting() -> None:
    """Raise KeyUnavailable if SFTP_KEY_ENCRYPTION_KEY is missing or malformed."""
    _fernet()


def new_encryption_key() -> str:
    """A fresh key for SFTP_KEY_ENCRYPTION_KEY."""
    return Fernet.generate_key().decode()


@sensitive_variables()
def reencrypt(private_encrypted: bytes) -> bytes:
    """The same private key, encrypted with the first configured key."""
    try:
        return _fernet().rotate(bytes(private_encrypted))
    except InvalidToken:
        raise KeyUnavailable(_UNDECRYPTABLE) from None


def fingerprint(public_openssh: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key line, as `ssh-keygen -l` prints it."""
    blob = base64.b64decode(public_openssh.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


@sensitive_variables()
def _pair(private_key, kind: str, comment: str) -> KeyPair:
    public = (
        private_key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    public = f"{public} {comment}".strip()
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    return KeyPair(kind, public, fingerprint(public), _fernet().encrypt(pem))


@sensitive_variables()
def generate(kind: str = "rsa", comment: str = "") -> KeyPair:
    if kind == "ed25519":
        return _pair(ed25519.Ed25519PrivateKey.generate(), kind, comment)
    if kind == "rsa":
        return _pair(
            rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS), kind, comment
        )
    raise ValueError(f"unknown key kind {kind!r}")


@sensitive_variables()
def import_private_key(data: bytes, passphrase: str | None = None, comment: str = "") -> KeyPair:
    """Take an OpenSSH or PEM private key, checking its kind and size; refuse anything else."""
    try:
        try:
            key = serialization.load_ssh_private_key(
                data, passphrase.encode() if passphrase else None
            )
        except ValueError:
            key = serialization.load_pem_private_key(
                data, passphrase.encode() if passphrase else None
            )
    except TypeError:
        raise ValidationError(
            _("The key is protected by a passphrase; give the passphrase too."), code="passphrase"
        ) from None
    except ValueError:
        raise ValidationError(
            _("This is not a private key the portal can read, or the passphrase is wrong."),
            code="unreadable",
        ) from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return _pair(key, "ed25519", comment)
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < RSA_MINIMUM_BITS:
            raise ValidationError(
                _("An RSA key must have at least %(bits)s bits; this one has %(size)s."),
                code="too_small",
                params={"bits": RSA_MINIMUM_BITS, "size": key.key_size},
            )
        return _pair(key, "rsa", comment)
    raise ValidationError(_("Only RSA and Ed25519 keys are accepted."), code="kind")


@sensitive_variables()
def decrypt_private_key(private_encrypted: bytes) -> bytes:
    """The private key as OpenSSH PEM, for the worker that connects."""
    try:
        return _fernet().decrypt(bytes(private_encrypted))
    except InvalidToken:
        raise KeyUnavailable(_UNDECRYPTABLE) from None
