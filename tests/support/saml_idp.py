"""A real SAML 2.0 identity provider for the tests, in its own process on a loopback port.

Built on pysaml2's server side (`saml2.server.Server`), the library the portal uses as the
service provider, with keys of its own made at start in the folder it is given (never kept in
the repository). It signs every request's answer as an organisation's IdP would, and on request
answers wrongly, so the tests can show that the portal refuses each kind of bad answer:

    GET /metadata        the IdP's metadata (also written to DIR/idp-metadata.xml at start)
    GET /sso/redirect    the HTTP-Redirect binding's single sign-on endpoint: checks the
                         portal's signed AuthnRequest and answers with a page that posts a
                         Response to the portal's assertion consumer service at once

Test hooks, as extra query parameters on /sso/redirect (a browser sends none and gets the
identity the IdP was started with): `variant` is one of VARIANTS, and `cvr`, `roles` (comma-
separated), `name_id`, `email` and `name` replace that identity's values for one answer.

The portal's SP metadata is read from the file given with --sp-metadata at each request, so a
test may write it after the IdP has started (the portal needs the IdP's metadata first).

    python -m tests.support.saml_idp --dir DIR --sp-metadata FILE [--cvr ... --roles a,b ...]

prints `ready PORT` once it listens. In a test: `with identity_provider(tmp_path) as idp:`.
"""

import argparse
import datetime
import html
import re
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]

# The attribute names the IdP sends: OIOSAML 3's for CVR number, e-mail and name (the portal's
# defaults), and a plain roles attribute of the tests' own.
CVR_ATTRIBUTE = "https://data.gov.dk/model/core/eid/professional/cvr"
EMAIL_ATTRIBUTE = "https://data.gov.dk/model/core/eid/email"
NAME_ATTRIBUTE = "https://data.gov.dk/model/core/eid/fullName"
ROLES_ATTRIBUTE = "urn:fdd:test:roles"

SIGNED = "signed"  # what a working IdP sends: the assertion signed with the IdP's key
ENCRYPTED = "encrypted"  # signed, then encrypted to the portal's certificate (as KOMBIT's)
UNSIGNED = "unsigned"  # no signature at all
OTHER_KEY = "other_key"  # signed, but with a key that is not the one in the IdP's metadata
WRONG_AUDIENCE = "wrong_audience"  # signed, but for another service provider
WRONG_RECIPIENT = "wrong_recipient"  # signed, but to be presented at another service's ACS
EXPIRED = "expired"  # signed, issued 20 minutes ago and valid until 10 minutes ago
VARIANTS = (SIGNED, ENCRYPTED, UNSIGNED, OTHER_KEY, WRONG_AUDIENCE, WRONG_RECIPIENT, EXPIRED)
ANOTHER_SERVICE = "https://another-service.example/saml/metadata"
ANOTHER_ACS = "https://another-service.example/saml/acs"

START_TIMEOUT = 30.0


