"""Who may log in to the simulator, which InfRefs exist, and which routes lead where.

Two loaders: `Registry.from_file(path)` reads a JSON file (format in docs/simulator.md) and
`Registry.from_database()` reads the portal's database (environment "simulator"). The server asks
a *source* for the registry on every login and every trigger: `FileRegistry` rereads the file
when it changes, `DatabaseRegistry` queries the database again once its last reading is a second
old.
"""

import base64
import binascii
import functools
import json
import logging
import os
import re
import struct
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from transfers.simulator.folders import conservative_name, safe_user

log = logging.getLogger("transfers.simulator")
_CVR = re.compile(r"[0-9]{8}")
_CVR_URN = re.compile(r"urn:oio:cvr-nr:([0-9]{8})")


class RegistryError(ValueError):
    """The registry file (or a row) is not what the simulator can use; the message says why."""


def public_key_blob(line: str) -> bytes:
    """The key blob of an OpenSSH public key line (`type base64 [comment]`)."""
    parts = line.strip().split()
    if len(parts) < 2:
        raise RegistryError(f"not an OpenSSH public key line: {line[:60]!r}")
    kind, encoded = parts[0], parts[1]
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise RegistryError(f"the public key of type {kind} is not valid base64") from None
    if len(blob) < 4:
        raise RegistryError(f"the public key of type {kind} is too short")
    (length,) = struct.unpack(">I", blob[:4])
    if blob[4 : 4 + length] != kind.encode():
        raise RegistryError(f"the public key's blob does not say it is {kind}")
    return blob


@dataclass(frozen=True)
class SftpUser:
    username: str
    public_keys: tuple[str, ...]  # OpenSSH public key lines
    it_system: uuid.UUID

    @functools.cached_property
    def key_blobs(self) -> frozenset[bytes]:
        return frozenset(public_key_blob(line) for line in self.public_keys)


@dataclass(frozen=True)
class RouteRule:
    infref: str
    sender_it_system: uuid.UUID
    receiver_it_system: uuid.UUID
    recipient_authority_cvr: str  # 8 digits
    established: bool = True


