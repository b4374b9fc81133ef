"""One open SFTP session per account in each worker process, reused across files.

Connecting costs a few round trips and a key exchange; a worker that sends or fetches many
files keeps its session until it breaks or the account's host key turns out to have changed.
"""

from django.conf import settings
from django.utils import timezone

from transfers import outage
from transfers.keys import decrypt_private_key
from transfers.models import SftpAccount
from transfers.sftp import HostKeyChanged, HostKeyUnknown, SftpSession, SftpUnreachable

_sessions: dict[int, SftpSession] = {}


def session_for(account: SftpAccount) -> SftpSession:
    """The worker's open session for the account, connected once and reused across files."""
    session = _sessions.get(account.pk)
    if session is not None and session.connected:
        return session
    session = SftpSession(
        host=account.host,
        port=account.port,
        username=account.username,
        private_key=decrypt_private_key(account.private_key_encrypted),
        host_key=account.host_key or None,
        timeout=settings.TRANSFER_TIMEOUT_SECONDS,
    )
    try:
        session.connect()
    except HostKeyChanged as error:
        # A changed host key stops every transfer on the account until an operator looks.
        SftpAccount.objects.filter(pk=account.pk).update(
            host_key_mismatch_at=timezone.now(),
            offered_host_key=error.offered,
            offered_host_key_fingerprint=error.offered_fingerprint,
        )
        raise
    except HostKeyUnknown as error:
        SftpAccount.objects.filter(pk=account.pk).update(
            offered_host_key=error.offered, offered_host_key_fingerprint=error.fingerprint
        )
        raise
    except SftpUnreachable as error:
        outage.unreachable(account, str(error))
        raise
    outage.reachable(account)
    _sessions[account.pk] = session
    return session


def drop_session(account_id: int) -> None:
    session = _sessions.pop(account_id, None)
    if session is not None:
        session.close()


def drop_all_sessions() -> None:
    for account_id in list(_sessions):
        drop_session(account_id)
