"""A local Serviceplatformen: an SFTP server that routes triggers like the real one.

Run it with `python manage.py serviceplatform`; docs/simulator.md describes it.
"""

from transfers.simulator.registry import (
    DatabaseRegistry,
    FileRegistry,
    Registry,
    RegistryError,
    RouteRule,
    SftpUser,
    StaticRegistry,
)
from transfers.simulator.router import DESCRIPTIONS, ErrorCode, Outcome, Router
from transfers.simulator.server import Simulator, fingerprint, load_or_create_host_key

__all__ = [
    "DESCRIPTIONS",
    "DatabaseRegistry",
    "ErrorCode",
    "FileRegistry",
    "Outcome",
    "Registry",
    "RegistryError",
    "RouteRule",
    "Router",
    "SftpUser",
    "Simulator",
    "StaticRegistry",
    "fingerprint",
    "load_or_create_host_key",
]
