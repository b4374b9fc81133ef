"""Health of the parts the portal cannot work without, for load balancers and monitoring."""

import socket

from django.conf import settings
from django.db import connection
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
    """The local Serviceplatform answers with an SSH banner; None when no account uses it."""
    from transfers.models import Environment, SftpAccount

    if not SftpAccount.objects.filter(environment=Environment.SIMULATOR).exists():
        return None
    address = (settings.SIMULATOR_HOST, settings.SIMULATOR_PORT)
    try:
        with socket.create_connection(address, timeout=2) as connection:
            banner = connection.recv(64)
    except OSError as error:
        return {"ok": False, "error": f"{address[0]}:{address[1]}: {error}"}
    if not banner.startswith(b"SSH-"):
        return {"ok": False, "error": "no SSH banner"}
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
    return healthy, {"status": "ok" if healthy else "error", "checks": checks}
