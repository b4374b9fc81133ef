"""May the portal open an SFTP connection to this host and port (settings.SFTP_ALLOWED_HOSTS)?

A vendor types an SFTP account's host and port. Were the portal to connect wherever it is
pointed and tell how it went, it would be a port scanner inside its own network: open, closed
and SSH ports answer differently. So it connects only to what SFTP_ALLOWED_HOSTS lists
(Serviceplatformen's servers and the local simulator unless an operator widens it), and a refused
endpoint is refused before any socket is opened, with one message whatever listens there.

Entries are HOST[:PORT]: HOST a host name, an IP address or a network in CIDR form (IPv6 in
brackets: [::1], [fd00::/8]), PORT a number or * (22 when left out). A malformed entry is an
ImproperlyConfigured naming it, at start-up (the system check) and at first use.
"""

import ipaddress
import re
import socket
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_PORT = 22
SETTING = "SFTP_ALLOWED_HOSTS"
# [IPv6 or network] or a host without colons, then an optional :PORT.
_ENTRY = re.compile(r"(?:\[(?P<bracketed>[^\[\]]+)\]|(?P<plain>[^:\[\]]+))(?::(?P<port>.*))?")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class AllowedEndpoint:
    """One entry of SFTP_ALLOWED_HOSTS: a host name or a network, and a port (None: any)."""

    name: str | None
    network: Network | None
    port: int | None

    def admits_port(self, port: int) -> bool:
        return self.port is None or self.port == port


def parse_entry(entry: str) -> AllowedEndpoint:
    """One HOST[:PORT] entry; ImproperlyConfigured, naming the entry, when it is malformed."""
    if not isinstance(entry, str):
        raise _malformed(entry, "it is not a text")
    matched = _ENTRY.fullmatch(entry.strip())
    if matched is None:
        raise _malformed(entry, "write it as HOST[:PORT], an IPv6 address in brackets")
    port = _parse_port(entry, matched["port"])
    if matched["bracketed"] is not None:
        try:
            network = ipaddress.ip_network(matched["bracketed"])
        except ValueError as error:
            raise _malformed(entry, f"not an IP address or network ({error})") from None
        return AllowedEndpoint(None, network, port)
    host = matched["plain"]
    if "/" in host or _looks_numeric(host):
        # An address typed wrong must not pass as a host name nobody has.
        try:
            network = ipaddress.ip_network(host)
        except ValueError as error:
            raise _malformed(entry, f"not an IP address or network ({error})") from None
        return AllowedEndpoint(None, network, port)
    name = host_name(host)
    if name is None:
        raise _malformed(entry, "not a host name")
    return AllowedEndpoint(name, None, port)


def allowed_endpoints() -> tuple[AllowedEndpoint, ...]:
    """SFTP_ALLOWED_HOSTS, parsed (once per value of the setting)."""
    entries = getattr(settings, SETTING)
    # A bare string would be read letter by letter: refuse it rather than guess.
    if isinstance(entries, str) or not isinstance(entries, list | tuple):
        raise ImproperlyConfigured(
            f"{SETTING} must be a list of HOST[:PORT] entries, not {entries!r}."
        )
    for entry in entries:
        if not isinstance(entry, str):
            raise _malformed(entry, "it is not a text")
    return _parse_all(tuple(entries))


@lru_cache(maxsize=8)
def _parse_all(entries: tuple[str, ...]) -> tuple[AllowedEndpoint, ...]:
    return tuple(parse_entry(entry) for entry in entries)


def addresses_for(host: str, port: int) -> tuple[str, ...]:
    """Where the portal may connect for host:port, in the order to try; empty when refused.

    A host listed by name is connected to by name. An IP address is allowed when an allowed
    network holds it. A name not listed is allowed only when every address it resolves to lies
    in an allowed network; those checked addresses are what is returned, so the connection
    makes no second lookup that could answer differently (DNS rebinding). Raises OSError when
    that lookup fails.
    """
    if not isinstance(port, int) or not 1 <= port <= 65535:
        return ()
    entries = [entry for entry in allowed_endpoints() if entry.admits_port(port)]
    networks = [entry.network for entry in entries if entry.network is not None]
    literal = ip_literal(host)
    if literal is not None:
        return (str(literal),) if _inside(literal, networks) else ()
    name = host_name(host)
    if name is None:
        return ()
    if any(entry.name == name for entry in entries):
        return (name,)
    if not networks:
        return ()  # no lookup: nothing it could answer would be allowed
    resolved = _resolve(name, port)
    if resolved and all(_inside(address, networks) for address in resolved):
        return tuple(str(address) for address in resolved)
    return ()


def is_allowed(host: str, port: int) -> bool:
    """Whether the portal may connect to host:port; a name that cannot be looked up is not."""
    try:
        return bool(addresses_for(host, port))
    except OSError:
        return False


def endpoint_text(host: str, port: int | None) -> str:
    """host:port as people write it, an IPv6 address in brackets."""
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{shown}:{port}"


def refusal_message(host: str, port: int | None) -> str:
    """The one answer for a refused endpoint: it names what was typed and nothing about
    whether anything listens there."""
    return gettext(
        "The portal does not connect to %(endpoint)s. It connects only to Serviceplatformen's "
        "SFTP servers and to the hosts an operator has allowed in SFTP_ALLOWED_HOSTS."
    ) % {"endpoint": endpoint_text(host, port)}


def check_allowed_hosts(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """System check: a malformed SFTP_ALLOWED_HOSTS stops start-up instead of the first send."""
    try:
        allowed = allowed_endpoints()
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), id="transfers.E001")]
    if not allowed:
        return [
            checks.Warning(
                f"{SETTING} is empty: the portal connects to no SFTP server.", id="transfers.W001"
            )
        ]
    return []


def host_name(host: str) -> str | None:
    """A host name in the form names are compared in (lower case, no trailing dot); None when
    `host` is not a host name."""
    name = host.strip().lower()
    name = name[:-1] if name.endswith(".") else name
    if not name or len(name) > 253 or _looks_numeric(name):
        return None
    if not all(_LABEL.fullmatch(label) for label in name.split(".")):
        return None
    return name


def ip_literal(host: str) -> Address | None:
    """The IP address `host` spells ([IPv6] too), as IPv4 when it is an IPv4-mapped IPv6
    address (so an IPv4 network holds it); None for a name."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return _unmapped(address)


def _unmapped(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _inside(address: Address, networks: list[Network]) -> bool:
    return any(address in network for network in networks)


def _resolve(name: str, port: int) -> list[Address]:
    found: list[Address] = []
    for family, _kind, _proto, _canonical, sockaddr in socket.getaddrinfo(
        name, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    ):
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = _unmapped(ipaddress.ip_address(sockaddr[0]))
        if address not in found:
            found.append(address)
    return found


def _looks_numeric(host: str) -> bool:
    """A last label of digits: an IP address (or a typo of one), never a host name."""
    return bool(_DIGITS.fullmatch(host.rstrip(".").rsplit(".", 1)[-1]))


def _parse_port(entry: str, text: str | None) -> int | None:
    if text is None:
        return DEFAULT_PORT
    if text == "*":
        return None
    if re.fullmatch(r"[0-9]{1,5}", text) and 1 <= int(text) <= 65535:
        return int(text)
    raise _malformed(entry, f"the port {text!r} is not a number from 1 to 65535 or *")


def _malformed(entry: object, why: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{SETTING} entry {entry!r}: {why}.")
