"""The SAML side of single sign-on, all of it pysaml2's: the AuthnRequest, the portal's
metadata, and the checks on the identity provider's Response.

pysaml2 checks the Response: the assertion's signature against the key in the IdP's metadata
alone (with xmlsec1; an unsigned assertion is refused even inside a signed Response), the
audience, the validity period, the destination and recipient, and that it answers one of the
requests given as outstanding. What is left here is naming why an answer was refused.
"""

import logging
from dataclasses import dataclass

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import create_metadata_string
from saml2.response import (
    IncorrectlySigned,
    StatusError,
    UnsolicitedResponse,
    VerificationError,
)
from saml2.saml import NAMEID_FORMAT_TRANSIENT
from saml2.sigver import SigverError
from saml2.validate import ResponseLifetimeExceed, ToEarly

from portal.sso.config import Unavailable

logger = logging.getLogger(__name__)


class Rejected(Exception):
    """The Response is not taken; `reason` is a key of views.REASONS."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Answer:
    """What a checked Response says about the person."""

    in_response_to: str
    issuer: str
    name_id: str  # empty when the IdP sent none, or a transient one
    attributes: dict[str, list[str]]  # by the attribute's Name, as sent

    def first(self, name: str) -> str:
        values = self.attributes.get(name) if name else None
        return values[0] if values else ""


def metadata(config: SPConfig) -> str:
    document = create_metadata_string(None, config)
    return document.decode() if isinstance(document, bytes) else document


def authn_request(config: SPConfig) -> tuple[str, str]:
    """A signed AuthnRequest to the one identity provider in the metadata: (its ID, the URL
    that carries it, HTTP-Redirect binding)."""
    providers = list(config.metadata.identity_providers())
    if len(providers) != 1:
        raise Unavailable(
            f"SSO_IDP_METADATA must describe one identity provider; it describes {len(providers)}."
        )
    request_id, http = Saml2Client(config=config).prepare_for_authenticate(
        entityid=providers[0], binding=BINDING_HTTP_REDIRECT, sign=True
    )
    return request_id, dict(http["headers"])["Location"]


def read_response(config: SPConfig, encoded: str, outstanding: dict[str, str]) -> Answer:
    """The checked Response (base64, HTTP-POST binding); raises Rejected with the reason."""
    client = Saml2Client(config=config)
    try:
        response = client.parse_authn_request_response(
            encoded,
            BINDING_HTTP_POST,
            outstanding=outstanding,
            # With it, pysaml2 also checks each SubjectConfirmation's Recipient.
            conv_info={"entity_id": config.entityid},
        )
    except UnsolicitedResponse:
        raise Rejected("replayed") from None
    except (SigverError, IncorrectlySigned):
        raise Rejected("signature") from None
    except (ResponseLifetimeExceed, ToEarly):
        raise Rejected("expired") from None
    except StatusError as error:
        raise Rejected("idp", str(error)[:200]) from None
    except VerificationError as error:
        if "recipient" in str(error):
            raise Rejected("audience") from None
        raise Rejected("invalid", str(error)[:200]) from None
    except Exception as error:  # pysaml2 says "not for me" with a bare Exception
        if "AudienceRestrictions" in str(error):
            raise Rejected("audience") from None
        logger.warning("An unreadable SAML Response: %s: %s", type(error).__name__, error)
        raise Rejected("invalid") from None
    if response is None or response.assertion is None:
        raise Rejected("invalid")
    assertion = response.assertion
    issuer = assertion.issuer.text if assertion.issuer is not None else response.issuer()
    name_id = response.name_id
    lasting = name_id is not None and name_id.format != NAMEID_FORMAT_TRANSIENT
    return Answer(
        in_response_to=response.in_response_to or "",
        issuer=(issuer or "").strip(),
        name_id=(name_id.text or "").strip() if lasting else "",
        attributes=_attributes(assertion),
    )


def _attributes(assertion) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for statement in assertion.attribute_statement:
        for attribute in statement.attribute:
            values = [(value.text or "").strip() for value in attribute.attribute_value]
            found.setdefault(attribute.name, []).extend(value for value in values if value)
    return found
