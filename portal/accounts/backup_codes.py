"""One-time backup codes for two-step login, for the day the phone with the app is gone.

Ten at a time, shown once when made; each opens one login and is then spent. They are kept as
django-otp's static tokens, throttled like the app's codes.
"""

import secrets

from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

COUNT = 10
DEVICE_NAME = "Backup codes"
# No 0/o, 1/l/i: the codes are read off paper and typed by hand.
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_LENGTH = 10


def make(user) -> list[str]:
    """New codes for `user`, replacing any left; returned for showing once, as typed."""
    device, _created = StaticDevice.objects.get_or_create(
        user=user, name=DEVICE_NAME, defaults={"confirmed": True}
    )
    device.token_set.all().delete()
    codes = ["".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH)) for _ in range(COUNT)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return [shown(code) for code in codes]


def shown(code: str) -> str:
    return f"{code[:5]}-{code[5:]}"


def normalised(typed: str) -> str | None:
    """A typed backup code as stored, or None when it cannot be one."""
    code = "".join(c for c in typed.lower() if c.isalnum())
    return code if len(code) == _LENGTH and all(c in _ALPHABET for c in code) else None


def device_of(user) -> StaticDevice | None:
    return StaticDevice.objects.filter(user=user, name=DEVICE_NAME).first()


def remaining(user) -> int:
    device = device_of(user)
    return device.token_set.count() if device else 0
