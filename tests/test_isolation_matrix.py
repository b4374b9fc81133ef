"""The isolation matrix (issue 8, point 7): every URL pattern × every role × GET and POST.

The world: vendor A's IT system sends to vendor B's for Aarhus, with everything an integration
has (InfRef request and declarations, onboarding, data specification, route, accounts, a transfer,
a received file, an alert, mail, API token and folder). Each URL is opened with these objects as
its arguments, by:

    N  anonymous
    A  vendor staff A: the sending vendor, who drives the integration
    B  vendor staff B: the receiving vendor, another organisation to A's records
    M  a municipal architect of Odense: another municipality, outside all of it
    K  a KOMBIT operator (two-step login done)
    S  a superuser (two-step login done)

CLASSIFICATION below says, per URL, who may read (GET) and who may change (POST); every role
not named gets the project's answer for records out of reach: 404, or the login page for N. A
URL pattern that is not in the table fails the suite until it is classified. The admin's
patterns are classified by one rule, the AdminSite's: superusers only.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from urllib.parse import urlencode

import pytest
from django.core.files.base import ContentFile
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

import gdpr.mail
import gdpr.views
import portal.specs.views
from gdpr.models import GdprDeclaration
from gdpr.workflow import open_draft
from handoff import tokens
from handoff.models import WatchedFolder
from portal.accounts.models import Invitation
from portal.alerts.models import Alert
from portal.alerts.service import raise_alert
from portal.onboarding.models import ProcessingAgreement
from portal.specs.documents import inspect_document
from portal.specs.versions import create_version
from tests.conftest import make_user
from tests.support.engine import account as sftp_account
from tests.support.engine import ready_integration, routes_for
from tests.support.specs import STRUCTURE, XSD, upload
from tests.support.totp import verified_client
from tests.support.urlwalk import Pattern, all_patterns
from transfers.models import ReceivedFile, Transfer
from transfers.tasks import unreadable_receipt

ROLES = "NABMKS"
ROLE_NAMES = {
    "N": "anonymous",
    "A": "vendor staff A (sender)",
    "B": "vendor staff B (receiver)",
    "M": "architect of another municipality",
    "K": "KOMBIT operator",
    "S": "superuser",
}
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"

# Outcomes --------------------------------------------------------------------------------------

OK = "ok"  # answered: 2xx, or a redirect that is not to a login page
LOGIN = "login"  # sent to the portal's login page
ADMIN_LOGIN = "admin login"  # sent to the admin's login page
ANSWERED = "answered"  # anything but 403/404 (the health check's 503, logout's redirect)
LET_IN = "let in"  # past every login step; the page itself may still refuse (a read-only model)
Outcome = str | int


def rule(
    ok: str = "",
    *,
    forbidden: str = "",
    not_allowed: str = "",
    anonymous: Outcome = LOGIN,
    **explicit: Outcome,
) -> dict[str, Outcome]:
    """Who gets what. Roles named in `ok` are served, in `forbidden` get 403 (they may see the
    record but not change it), in `not_allowed` 405 (wrong method); N gets `anonymous` unless
    named, and every other role 404: the record is out of its reach."""
    outcomes: dict[str, Outcome] = {role: 404 for role in ROLES}
    outcomes["N"] = anonymous
    for roles, outcome in ((ok, OK), (forbidden, 403), (not_allowed, 405)):
        for role in roles:
            outcomes[role] = outcome
    outcomes.update(explicit)
    return outcomes


EVERYONE = rule("ABMKS")  # every logged-in user; the page shows each only their own records
VENDORS = rule("ABS", forbidden="MK")  # pages for vendor staff (registering, ordering, sending)
POST_ONLY = rule(not_allowed="ABMKS")  # a GET to a view that takes POST alone
SENDER_CHANGES = rule("AS", forbidden="BK")  # the integration's records: the sender changes them
INTEGRATION_PARTIES = rule("ABKS")  # ... and both vendors and KOMBIT read them; M is outside
A_AND_KOMBIT_READ = rule("AKS")  # vendor A's own records, which KOMBIT reads too
A_CHANGES_KOMBIT_READS = rule("AS", forbidden="K")
# staff-a (A) is a plain member of vendor A: only its administrators (and superusers) run it.
A_IS_NO_ADMINISTRATOR = rule("S", forbidden="A")
TOKEN_ONLY = rule(anonymous=401, **dict.fromkeys("ABMKS", 401))  # the API ignores the session


@dataclass(frozen=True)
class Case:
    get: dict[str, Outcome]
    post: dict[str, Outcome]
    kwargs: Callable[["World"], dict] = lambda world: {}
    query: Callable[["World"], dict] = lambda world: {}
    post_data: Callable[["World"], dict] = lambda world: {}
    htmx: bool = False  # a fragment htmx polls; without the header it redirects to its page


def same(outcomes: dict[str, Outcome], **kwargs) -> Case:
    """A view that answers a POST as it answers a GET (it reads, or shows a form again)."""
    return Case(get=outcomes, post=outcomes, **kwargs)


def post_only(outcomes: dict[str, Outcome], **kwargs) -> Case:
    return Case(get=POST_ONLY, post=outcomes, **kwargs)


def integration(world: "World") -> dict:
    return {"pk": world.integration.pk}


def system_a(world: "World") -> dict:
    return {"pk": world.system_a.pk}


def member_a(world: "World") -> dict:
    return {"pk": world.vendor_a.pk, "membership_pk": world.vendor_a.memberships.get().pk}


def invitation_a(world: "World") -> dict:
    return {"pk": world.vendor_a.pk, "invitation_pk": world.invitation.pk}


def organisation_a(world: "World") -> dict:
    return {"pk": world.vendor_a.pk}


def transfer(world: "World") -> dict:
    return {"pk": world.transfer.pk}


def account_a(world: "World") -> dict:
    return {"pk": world.account_a.pk}


CLASSIFICATION: dict[str, Case] = {
    # Open to all, or about the login itself.
    "login": same(rule("NABMKS")),
    "logout": Case(get=rule(not_allowed="NABMKS"), post=rule("", **dict.fromkeys(ROLES, ANSWERED))),
    "healthz": Case(get=rule(**dict.fromkeys(ROLES, ANSWERED)), post=rule(not_allowed="NABMKS")),
    "livez": Case(get=rule("NABMKS"), post=rule(not_allowed="NABMKS")),
    "favicon": Case(get=rule(**dict.fromkeys(ROLES, ANSWERED)), post=rule(not_allowed="NABMKS")),
    "readyz": Case(get=rule("NABMKS"), post=rule(not_allowed="NABMKS")),
    "set_language": same(rule("NABMKS")),
    "two_factor_setup": same(rule("ABMKS")),
    "two_factor_verify": same(rule("ABMKS")),
    # Each person's own account; a forgotten password is asked for, and set with the mailed
    # link, by anyone.
    "account:overview": same(EVERYONE),
    "account:password_change": same(EVERYONE),
    "account:password_reset": same(rule("NABMKS")),
    "account:password_reset_done": same(rule("NABMKS")),
    "account:password_reset_confirm": same(
        rule("NABMKS"), kwargs=lambda world: {"uidb64": "MQ", "token": "not-a-token"}
    ),
    # An organisation's people, run by its administrators.
    "organisations:invite": same(A_IS_NO_ADMINISTRATOR, kwargs=organisation_a),
    "organisations:member_role": post_only(
        A_IS_NO_ADMINISTRATOR, kwargs=member_a, post_data=lambda world: {"administrator": "true"}
    ),
    "organisations:member_remove": same(A_IS_NO_ADMINISTRATOR, kwargs=member_a),
    "organisations:member_deactivate": same(A_IS_NO_ADMINISTRATOR, kwargs=member_a),
    "organisations:member_two_factor_reset": same(A_IS_NO_ADMINISTRATOR, kwargs=member_a),
    "organisations:invitation_resend": post_only(A_IS_NO_ADMINISTRATOR, kwargs=invitation_a),
    "organisations:invitation_withdraw": post_only(A_IS_NO_ADMINISTRATOR, kwargs=invitation_a),
    "organisations:two_factor": post_only(
        A_IS_NO_ADMINISTRATOR, kwargs=organisation_a, post_data=lambda world: {"required": "true"}
    ),
    # An unknown token answers as an expired one: 404 to everyone, the anonymous included.
    "invitations:accept": same(
        rule(**dict.fromkeys(ROLES, 404)), kwargs=lambda world: {"token": "no-such-token"}
    ),
    # Single sign-on: off in this world, so 404 to everyone whatever the method;
    # tests/test_sso.py covers it switched on.
    "sso:metadata": same(rule(**dict.fromkeys(ROLES, 404))),
    "sso:login": same(rule(**dict.fromkeys(ROLES, 404))),
    "sso:acs": same(rule(**dict.fromkeys(ROLES, 404))),
    "two_factor_manage": same(EVERYONE),
    "two_factor_backup_codes": post_only(EVERYONE),
    "two_factor_remove": post_only(EVERYONE),
    "dashboard": same(EVERYONE),
    # Organisations: names, CVR and municipality codes are public facts.
    "organisations:list": same(EVERYONE),
    "organisations:detail": same(EVERYONE, kwargs=lambda w: {"pk": w.vendor_a.pk}),
    # IT systems: the vendor's; KOMBIT keeps the register and reads them all.
    "itsystems:list": same(EVERYONE),
    "itsystems:create": same(VENDORS),
    "itsystems:detail": same(A_AND_KOMBIT_READ, kwargs=system_a),
    "itsystems:edit": same(A_CHANGES_KOMBIT_READS, kwargs=system_a),
    # Outbox: the mail that carried vendor A's declaration to KOMBIT.
    "outbox:list": same(EVERYONE),
    "outbox:detail": same(A_AND_KOMBIT_READ, kwargs=lambda w: {"pk": w.mail.pk}),
    "outbox:eml": same(A_AND_KOMBIT_READ, kwargs=lambda w: {"pk": w.mail.pk}),
    "outbox:attachment": same(
        A_AND_KOMBIT_READ,
        kwargs=lambda w: {"pk": w.mail.pk, "attachment_pk": w.attachment.pk},
    ),
    # Only superusers resend; to anyone else the address does not exist.
    "outbox:resend": Case(
        get=rule(not_allowed="S"), post=rule("S"), kwargs=lambda w: {"pk": w.mail.pk}
    ),
    # InfRef requests and declarations: vendor A's; KOMBIT reads what is addressed to it.
    "gdpr:requests": same(EVERYONE),
    "gdpr:request_create": same(VENDORS),
    "gdpr:request": same(A_AND_KOMBIT_READ, kwargs=lambda w: {"pk": w.request.pk}),
    "gdpr:request_assign": post_only(
        rule("KS", forbidden="A"), kwargs=lambda w: {"pk": w.request.pk}
    ),
    "gdpr:request_created": post_only(
        rule("KS", forbidden="A"), kwargs=lambda w: {"pk": w.request.pk}
    ),
    # The requesting vendor withdraws (here refused with a message: the InfRef is assigned).
    "gdpr:request_withdraw": post_only(
        A_CHANGES_KOMBIT_READS, kwargs=lambda w: {"pk": w.request.pk}
    ),
    "gdpr:declaration_open": post_only(
        rule("AS", forbidden="K"), kwargs=lambda w: {"pk": w.request.pk}
    ),
    "gdpr:declaration": same(A_AND_KOMBIT_READ, kwargs=lambda w: {"pk": w.declaration.pk}),
    # A draft is the vendor's alone until it is submitted.
    "gdpr:declaration_edit": same(rule("AS"), kwargs=lambda w: {"pk": w.draft.pk}),
    "gdpr:declaration_pdf": same(A_AND_KOMBIT_READ, kwargs=lambda w: {"pk": w.declaration.pk}),
    # Data specifications: the integration's parties read, the sender changes.
    "specs:list": same(EVERYONE),
    "specs:specification": same(INTEGRATION_PARTIES, kwargs=lambda w: {"integration_pk": w.ipk}),
    "specs:version_create": same(SENDER_CHANGES, kwargs=lambda w: {"integration_pk": w.ipk}),
    "specs:diff": same(INTEGRATION_PARTIES, kwargs=lambda w: {"integration_pk": w.ipk}),
    "specs:version": same(INTEGRATION_PARTIES, kwargs=lambda w: {"pk": w.version.pk}),
    "specs:document_upload": post_only(SENDER_CHANGES, kwargs=lambda w: {"pk": w.version.pk}),
    "specs:version_pdf": same(INTEGRATION_PARTIES, kwargs=lambda w: {"pk": w.version.pk}),
    "specs:document": same(INTEGRATION_PARTIES, kwargs=lambda w: {"pk": w.document.pk}),
    # Onboarding.
    "onboarding:list": same(EVERYONE),
    "onboarding:create": same(VENDORS),
    "onboarding:matrix": same(EVERYONE),
    "onboarding:municipality": same(EVERYONE),
    "onboarding:detail": same(INTEGRATION_PARTIES, kwargs=integration),
    "onboarding:add_municipality": same(SENDER_CHANGES, kwargs=integration),
    "onboarding:agreement": same(SENDER_CHANGES, kwargs=integration),
    "onboarding:agreement_document": same(
        INTEGRATION_PARTIES, kwargs=lambda w: {"pk": w.agreement.pk}
    ),
    "onboarding:test": same(SENDER_CHANGES, kwargs=integration),
    "onboarding:task": same(SENDER_CHANGES, kwargs=lambda w: {"pk": w.task.pk}),
    "onboarding:edit": same(SENDER_CHANGES, kwargs=integration),
    # Refused here with a message: Aarhus has a route.
    "onboarding:remove_municipality": post_only(
        SENDER_CHANGES,
        kwargs=lambda w: {"pk": w.ipk, "municipality_pk": w.route.municipality_id},
    ),
    # Each party says yes for itself: A for vendor A; no one else (not even S) speaks for it.
    "onboarding:consent_give": post_only(
        rule("A", forbidden="BKS"),
        kwargs=integration,
        post_data=lambda w: {"subject": "no_agreement", "party": w.vendor_a.pk},
    ),
    "onboarding:consent_withdraw": post_only(
        rule("A", forbidden="BKS"),
        kwargs=integration,
        post_data=lambda w: {"subject": "no_agreement", "party": w.vendor_a.pk},
    ),
    # Transfers carry municipal data: the two vendors and the municipality, not KOMBIT.
    "transfers:list": same(EVERYONE),
    "transfers:rows": same(EVERYONE, htmx=True),
    "transfers:export": same(EVERYONE),
    "transfers:send": same(VENDORS),
    "transfers:detail": same(rule("ABS"), kwargs=transfer),
    "transfers:unreadable_receipt": same(rule("ABS"), kwargs=transfer),
    "transfers:progress": same(rule("ABS"), kwargs=transfer, htmx=True),
    # The local copy is the sending vendor's data.
    "transfers:download": same(rule("AS", forbidden="B"), kwargs=transfer),
    "transfers:resubmit": post_only(rule("AS", forbidden="B"), kwargs=transfer),
    "transfers:cancel": post_only(rule("AS", forbidden="B"), kwargs=transfer),
    "transfers:received": same(EVERYONE),
    # Received by vendor B's account: B's (and Aarhus's, not Odense's); A never sees it.
    "transfers:received_download": same(rule("BS"), kwargs=lambda w: {"pk": w.received.pk}),
    "transfers:routes": same(EVERYONE),
    "transfers:route_create": same(VENDORS),
    # KOMBIT establishes routes; the sender may suspend its own; the receiver only reads.
    "transfers:route_state": post_only(
        rule("AKS", forbidden="B"),
        kwargs=lambda w: {"pk": w.route.pk},
        post_data=lambda w: {"state": "suspended"},
    ),
    "transfers:accounts": same(EVERYONE),
    "transfers:account_create": same(VENDORS),
    "transfers:account": same(A_AND_KOMBIT_READ, kwargs=account_a),
    "transfers:account_generate": post_only(A_CHANGES_KOMBIT_READS, kwargs=account_a),
    "transfers:account_import": post_only(A_CHANGES_KOMBIT_READS, kwargs=account_a),
    "transfers:account_probe": post_only(A_CHANGES_KOMBIT_READS, kwargs=account_a),
    "transfers:account_confirm": post_only(A_CHANGES_KOMBIT_READS, kwargs=account_a),
    # The review is for municipal architects, of their own municipality: here, Aarhus's.
    "review:overview": Case(
        get=rule("S"), post=rule(not_allowed="ABMKS"), query=lambda w: {"municipality": "751"}
    ),
    "audit:log": same(EVERYONE),
    "alerts:resolve": post_only(rule("ABS"), kwargs=lambda w: {"pk": w.alert.pk}),
    # The IT system's API tokens and folders: whoever may change the IT system.
    "handoff:tokens": same(A_CHANGES_KOMBIT_READS, kwargs=system_a),
    "handoff:token_revoke": post_only(
        A_CHANGES_KOMBIT_READS, kwargs=lambda w: {"pk": w.system_a.pk, "token_pk": w.token.pk}
    ),
    "handoff:folders": same(A_CHANGES_KOMBIT_READS, kwargs=system_a),
    "handoff:watched_new": same(A_CHANGES_KOMBIT_READS, kwargs=system_a),
    "handoff:watched_edit": same(
        A_CHANGES_KOMBIT_READS, kwargs=lambda w: {"pk": w.system_a.pk, "folder_pk": w.watched.pk}
    ),
    "handoff:watched_remove": post_only(
        A_CHANGES_KOMBIT_READS, kwargs=lambda w: {"pk": w.system_a.pk, "folder_pk": w.watched.pk}
    ),
    "handoff:delivery_save": post_only(A_CHANGES_KOMBIT_READS, kwargs=system_a),
    "handoff:delivery_remove": post_only(A_CHANGES_KOMBIT_READS, kwargs=system_a),
}

# The REST API authenticates each call with an IT system's Bearer token and ignores the session:
# no role reaches it with its login. Its own tests cover the tokens' reach.
for _name, _methods in {
    "api-v1:list_routes": "GET",
    "api-v1:route_readiness": "GET",
    "api-v1:queue_transfer": "POST",
    "api-v1:list_transfers": "GET",
    "api-v1:transfer": "GET",
    "api-v1:list_received": "GET",
    "api-v1:read_received": "GET",
    "api-v1:download_received": "GET",
    "api-v1:acknowledge_received": "POST",
}.items():
    _wrong = rule(**dict.fromkeys(ROLES, 405))
    CLASSIFICATION[_name] = Case(
        get=TOKEN_ONLY if _methods == "GET" else _wrong,
        post=TOKEN_ONLY if _methods == "POST" else _wrong,
        kwargs=lambda w: {"route_id": w.route.pk, "transfer_id": w.transfer.pk, "file_id": 1},
    )
# The API's description (OpenAPI) and its docs page hold no records, but are for the portal's
# users and its tokens: anonymous, the document answers 401 and the page sends to the login.
CLASSIFICATION["api-v1:openapi-json"] = same(rule("ABMKS", anonymous=401))
CLASSIFICATION["api-v1:openapi-view"] = same(rule("ABMKS"))
CLASSIFICATION["api-v1:api-root"] = same(rule(**dict.fromkeys(ROLES, 404)))


# The world -------------------------------------------------------------------------------------


@dataclass
class World:
    vendor_a: object
    system_a: object
    integration: object
    request: object
    declaration: object
    draft: object
    mail: object
    attachment: object
    version: object
    document: object
    agreement: object
    task: object
    route: object
    account_a: object
    transfer: object
    received: object
    alert: object
    token: object
    watched: object
    invitation: object
    clients: dict[str, Client] = field(default_factory=dict)

    @property
    def ipk(self) -> int:
        return self.integration.pk


# Strings of the world that a role outside its reach must never be shown, on any page.
MARKERS = {
    "integration": "Isolationsintegration Q7",
    "system_a": "Alfa Omsorg",
    "system_b": "Beta Journal",
    "infref": "FagsystemdefineredeDataRefGDPR4242_1",
    "transfer": "isolationsfil-a-til-b.csv",
    "received": "modtaget-af-b.csv",
}
NEVER_SHOWN = {
    "M": set(MARKERS.values()),
    "K": {MARKERS["transfer"], MARKERS["received"]},
    "A": {MARKERS["received"]},
    "N": set(MARKERS.values()),
}


@pytest.fixture
def world(
    settings,
    monkeypatch,
    tmp_path,
    vendor_a,
    system_a,
    system_b,
    staff_a,
    staff_b,
    aarhus,
    odense,
    operator,
    superuser,
) -> World:
    settings.TWO_FACTOR_REQUIRED = True
    # WeasyPrint's second per PDF buys nothing here: the pages' access is what is tested.
    for module, name in [
        (gdpr.mail, "render_declaration_pdf"),
        (gdpr.views, "render_declaration_pdf"),
        (portal.specs.views, "render_version_pdf"),
    ]:
        monkeypatch.setattr(module, name, lambda *args: PDF)

    integration = ready_integration(
        staff=staff_a,
        operator=operator,
        sender=system_a,
        receiver=system_b,
        municipalities=[aarhus],
    )
    integration.name = MARKERS["integration"]
    integration.save(update_fields=["name"])
    infref = integration.infref
    declaration = infref.declarations.get(status=GdprDeclaration.Status.SUBMITTED)
    draft = open_draft(infref, staff_a)
    mail = declaration.submission_mail
    # A minor version after the declared 1.0, with a document: sends go on, the declaration
    # is only to be renewed.
    version = create_version(
        integration,
        major=1,
        minor=1,
        structure=STRUCTURE,
        fields=integration.data_specification.latest_version().fields.all(),
        user=staff_a,
        documents=[(upload("felter.xsd", XSD), inspect_document(upload("felter.xsd", XSD)))],
    )
    agreement = ProcessingAgreement.objects.create(
        integration=integration,
        title="Databehandleraftale",
        signed_on=date(2026, 3, 1),
        document=ContentFile(PDF, name="aftale.pdf"),
    )
    agreement.parties.set([aarhus])
    route = routes_for(integration, [aarhus])["751"]
    account_a = sftp_account(system_a, "alfa_sender", None)
    account_b = sftp_account(system_b, "beta_receiver", None)
    payload = tmp_path / "payload.csv"
    payload.write_bytes(b"cpr;navn\n")
    transfer = Transfer.objects.create(
        route=route,
        account=account_a,
        state=Transfer.State.QUEUED,
        original_name=MARKERS["transfer"],
        payload=str(payload),
        size=9,
        sha256=hashlib.sha256(b"cpr;navn\n").hexdigest(),
        remote_name=f"alfa_sender_{MARKERS['transfer']}",
        created_by=staff_a,
    )
    kept_receipt = unreadable_receipt(transfer.remote_name)
    kept_receipt.parent.mkdir(parents=True, exist_ok=True)
    kept_receipt.write_bytes(b"<Receipt>")
    stored = tmp_path / "received.csv"
    stored.write_bytes(b"data")
    received = ReceivedFile.objects.create(
        account=account_b,
        remote_name=MARKERS["received"],
        state=ReceivedFile.State.RECEIVED,
        stored_path=str(stored),
        size=4,
        sha256=hashlib.sha256(b"data").hexdigest(),
        infref_name=infref.name,
        sender_username="alfa_sender",
        route=route,
    )
    alert, _created = raise_alert(
        Alert.Kind.TRANSFER_FAILED,
        key=f"matrix:{transfer.pk}",
        message="Overførslen fejlede.",
        concerns=[vendor_a, system_b.vendor, aarhus],
        route=route,
        transfer=transfer,
    )
    token, _plain = tokens.issue(system_a, name="matrix", valid_days=30, user=staff_a)
    watched = WatchedFolder.objects.create(route=route, path="alfa/aarhus-ud", changed_by=staff_a)

    clients = {"N": Client()}
    for role, user in {
        "A": staff_a,
        "B": staff_b,
        "M": make_user("architect-odense", odense),
    }.items():
        clients[role] = Client()
        clients[role].force_login(user)
    clients["K"] = verified_client(operator)
    clients["S"] = verified_client(superuser)
    return World(
        vendor_a=vendor_a,
        system_a=system_a,
        integration=integration,
        request=infref.request,
        declaration=declaration,
        draft=draft,
        mail=mail,
        attachment=mail.attachments.first(),
        version=version,
        document=version.documents.get(),
        agreement=agreement,
        task=integration.tasks.exclude(number__in=(30, 40, 60)).order_by("number").first(),
        route=route,
        account_a=account_a,
        transfer=transfer,
        received=received,
        alert=alert,
        token=token,
        watched=watched,
        invitation=Invitation.objects.create(
            organisation=vendor_a,
            email="matrix@alfa.example",
            token_sha256="0" * 64,
            expires_at=timezone.now() + timedelta(days=7),
        ),
        clients=clients,
    )


# Judging an answer -----------------------------------------------------------------------------


def _redirects_to(response, path: str) -> bool:
    return response.status_code == 302 and response["Location"].startswith(path)


def _judge(response, expected: Outcome) -> bool:
    # A fragment polled by htmx sends the browser to log in through htmx's header.
    to_login = _redirects_to(response, reverse("login")) or response.get(
        "HX-Redirect", ""
    ).startswith(reverse("login"))
    to_admin_login = _redirects_to(response, reverse("admin:login"))
    if expected == LOGIN:
        return to_login
    if expected == ADMIN_LOGIN:
        return to_admin_login
    if expected == ANSWERED:
        return response.status_code not in (403, 404)
    if expected == LET_IN:
        return not (to_login or to_admin_login or _redirects_to(response, "/login/two-factor/"))
    if expected == OK:
        return 200 <= response.status_code < 400 and not (to_login or to_admin_login)
    return response.status_code == expected


def _body(response) -> str:
    if response.status_code != 200:
        return ""
    content_type = response.get("Content-Type", "")
    if not content_type.startswith(("text/", "application/json")):
        return ""
    raw = b"".join(response.streaming_content) if response.streaming else response.content
    return raw.decode(errors="replace")


def _request(client: Client, method: str, path: str, case: Case, world: World):
    """One request, whose changes are rolled back: each role meets the world as it was made."""
    headers = {"HX-Request": "true"} if case.htmx else {}
    query = case.query(world)
    with transaction.atomic():
        if method == "GET":
            response = client.get(path, query, headers=headers)
        else:
            target = f"{path}?{urlencode(query)}" if query else path
            response = client.post(target, case.post_data(world), headers=headers)
        body = _body(response)  # read while the rows a streamed answer reads still exist
        transaction.set_rollback(True)
    return response, body


# The tests -------------------------------------------------------------------------------------

PATTERNS = all_patterns()
PORTAL = [p for p in PATTERNS if not p.is_admin]
ADMIN = [p for p in PATTERNS if p.is_admin]


def test_every_url_pattern_is_classified():
    missing = sorted(p.key for p in PORTAL if p.key not in CLASSIFICATION)
    assert not missing, (
        "These URL patterns are not in the isolation matrix. Classify each in CLASSIFICATION "
        "in tests/test_isolation_matrix.py: who may read it (GET), who may change it (POST), "
        "and which of the world's objects its arguments take:\n  " + "\n  ".join(missing)
    )
    stale = sorted(set(CLASSIFICATION) - {p.key for p in PORTAL})
    assert not stale, f"classified but no longer a URL pattern, remove: {stale}"


@pytest.mark.parametrize("pattern", PORTAL, ids=[p.key for p in PORTAL])
def test_who_may_read_and_change(world: World, pattern: Pattern):
    case = CLASSIFICATION.get(pattern.key)
    if case is None:
        pytest.fail(f"{pattern.key} is not classified: see test_every_url_pattern_is_classified")
    path = pattern.path(case.kwargs(world))
    wrong, leaked = [], []
    for method, expected in (("GET", case.get), ("POST", case.post)):
        for role in ROLES:
            response, body = _request(world.clients[role], method, path, case, world)
            if not _judge(response, expected[role]):
                where = response.get("Location", "")
                wrong.append(
                    f"{method} {path} as {ROLE_NAMES[role]} ({role}): expected {expected[role]}, "
                    f"got {response.status_code}{' → ' + where if where else ''}"
                )
            shown = [m for m in NEVER_SHOWN.get(role, ()) if m in body]
            if shown:
                leaked.append(f"{method} {path} shows {ROLE_NAMES[role]} ({role}): {shown}")
    assert not (wrong or leaked), "\n".join(wrong + leaked)


@pytest.fixture
def people(settings, staff_a, staff_b, odense, operator, superuser) -> dict[str, Client]:
    settings.TWO_FACTOR_REQUIRED = True
    clients = {"N": Client()}
    for role, user in {
        "A": staff_a,
        "B": staff_b,
        "M": make_user("architect-odense", odense),
    }.items():
        clients[role] = Client()
        clients[role].force_login(user)
    clients["K"] = verified_client(operator)
    clients["S"] = verified_client(superuser)
    return clients


# The admin's own login and logout pages; every other admin page is for staff, and the portal
# makes only superusers staff.
ADMIN_OPEN = {
    "admin:login": (rule("NABMKS"), rule("NABMKS")),
    # Logging out takes a POST; a GET sends those not logged in to the admin back to its index.
    "admin:logout": (rule("NABMK", not_allowed="S"), rule(**dict.fromkeys(ROLES, ANSWERED))),
}
# Superusers are let in; some admin pages still refuse even them (read-only records, the TOTP
# devices' secrets), and a made-up id answers 404.
ADMIN_RULE = rule(anonymous=ADMIN_LOGIN, S=LET_IN, **dict.fromkeys("ABMK", ADMIN_LOGIN))


@pytest.mark.parametrize("pattern", ADMIN, ids=[p.key for p in ADMIN])
def test_the_admin_is_for_superusers_only(people: dict[str, Client], pattern: Pattern):
    get, post = ADMIN_OPEN.get(pattern.key, (ADMIN_RULE, ADMIN_RULE))
    path = pattern.path()
    wrong = []
    for method, expected in (("GET", get), ("POST", post)):
        for role in ROLES:
            client = people[role]
            response = client.get(path) if method == "GET" else client.post(path, {})
            if not _judge(response, expected[role]):
                wrong.append(
                    f"{method} {path} as {ROLE_NAMES[role]}: expected {expected[role]}, "
                    f"got {response.status_code} {response.get('Location', '')}"
                )
    assert not wrong, "\n".join(wrong)
