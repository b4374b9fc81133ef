"""Whether an account's SFTP server can be reached: one alert stands for one outage.

The first connection that cannot reach the server marks the account and raises the alert; the
first that reaches it again clears both. Sends meanwhile wait (transfers.tasks), uncounted.
"""

from django.utils import timezone

from portal.alerts import service as alerts
from transfers.models import SftpAccount


def unreachable(account: SftpAccount, reason: str) -> None:
    now = timezone.now()
    marked = SftpAccount.objects.filter(pk=account.pk, unreachable_since__isnull=True).update(
        unreachable_since=now
    )
    if marked:
        account.unreachable_since = now
        alerts.platform_unreachable(account.pk, reason)


def reachable(account: SftpAccount) -> None:
    # Read from the row the caller loaded: an account that was reachable costs no query.
    if account.unreachable_since is None:
        return
    cleared = SftpAccount.objects.filter(pk=account.pk, unreachable_since__isnull=False).update(
        unreachable_since=None
    )
    account.unreachable_since = None
    if cleared:
        alerts.platform_reachable(account.pk)
