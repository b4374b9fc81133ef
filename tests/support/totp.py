"""TOTP codes computed as an authenticator app does (RFC 6238), apart from django-otp's own code,
and test clients whose login is already complete with a code."""

import base64
import hashlib
import hmac
import struct
import time

from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice


def totp_code(secret_base32: str, *, at: float | None = None, step: int = 30) -> str:
    """The six-digit code an app shows for `secret_base32` at time `at` (now by default)."""
    secret = secret_base32.replace(" ", "").upper()
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    counter = int((time.time() if at is None else at) // step)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{number % 1_000_000:06d}"


def secret_of(device: TOTPDevice) -> str:
    return base64.b32encode(device.bin_key).decode()


def confirmed_device(user) -> TOTPDevice:
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    return device or TOTPDevice.objects.create(user=user, name="Test app", confirmed=True)


def verified_client(user, client: Client | None = None, **defaults) -> Client:
    """A client logged in as `user` whose login is complete, the code step included."""
    client = client or Client(**defaults)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = confirmed_device(user).persistent_id
    session.save()
    return client