@dataclass(frozen=True)
class Registry:
    users: tuple[SftpUser, ...] = ()
    infrefs: Mapping[str, bool] = field(default_factory=dict)  # name -> active
    routes: tuple[RouteRule, ...] = ()

    def user(self, username: str) -> SftpUser | None:
        for user in self.users:
            if user.username == username:
                return user
        return None

    def users_of_it_system(self, it_system: uuid.UUID) -> list[SftpUser]:
        return [user for user in self.users if user.it_system == it_system]

    def accepts(self, username: str, key_blob: bytes) -> bool:
        user = self.user(username)
        return user is not None and key_blob in user.key_blobs

    def infref_active(self, name: str) -> bool | None:
        """True or False for a known InfRef, None for an unknown one."""
        return self.infrefs.get(name)

    def matching_routes(
        self,
        infref: str,
        sender_it_system: uuid.UUID,
        recipient_authority_cvr: str,
        recipient_it_system: uuid.UUID | None = None,
    ) -> list[RouteRule]:
        """The established routes for this flow; RecipientIt-system narrows them when given."""
        return [
            route
            for route in self.routes
            if route.established
            and route.infref == infref
            and route.sender_it_system == sender_it_system
            and route.recipient_authority_cvr == recipient_authority_cvr
            and (recipient_it_system is None or route.receiver_it_system == recipient_it_system)
        ]

    # --- loaders ---

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "Registry":
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise RegistryError(f"cannot read the registry {path}: {error}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise RegistryError(f"the registry {path} is not JSON: {error}") from None
        try:
            return cls.from_dict(data)
        except RegistryError as error:
            raise RegistryError(f"the registry {path}: {error}") from None

    @classmethod
    def from_dict(cls, data) -> "Registry":
        if not isinstance(data, dict):
            raise RegistryError("the registry is a JSON object with users, infrefs and routes")
        unknown = set(data) - {"users", "infrefs", "routes"}
        if unknown:
            raise RegistryError(f"unknown keys {sorted(unknown)}")
        users = tuple(_user(item, n) for n, item in enumerate(_list(data, "users")))
        names = [user.username for user in users]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise RegistryError(f"users listed twice: {duplicates}")
        infrefs = data.get("infrefs", {})
        if not isinstance(infrefs, dict) or not all(
            isinstance(k, str) and isinstance(v, bool) for k, v in infrefs.items()
        ):
            raise RegistryError('"infrefs" maps InfRef names to true (active) or false')
        routes = tuple(_route(item, n) for n, item in enumerate(_list(data, "routes")))
        return cls(users=users, infrefs=dict(infrefs), routes=routes)

    @classmethod
    def from_database(cls, environment: str = "simulator") -> "Registry":
        """SFTP accounts, InfRefs and routes of one environment in the database: "simulator"
        unless the simulator stands in for another (a test of the external test environment).

        A row the simulator cannot use (a bad key, an odd user name) is skipped with a warning.
        """
        from gdpr.models import InfRef
        from transfers.models import Route, SftpAccount

        users = []
        accounts = (
            SftpAccount.objects.filter(environment=environment)
            .exclude(public_key="")
            .select_related("it_system")
            .order_by("username")
        )
        for account in accounts:
            lines = tuple(line.strip() for line in account.public_key.splitlines() if line.strip())
            try:
                if not safe_user(account.username):
                    raise RegistryError(f"the user name {account.username!r} is not usable")
                for line in lines:
                    public_key_blob(line)
            except RegistryError as error:
                log.warning("Skipping SFTP account %s: %s", account.pk, error)
                continue
            users.append(SftpUser(account.username, lines, account.it_system.uuid))
        infrefs = {
            name: created is not None
            for name, created in InfRef.objects.values_list("name", "created_on_serviceplatform_at")
        }
        routes = tuple(
            RouteRule(
                infref=route.infref.name,
                sender_it_system=route.sender.uuid,
                receiver_it_system=route.receiver.uuid,
                recipient_authority_cvr=route.municipality.cvr,
                established=route.state == Route.State.ESTABLISHED,
            )
            for route in Route.objects.filter(environment=environment).select_related(
                "infref", "sender", "receiver", "municipality"
            )
        )
        return cls(users=tuple(users), infrefs=infrefs, routes=routes)

    def to_dict(self) -> dict:
        """The JSON form `from_dict` reads (handy for tests and for exporting the database)."""
        return {
            "users": [
                {
                    "username": user.username,
                    "it_system": str(user.it_system),
                    "public_keys": list(user.public_keys),
                }
                for user in self.users
            ],
            "infrefs": dict(self.infrefs),
            "routes": [
                {
                    "infref": route.infref,
                    "sender_it_system": str(route.sender_it_system),
                    "receiver_it_system": str(route.receiver_it_system),
                    "recipient_authority": route.recipient_authority_cvr,
                    "established": route.established,
                }
                for route in self.routes
            ],
        }


def _list(data: dict, key: str) -> list:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise RegistryError(f'"{key}" is a list')
    return value


def _object(item, where: str, required: set[str], optional: set[str]) -> dict:
    if not isinstance(item, dict):
        raise RegistryError(f"{where} is an object")
    missing = required - set(item)
    if missing:
        raise RegistryError(f"{where} lacks {sorted(missing)}")
    unknown = set(item) - required - optional
    if unknown:
        raise RegistryError(f"{where} has unknown keys {sorted(unknown)}")
    return item


def _uuid(value, where: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise RegistryError(f"{where} is not a UUID: {value!r}") from None


def _user(item, n: int) -> SftpUser:
    where = f"users[{n}]"
    item = _object(item, where, {"username", "it_system", "public_keys"}, set())
    username = item["username"]
    if not isinstance(username, str) or not safe_user(username):
        raise RegistryError(
            f"{where}.username must be 1-255 of A-Z, a-z, 0-9, '.', '_', '-' "
            f"and not start with a dot: {username!r}"
        )
    keys = item["public_keys"]
    if isinstance(keys, str):
        keys = [keys]
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise RegistryError(f"{where}.public_keys is a list of OpenSSH public key lines")
    for key in keys:
        try:
            public_key_blob(key)
        except RegistryError as error:
            raise RegistryError(f"{where}.public_keys: {error}") from None
    return SftpUser(username, tuple(k.strip() for k in keys), _uuid(item["it_system"], where))


def _route(item, n: int) -> RouteRule:
    where = f"routes[{n}]"
    item = _object(
        item,
        where,
        {"infref", "sender_it_system", "receiver_it_system", "recipient_authority"},
        {"established"},
    )
    infref = item["infref"]
    if not isinstance(infref, str) or not conservative_name(infref):
        raise RegistryError(f"{where}.infref is not an InfRef name: {infref!r}")
    authority = item["recipient_authority"]
    match = _CVR_URN.fullmatch(authority) if isinstance(authority, str) else None
    if match:
        authority = match.group(1)
    if not isinstance(authority, str) or not _CVR.fullmatch(authority):
        raise RegistryError(
            f"{where}.recipient_authority is a CVR number (8 digits, or its urn:oio:cvr-nr: URN)"
        )
    established = item.get("established", True)
    if not isinstance(established, bool):
        raise RegistryError(f"{where}.established is true or false")
    return RouteRule(
        infref=infref,
        sender_it_system=_uuid(item["sender_it_system"], f"{where}.sender_it_system"),
        receiver_it_system=_uuid(item["receiver_it_system"], f"{where}.receiver_it_system"),
        recipient_authority_cvr=authority,
        established=established,
    )


# --- sources ----------------------------------------------------------------------------------


class StaticRegistry:
    """A registry that never changes (tests)."""

    def __init__(self, registry: Registry):
        self.registry = registry

    def get(self) -> Registry:
        return self.registry

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return "a fixed registry"


class FileRegistry:
    """A JSON registry file, read again whenever it changes; a broken edit keeps the last one."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._registry = Registry.from_file(self.path)  # fail at start on a bad file
        self._seen = self._signature()

    def _signature(self):
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    def get(self) -> Registry:
        with self._lock:
            signature = self._signature()
            if signature != self._seen:
                self._seen = signature
                try:
                    self._registry = Registry.from_file(self.path)
                    log.info("Reloaded the registry from %s", self.path)
                except RegistryError as error:
                    log.error("%s; keeping the registry read before", error)
            return self._registry

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return f"the file {self.path}"


class DatabaseRegistry:
    """The portal's database, queried again when the last reading is older than `max_age`, from
    one thread of its own.

    One thread keeps the database connection out of the SFTP threads; it is closed after each
    load, so nothing stays open between logins (and a test database can be dropped). A batch of
    98 triggers within a second reads the registry once, not 98 times; a change in the portal
    still takes effect within `max_age`.
    """

    def __init__(self, timeout: float = 15.0, max_age: float = 1.0, environment: str = "simulator"):
        self.timeout = timeout
        self.max_age = max_age
        self.environment = environment
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simulator-db")
        self._lock = threading.Lock()
        self._registry: Registry | None = None
        self._read_at = float("-inf")

    def _load(self) -> Registry:
        from django.db import connection

        try:
            return Registry.from_database(self.environment)
        finally:
            connection.close()

    def get(self) -> Registry:
        with self._lock:
            if time.monotonic() - self._read_at < self.max_age:
                return self._registry
            try:
                self._registry = self._executor.submit(self._load).result(timeout=self.timeout)
                self._read_at = time.monotonic()
            except Exception:
                if self._registry is None:
                    raise
                log.exception("Reading the registry from the database failed; using the last one")
            return self._registry

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def describe(self) -> str:
        return f"the portal's database (environment {self.environment})"