def make_key_pair(folder: Path, name: str, common_name: str) -> tuple[Path, Path]:
    """A fresh RSA key and a self-signed certificate for it, as PEM files in `folder`."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = folder / f"{name}-key.pem", folder / f"{name}-cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


# --- The identity provider (runs in its own process) ------------------------------------------


def _saml_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _expire(assertion) -> None:
    """Make a just-built assertion one issued 20 minutes ago and valid until 10 minutes ago."""
    now = datetime.datetime.now(datetime.UTC)
    issued, ended = (
        _saml_time(now - datetime.timedelta(minutes=20)),
        _saml_time(now - datetime.timedelta(minutes=10)),
    )
    assertion.issue_instant = issued
    assertion.conditions.not_before = issued
    assertion.conditions.not_on_or_after = ended
    for confirmation in assertion.subject.subject_confirmation:
        confirmation.subject_confirmation_data.not_on_or_after = ended
    for statement in assertion.authn_statement:
        statement.authn_instant = issued


def _address_another_service(assertion) -> None:
    for restriction in assertion.conditions.audience_restriction:
        for audience in restriction.audience:
            audience.text = ANOTHER_SERVICE


def _address_another_acs(assertion) -> None:
    for confirmation in assertion.subject.subject_confirmation:
        confirmation.subject_confirmation_data.recipient = ANOTHER_ACS


def _server_class():
    from saml2.server import Server

    class TamperingServer(Server):
        """pysaml2's IdP, with a hook that changes each assertion after it is built and before
        it is signed: a bad answer that is still correctly signed by the IdP."""

        tamper: Callable | None = None

        def setup_assertion(self, *args, **kwargs):
            assertion = super().setup_assertion(*args, **kwargs)
            if self.tamper is not None and not isinstance(assertion, list):
                self.tamper(assertion)
            return assertion

    return TamperingServer


@dataclass
class Identity:
    name_id: str
    cvr: str
    email: str
    name: str
    roles: list[str] = field(default_factory=list)


class IdentityProvider:
    def __init__(self, folder: Path, port: int, sp_metadata: Path, identity: Identity) -> None:
        from saml2.metadata import create_metadata_string

        self.folder = folder
        self.base = f"http://127.0.0.1:{port}"
        self.entity_id = f"{self.base}/idp"
        self.sp_metadata = sp_metadata
        self.identity = identity
        self.key, self.cert = make_key_pair(folder, "idp", "FDD test IdP")
        # The same entity id with a key of its own: what an impostor signs with.
        self.other_key, self.other_cert = make_key_pair(folder, "impostor", "FDD test IdP")
        metadata = create_metadata_string(None, self._config(self.key, self.cert, with_sp=False))
        self.metadata = metadata.decode() if isinstance(metadata, bytes) else metadata
        (folder / "idp-metadata.xml").write_text(self.metadata)

    def _config(self, key: Path, cert: Path, *, with_sp: bool = True):
        from saml2 import BINDING_HTTP_REDIRECT
        from saml2.config import IdPConfig
        from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_PERSISTENT
        from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

        config = IdPConfig()
        config.load(
            {
                "entityid": self.entity_id,
                "key_file": str(key),
                "cert_file": str(cert),
                "metadata": {"local": [str(self.sp_metadata)]} if with_sp else {},
                "allow_unknown_attributes": True,
                "signing_algorithm": SIG_RSA_SHA256,
                "digest_algorithm": DIGEST_SHA256,
                "service": {
                    "idp": {
                        "name": "FDD test IdP",
                        "endpoints": {
                            "single_sign_on_service": [
                                (f"{self.base}/sso/redirect", BINDING_HTTP_REDIRECT)
                            ]
                        },
                        "want_authn_requests_signed": True,
                        "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                        "policy": {
                            "default": {
                                "lifetime": {"minutes": 5},
                                "name_form": NAME_FORMAT_URI,
                                "attribute_restrictions": None,
                            }
                        },
                    }
                },
            }
        )
        return config

    def answer(self, query: dict[str, str]) -> str:
        """The auto-posting page that answers one AuthnRequest (HTTP-Redirect binding)."""
        from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
        from saml2.saml import AUTHN_PASSWORD_PROTECTED, NAMEID_FORMAT_PERSISTENT, NameID

        variant = query.get("variant", SIGNED)
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}")
        server = _server_class()(config=self._config(self.key, self.cert))
        request = server.parse_authn_request(
            query["SAMLRequest"],
            BINDING_HTTP_REDIRECT,
            relay_state=query.get("RelayState"),
            sigalg=query.get("SigAlg"),
            signature=query.get("Signature"),
        )
        args = server.response_args(request.message, [BINDING_HTTP_POST])
        if variant == OTHER_KEY:
            server = _server_class()(config=self._config(self.other_key, self.other_cert))
        server.tamper = {
            EXPIRED: _expire,
            WRONG_AUDIENCE: _address_another_service,
            WRONG_RECIPIENT: _address_another_acs,
        }.get(variant)

        roles = query["roles"].split(",") if "roles" in query else self.identity.roles
        attributes = {
            CVR_ATTRIBUTE: [query.get("cvr", self.identity.cvr)],
            EMAIL_ATTRIBUTE: [query.get("email", self.identity.email)],
            NAME_ATTRIBUTE: [query.get("name", self.identity.name)],
            ROLES_ATTRIBUTE: [role for role in roles if role],
        }
        response = server.create_authn_response(
            {name: values for name, values in attributes.items() if values},
            in_response_to=args["in_response_to"],
            destination=args["destination"],
            sp_entity_id=args["sp_entity_id"],
            name_id=NameID(
                format=NAMEID_FORMAT_PERSISTENT,
                text=query.get("name_id", self.identity.name_id),
                name_qualifier=self.entity_id,
                sp_name_qualifier=args["sp_entity_id"],
            ),
            authn={"class_ref": AUTHN_PASSWORD_PROTECTED, "authn_auth": self.entity_id},
            sign_assertion=variant != UNSIGNED,
            sign_response=False,
            # To the encryption certificate in the portal's metadata.
            encrypt_assertion=variant == ENCRYPTED,
            encrypt_assertion_self_contained=True,
        )
        http = server.apply_binding(
            BINDING_HTTP_POST,
            str(response),
            args["destination"],
            query.get("RelayState", ""),
            response=True,
        )
        return http["data"]


def _handler(idp: IdentityProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {name: values[0] for name, values in parse_qs(parts.query).items()}
            if parts.path == "/metadata":
                self._send(200, "application/samlmetadata+xml", idp.metadata)
            elif parts.path == "/sso/redirect":
                try:
                    page = idp.answer(query)
                except Exception as error:  # the test reads why in the answer
                    self._send(400, "text/plain; charset=utf-8", f"{type(error).__name__}: {error}")
                else:
                    self._send(200, "text/html; charset=utf-8", page)
            else:
                self._send(404, "text/plain; charset=utf-8", "not found")

        def _send(self, status: int, content_type: str, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args) -> None:
            pass

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A SAML 2.0 IdP for the FDD portal's tests")
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--sp-metadata", type=Path, required=True)
    parser.add_argument("--name-id", default="a1b2c3d4-0000-4000-8000-000000000001")
    parser.add_argument("--cvr", default="39123452")
    parser.add_argument("--email", default="ida.holm@alfa.example")
    parser.add_argument("--name", default="Ida Holm")
    parser.add_argument("--roles", default="")
    options = parser.parse_args(argv)
    identity = Identity(
        name_id=options.name_id,
        cvr=options.cvr,
        email=options.email,
        name=options.name,
        roles=[role for role in options.roles.split(",") if role],
    )
    http = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    idp = IdentityProvider(options.dir, http.server_address[1], options.sp_metadata, identity)
    http.RequestHandlerClass = _handler(idp)
    print(f"ready {http.server_address[1]}", flush=True)
    http.serve_forever()


# --- The tests' side --------------------------------------------------------------------------


@dataclass
class Answer:
    """The IdP's auto-posting page, read as a browser would before posting it."""

    action: str
    saml_response: str
    relay_state: str

    @property
    def post_data(self) -> dict[str, str]:
        data = {"SAMLResponse": self.saml_response}
        if self.relay_state:
            data["RelayState"] = self.relay_state
        return data


