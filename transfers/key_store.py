"""The private keys of every SFTP account, as a whole: can the workers read them, re-encrypt them.

A worker without the right `SFTP_KEY_ENCRYPTION_KEY` could not send or fetch anything, so the
workers check once at start-up and refuse to start, instead of failing transfer after transfer.
"""

from django.db import transaction

from transfers.keys import KeyUnavailable, check_setting, decrypt_private_key, reencrypt
from transfers.models import SftpAccount


def _with_keys():
    return SftpAccount.objects.exclude(private_key_encrypted=b"").order_by("pk")


def unreadable_accounts() -> list[SftpAccount]:
    """Accounts whose private key the configured keys cannot decrypt."""
    unreadable = []
    for account in _with_keys():
        try:
            decrypt_private_key(account.private_key_encrypted)
        except KeyUnavailable:
            unreadable.append(account)
    return unreadable


def check_workers_can_start() -> None:
    """Raise KeyUnavailable with one message naming every account the workers could not use."""
    if not _with_keys().exists():
        return
    check_setting()
    unreadable = unreadable_accounts()
    if unreadable:
        names = ", ".join(f"{account.username} (#{account.pk})" for account in unreadable)
        raise KeyUnavailable(
            f"SFTP_KEY_ENCRYPTION_KEY cannot decrypt the private key of {len(unreadable)} "
            f"SFTP account(s): {names}. Set the key they were encrypted with (after the new "
            "one, separated by a comma) and run `manage.py rotate_sftp_keys`."
        )


def rotate_all() -> int:
    """Re-encrypt every private key with the first configured key; all or nothing."""
    with transaction.atomic():
        accounts = list(_with_keys().select_for_update())
        check_workers_can_start()  # names every key it could not read, before changing any
        for account in accounts:
            SftpAccount.objects.filter(pk=account.pk).update(
                private_key_encrypted=reencrypt(account.private_key_encrypted)
            )
    return len(accounts)
