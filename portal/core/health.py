"""Health of the parts the portal cannot work without, for load balancers and monitoring."""

from django.conf import settings
from django.db import DatabaseError, connection
from django_q.brokers import get_broker
from django_q.status import Stat


def database_health() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:  # any failure means unhealthy; the message says which
        return {"ok": False, "error": str(error)}
    return {"ok": True, "vendor": connection.vendor}


def queue_health() -> dict:
    """The broker answers and at least one worker cluster has sent a heartbeat lately."""
    try:
        broker = get_broker()
        queued = broker.queue_size()
        clusters = Stat.get_all(broker=broker)
    except Exception as error:
        return {"ok": False, "error": str(error)}
    result = {"ok": bool(clusters), "clusters": len(clusters), "queued_tasks": queued}
    if not clusters:
        result["error"] = "no worker cluster is running"
    return result


def simulator_health() -> dict | None:
    """The local Serviceplatform completes an SSH key exchange; None when no account uses it.

    A full handshake rather than a look at the banner: a client that hangs up mid-banner is
    logged by the server as an error on every poll.
    """
    from transfers.models import Environment, SftpAccount
    from transfers.sftp import SftpError, probe_host_key

    try:
        if not SftpAccount.objects.filter(environment=Environment.SIMULATOR).exists():
            return None
    except DatabaseError as error:  # a database not migrated yet: a node started too early
        return {"ok": False, "error": str(error)}
    try:
        probe_host_key(settings.SIMULATOR_HOST, settings.SIMULATOR_PORT, timeout=2)
    except (SftpError, OSError) as error:
        return {
            "ok": False,
            "error": f"{settings.SIMULATOR_HOST}:{settings.SIMULATOR_PORT}: {error}",
        }
    return {"ok": True}


def check_health() -> tuple[bool, dict]:
    checks = {"database": database_health()}
    # The queue lives in the database on the embedded default; asking it while the database is
    # down would only repeat the same error.
    checks["queue"] = (
        queue_health() if checks["database"]["ok"] else {"ok": False, "error": "database down"}
    )
    if checks["database"]["ok"] and (simulator := simulator_health()) is not None:
        checks["simulator"] = simulator
    healthy = all(check["ok"] for check in checks.values())
    return healthy, {"status": "ok" if healthy else "not ok", "checks": checks}