def _field(page: str, name: str) -> str:
    found = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)"', page)
    return html.unescape(found[1]) if found else ""


@dataclass
class RunningIdP:
    base: str
    folder: Path
    process: subprocess.Popen

    @property
    def entity_id(self) -> str:
        return f"{self.base}/idp"

    @property
    def metadata_path(self) -> Path:
        return self.folder / "idp-metadata.xml"

    @property
    def metadata_url(self) -> str:
        return f"{self.base}/metadata"

    @property
    def sp_metadata_path(self) -> Path:
        return self.folder / "sp-metadata.xml"

    def answer(self, location: str, **hooks: str) -> Answer:
        """Follow the portal's redirect to the IdP (with the test hooks) and read its answer."""
        assert location.startswith(f"{self.base}/sso/redirect?"), location
        extra = "".join(
            f"&{name}={urllib.request.quote(value, safe='')}" for name, value in hooks.items()
        )
        with urllib.request.urlopen(location + extra, timeout=30) as reply:  # noqa: S310
            page = reply.read().decode()
        action = re.search(r'<form action="([^"]*)"', page)
        assert action, page
        return Answer(
            action=html.unescape(action[1]),
            saml_response=_field(page, "SAMLResponse"),
            relay_state=_field(page, "RelayState"),
        )


@contextmanager
def identity_provider(folder: Path, *args: str) -> Iterator[RunningIdP]:
    """The IdP in its own process, with its keys and metadata in `folder`; `args` are the
    command line's (--cvr ..., --roles ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.saml_idp",
            "--dir",
            str(folder),
            "--sp-metadata",
            str(folder / "sp-metadata.xml"),
            *args,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = _first_line(process)
        found = re.fullmatch(r"ready (\d+)\n?", line)
        assert found, f"the IdP did not start: {line!r} (exit {process.poll()})"
        yield RunningIdP(base=f"http://127.0.0.1:{found[1]}", folder=folder, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


def _first_line(process: subprocess.Popen) -> str:
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(START_TIMEOUT)
    return lines[0] if lines else ""


if __name__ == "__main__":
    main()
