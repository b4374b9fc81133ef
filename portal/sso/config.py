"""The portal as a SAML 2.0 service provider: pysaml2's configuration, built from the settings.

It is built when a request needs it, never at import, so a test (or an operator replacing the
IdP's metadata file) changes it without a restart. Loading the IdP's metadata is the costly
part: a configuration is kept while the settings and the metadata file stay the same, and a
metadata URL is read again every METADATA_REFRESH_SECONDS (the copy read before stays in use
while the URL does not answer).
"""

import ipaddress
import logging
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.conf import settings
from django.urls import reverse

if TYPE_CHECKING:
    from saml2.config import SPConfig

logger = logging.getLogger(__name__)

# An AuthnRequest must be answered within this long (a sign-in at MitID can take minutes).
REQUEST_LIFETIME = timedelta(minutes=30)
# Clocks of the portal and the identity provider may differ this much.
CLOCK_SKEW_SECONDS = 60
METADATA_REFRESH_SECONDS = 3600
METADATA_RETRY_SECONDS = 300
METADATA_TIMEOUT_SECONDS = 10

_SETTINGS = (
    "SSO_IDP_METADATA",
    "SSO_SP_ENTITY_ID",
    "SSO_SP_KEY_FILE",
    "SSO_SP_CERT_FILE",
    "PORTAL_BASE_URL",
)


class Unavailable(Exception):
    """Single sign-on is configured, but the identity provider's metadata could not be read."""


def is_configured() -> bool:
    return bool(getattr(settings, "SSO_IDP_METADATA", ""))


def metadata_url(value: str) -> str | None:
    """The metadata's URL if SSO_IDP_METADATA names one, else None (it names a file).

    https, or plain http to this machine alone: metadata carries the key that every sign-in
    is checked with, so it must not be read over a network where it can be changed.
    """
    parts = urlsplit(value)
    if parts.scheme == "https":
        return value
    if parts.scheme == "http":
        host = parts.hostname or ""
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            return value
        raise ValueError(f"SSO_IDP_METADATA={value!r}: only https:// URLs (or a file) are taken.")
    if parts.scheme and len(parts.scheme) > 1:  # a Windows drive letter is no scheme
        raise ValueError(f"SSO_IDP_METADATA={value!r}: only https:// URLs (or a file) are taken.")
    return None


def acs_url() -> str:
    """Where the identity provider posts its answers (the SP metadata says so too)."""
    return settings.PORTAL_BASE_URL.rstrip("/") + reverse("sso:acs")


def _build(*, with_idp: bool = True) -> "SPConfig":
    # pysaml2 takes most of a second to import (its XML schemas): only a portal with single
    # sign-on on pays for it, when the first sign-in needs it.
    from saml2 import BINDING_HTTP_POST
    from saml2.config import SPConfig
    from saml2.saml import NAMEID_FORMAT_PERSISTENT
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

    source = str(settings.SSO_IDP_METADATA)
    url = metadata_url(source)
    if not with_idp:
        idp_metadata = {}
    elif url:
        idp_metadata = {"remote": [{"url": url}]}
    else:
        idp_metadata = {"local": [source]}
    key_file, cert_file = str(settings.SSO_SP_KEY_FILE), str(settings.SSO_SP_CERT_FILE)
    config = SPConfig()
    config.load(
        {
            "entityid": settings.SSO_SP_ENTITY_ID,
            "key_file": key_file,
            "cert_file": cert_file,
            # The same pair decrypts assertions an identity provider encrypts for the portal.
            "encryption_keypairs": [{"key_file": key_file, "cert_file": cert_file}],
            "metadata": idp_metadata,
            "http_client_timeout": METADATA_TIMEOUT_SECONDS,
            "accepted_time_diff": CLOCK_SKEW_SECONDS,
            # pysaml2 would sign with SHA-1.
            "signing_algorithm": SIG_RSA_SHA256,
            "digest_algorithm": DIGEST_SHA256,
            "allow_unknown_attributes": True,
            # A signature counts only with the key in the IdP's metadata, never one it carries.
            "only_use_keys_in_metadata": True,
            "service": {
                "sp": {
                    "name": "FDD portal",
                    "endpoints": {"assertion_consumer_service": [(acs_url(), BINDING_HTTP_POST)]},
                    # Said in the metadata (a transient NameID is refused: the person could
                    # not be known again); the AuthnRequest leaves the format to the IdP.
                    "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                    "authn_requests_signed": True,
                    # Every assertion must carry the identity provider's signature; a signed
                    # Response around an unsigned assertion is not enough.
                    "want_assertions_signed": True,
                    "want_response_signed": False,
                    # Only answers to a request this browser made (see SsoRequest).
                    "allow_unsolicited": False,
                }
            },
        }
    )
    return config


_cache: dict[tuple, tuple[float, "SPConfig"]] = {}
_lock = threading.Lock()


def _cache_key() -> tuple:
    values = tuple(str(getattr(settings, name, "")) for name in _SETTINGS)
    source = str(settings.SSO_IDP_METADATA)
    if metadata_url(source) is None:
        try:
            return (*values, Path(source).stat().st_mtime_ns)
        except OSError as error:
            raise Unavailable(f"SSO_IDP_METADATA: {error}") from error
    return values


def sp_config(*, with_idp: bool = True) -> "SPConfig":
    """The configuration for the settings now in force; raises Unavailable when the identity
    provider's metadata cannot be read (a missing file, an unreachable URL, invalid XML).
    `with_idp=False`: without the IdP's metadata, enough to publish the portal's own."""
    if not with_idp:
        try:
            return _build(with_idp=False)
        except Exception as error:
            raise Unavailable(f"{type(error).__name__}: {error}") from error
    try:
        key = _cache_key()
    except ValueError as error:
        raise Unavailable(str(error)) from error
    now = time.monotonic()
    with _lock:
        cached = _cache.get(key)
        if cached and now - cached[0] < METADATA_REFRESH_SECONDS:
            return cached[1]
    try:
        config = _build()
    except Exception as error:  # pysaml2 raises many kinds while reading metadata and keys
        if cached is None:
            raise Unavailable(f"{type(error).__name__}: {error}") from error
        # The metadata URL did not answer this time: the copy read before holds a while more.
        logger.warning("The IdP's metadata could not be read again, kept: %s", error)
        with _lock:
            _cache[key] = (now - METADATA_REFRESH_SECONDS + METADATA_RETRY_SECONDS, cached[1])
        return cached[1]
    with _lock:
        _cache.clear()  # one configuration in force at a time
        _cache[key] = (now, config)
    return config
