"""Stored XSS: hostile text in every field a user can fill, shown in Chromium to every role.

A regression of the security probe that rendered a corpus of XSS payloads on the portal's pages
as each role and found nothing running. The demo world is made, then a payload of the corpus is
stored in every text a person (or a remote party: a file name, a quarantine reason) can put in
and some page shows: names of vendors, municipalities, IT systems and integrations, the data
specification, InfRef requests and GDPR declarations, agreements, tasks, transfers, received
files, API tokens, watched folders, alerts, mail, the audit log and the users' own names. Each
role then logs in through the forms (operators and superusers with a TOTP code) and opens its
pages, the admin's among them for the superuser.

The Content-Security-Policy is bypassed in the browser, so what is checked is the escaping alone:
a payload that became markup would run here. On every page:

- no element carries the corpus's `data-xss` attribute, and no element has an inline event
  handler attribute (`on…`): no payload became an element or an attribute;
- `window.__xss`, which every payload's script would set, is undefined, and no dialog opened;
- no link, frame or form points to a `javascript:` URL;
- each field the page is listed as showing is there, verbatim, as text (or as the value of a
  form field or attribute): `{{7*7}}` stays `{{7*7}}`, not 49. So the test cannot pass because
  a page showed nothing; and every seeded field must be expected on at least one page.
"""

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.urls import reverse
from playwright.sync_api import Page

import gdpr.mail
from gdpr import workflow
from gdpr.demo import _ANSWERS as DEMO_ANSWERS
from gdpr.models import GdprDeclaration, InfRefRequest
from handoff import tokens
from handoff.models import FolderPickup, WatchedFolder
from portal.accounts.models import Organisation
from portal.alerts.models import Alert
from portal.alerts.service import raise_alert
from portal.audit.log import record
from portal.audit.models import AuditEvent
from portal.itsystems.models import ItSystem
from portal.onboarding.models import Integration, IntegrationTest, ProcessingAgreement
from portal.specs.models import SpecificationDocument, SpecificationVersion
from tests.support.browser import screenshot
from tests.support.demo import LIVE, Visit, seed_with_transfers
from transfers.models import ReceivedFile, Route, SftpAccount, Transfer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The corpus: HTML, attribute, URL, raw-text (textarea, title) and script contexts, template
# injection and a right-to-left override. Every payload that became markup carries `data-xss`;
# every script it would run counts in `window.__xss`.
CORPUS = (
    '<img src=x data-xss onerror="window.__xss=(window.__xss||0)+1">',
    '"><svg data-xss onload="window.__xss=(window.__xss||0)+1">',
    "'\"><script data-xss>window.__xss=(window.__xss||0)+1;alert(1)</script>",
    "javascript:window.__xss=1//",
    "</textarea></title></style><b data-xss>",
    "{{7*7}} ${7*7} {% now 'Y' %}",
    '<a data-xss href="javascript:window.__xss=1">x</a>',
    '" data-xss autofocus onfocus="window.__xss=1" x="',
    "\u202egpj.exe",
)
TEMPLATE_PAYLOAD = CORPUS[5]


def hostile(number: int, limit: int) -> str:
    """As many payloads as fit in `limit` characters, starting at a different one for each
    field, and the field's number at the end so that no two fields have the same text."""
    suffix = f" #{number:02}"
    parts: list[str] = []
    for step in range(len(CORPUS)):
        payload = CORPUS[(number + step) % len(CORPUS)]
        if len(" ".join([*parts, payload]) + suffix) <= limit:
            parts.append(payload)
    assert parts, f"no payload fits in {limit} characters"
    return " ".join(parts) + suffix


class Texts:
    """Field → the hostile text stored in it, numbered in the order they are made."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def make(self, key: str, limit: int = 10_000) -> str:
        assert key not in self.values, key
        self.values[key] = hostile(len(self.values), limit)
        return self.values[key]

    def stored(self, key: str, value: str) -> str:
        """A text the portal composed from hostile parts (a mail subject, an audit summary)."""
        assert key not in self.values, key
        assert "data-xss" in value, f"{key} holds no payload: {value!r}"
        self.values[key] = value
        return value


# Every field the test fills; each must be expected on at least one page below.
FIELDS = {
    "vendor_sender": "organisation name (the sending vendor)",
    "vendor_receiver": "organisation name (the receiving vendor)",
    "municipality": "organisation name (the municipality)",
    "system_sender": "IT system name (sender)",
    "system_receiver": "IT system name (receiver)",
    "integration": "integration name",
    "legal_basis": "integration legal basis",
    "task_comment": "onboarding task comment",
    "test_scope": "integration test scope",
    "agreement_title": "processing agreement title",
    "spec_frequency": "data specification version: delivery frequency",
    "spec_notes": "data specification version: notes",
    "spec_field_name": "data specification field name",
    "spec_field_description": "data specification field description",
    "spec_document": "data specification document's original name",
    "request_description": "InfRef request description",
    "declaration_purpose": "GDPR declaration: purpose (submitted)",
    "declaration_dpa_title": "GDPR declaration: processing agreement title (submitted)",
    "declaration_signatory": "GDPR declaration: signatory (submitted)",
    "draft_purpose": "GDPR declaration: purpose (draft, in its form)",
    "draft_volume": "GDPR declaration: transfer volume (draft, in its form)",
    "transfer_name": "transfer original file name",
    "transfer_error": "transfer KOMBIT error text",
    "received_name": "received file remote name",
    "received_reason": "received file quarantine reason",
    "token_name": "API token name",
    "watched_pattern": "watched folder name pattern",
    "pickup_name": "file name taken from a watched folder",
    "alert_message": "alert message",
    "mail_subject": "outgoing mail subject (built from the IT system name)",
    "audit_summary": "audit event summary (str() of a transfer)",
    "user_nordlys": "user first and last name (sending vendor staff)",
    "user_fjordsoft": "user first and last name (receiving vendor staff)",
    "user_aarhus": "user first and last name (municipal architect)",
    "user_kombit": "user first and last name (KOMBIT operator)",
    "user_admin": "user first and last name (superuser)",
}
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@dataclass
class World:
    texts: dict[str, str]
    vendor: int  # the sending vendor
    sender: int  # its IT system
    integration: int
    version: int
    task: int
    route: int
    account: int
    request: int
    declaration: int
    draft: int
    transfer: int
    watched: int
    mail: int


def _name_users(texts: Texts) -> None:
    for user in (
        get_user_model()
        .objects.filter(username__in=["nordlys", "fjordsoft", "aarhus", "kombit", "admin"])
        .order_by("username")
    ):
        user.first_name = hostile(100 + 2 * user.pk, 150)
        user.last_name = hostile(101 + 2 * user.pk, 150)
        user.save(update_fields=["first_name", "last_name"])
        texts.stored(f"user_{user.username}", user.get_full_name())


def build_world() -> World:
    """The demo world, then a payload in every field; records made after the renaming (the
    declaration, the mail, the audit events) take the hostile names as the portal would."""
    seed_with_transfers()
    texts = Texts()
    live = Integration.objects.get(name=LIVE)
    nordlys, fjordsoft = live.sender.vendor, live.receiver.vendor
    aarhus = Organisation.objects.get(municipality_code="751")
    kombit = Organisation.objects.get(kind=Organisation.Kind.KOMBIT)
    users = get_user_model().objects
    staff = users.get(username="nordlys")

    Organisation.objects.filter(pk=nordlys.pk).update(name=texts.make("vendor_sender", 200))
    Organisation.objects.filter(pk=fjordsoft.pk).update(name=texts.make("vendor_receiver", 200))
    Organisation.objects.filter(pk=aarhus.pk).update(name=texts.make("municipality", 200))
    ItSystem.objects.filter(pk=live.sender_id).update(name=texts.make("system_sender", 200))
    ItSystem.objects.filter(pk=live.receiver_id).update(name=texts.make("system_receiver", 200))
    Integration.objects.filter(pk=live.pk).update(
        name=texts.make("integration", 200), legal_basis=texts.make("legal_basis")
    )
    _name_users(texts)
    live.refresh_from_db()

    task = live.tasks.get(number=10)
    task.comment = texts.make("task_comment")
    task.save(update_fields=["comment"])
    IntegrationTest.objects.filter(integration=live).update(scope=texts.make("test_scope"))
    # The demo's agreement, its title and document now the payload's.
    agreement = ProcessingAgreement.objects.get(integration=live)
    agreement.title = texts.make("agreement_title", 255)
    agreement.document = ContentFile(PDF, name="aftale.pdf")
    agreement.save(update_fields=["title", "document"])

    version = SpecificationVersion.objects.get(specification__integration=live)
    SpecificationVersion.objects.filter(pk=version.pk).update(
        frequency=texts.make("spec_frequency", 200), notes=texts.make("spec_notes")
    )
    version.fields.filter(name="navn").update(
        name=texts.make("spec_field_name", 100),
        description=texts.make("spec_field_description"),
    )
    document = b"# Felter\n"
    SpecificationDocument.objects.create(
        version=version,
        file=ContentFile(document, name="felter.md"),
        original_name=texts.make("spec_document", 255),
        kind=SpecificationDocument.Kind.MARKDOWN,
        size=len(document),
        sha256=hashlib.sha256(document).hexdigest(),
        uploaded_by=staff,
    )

    # The sending vendor's InfRef request, and a new declaration submitted with hostile answers:
    # its content (the parties' names) is taken now, from the renamed records.
    request = InfRefRequest.objects.get(it_system=live.sender)
    InfRefRequest.objects.filter(pk=request.pk).update(
        description=texts.make("request_description")
    )
    request.refresh_from_db()
    draft = workflow.open_draft(request.infref, staff)
    answers = {
        **DEMO_ANSWERS,
        "purpose": texts.make("declaration_purpose"),
        "dpa_title": texts.make("declaration_dpa_title", 255),
        "signatory_name": texts.make("declaration_signatory", 200),
    }
    for name, value in answers.items():
        setattr(draft, name, value)
    draft.save()
    draft.controllers.set([aarhus])
    draft.receiving_it_systems.set([live.receiver])
    declaration = workflow.submit_declaration(draft, staff)
    # The receiving vendor's draft in progress, shown in its form.
    other_draft = GdprDeclaration.objects.get(
        infref__it_system__name="Fjordsoft Skoledata", status=GdprDeclaration.Status.DRAFT
    )
    other_draft.purpose = texts.make("draft_purpose")
    other_draft.transfer_volume = texts.make("draft_volume", 255)
    other_draft.save()
    other_draft.controllers.set([aarhus])
    other_draft.receiving_it_systems.set([live.receiver])
    # The mail to KOMBIT about the request, composed again now that the IT system is renamed.
    mail = gdpr.mail.infref_request(request)
    texts.stored("mail_subject", mail.subject)

    route = Route.objects.get(integration=live, municipality=aarhus)
    account = SftpAccount.objects.get(it_system=live.sender, environment="simulator")
    name = texts.make("transfer_name", 255)
    transfer = Transfer.objects.create(
        route=route,
        account=account,
        state=Transfer.State.FAILED,
        original_name=name,
        payload="/nonexistent/hostile.csv",
        size=9,
        sha256=hashlib.sha256(b"cpr;navn\n").hexdigest(),
        remote_name=f"{account.username}_FDD_{uuid.uuid4()}.csv",
        created_by=staff,
        attempts=1,
        error_code=3,
        error_text=texts.make("transfer_error"),
    )
    event = record(
        staff,
        AuditEvent.Action.SEND,
        transfer,
        concerns=[nordlys, fjordsoft, aarhus, kombit],
        file=name,
    )
    texts.stored("audit_summary", event.summary)
    raise_alert(
        Alert.Kind.TRANSFER_FAILED,
        key=f"hostile:{transfer.pk}",
        message=texts.make("alert_message"),
        concerns=[nordlys, fjordsoft, aarhus],
        route=route,
        transfer=transfer,
    )

    inbox = SftpAccount.objects.get(it_system=live.receiver, environment="simulator")
    for state, key, reason in (
        (ReceivedFile.State.RECEIVED, "received_name", ""),
        (ReceivedFile.State.QUARANTINED, None, texts.make("received_reason")),
    ):
        ReceivedFile.objects.create(
            account=inbox,
            remote_name=texts.make(key, 255) if key else "karantaene.csv",
            state=state,
            reason=reason,
            stored_path="/nonexistent/received.csv" if not reason else "",
            size=4,
            sha256=hashlib.sha256(b"data").hexdigest(),
            infref_name=route.infref.name,
            sender_username=account.username,
            route=route,
        )

    tokens.issue(live.sender, name=texts.make("token_name", 100), valid_days=30, user=staff)
    watched = WatchedFolder.objects.create(
        route=route,
        path=f"{nordlys.cvr}/aarhus-ud",  # under the vendor's own folder
        name_pattern=texts.make("watched_pattern", 100),
        changed_by=staff,
    )
    FolderPickup.objects.create(
        folder=watched,
        name=texts.make("pickup_name", 255),
        claimed_as=f"claimed-{uuid.uuid4()}",
        outcome=FolderPickup.Outcome.REFUSED,
        reason="Navnet passer ikke.",
    )

    missing = set(FIELDS) ^ set(texts.values)
    assert not missing, f"FIELDS and the seeded texts differ: {sorted(missing)}"
    unused = [p for p in CORPUS if not any(p in text for text in texts.values.values())]
    assert not unused, f"payloads stored whole in no field: {unused}"
    return World(
        texts=texts.values,
        vendor=nordlys.pk,
        sender=live.sender_id,
        integration=live.pk,
        version=version.pk,
        task=task.pk,
        route=route.pk,
        account=account.pk,
        request=request.pk,
        declaration=declaration.pk,
        draft=other_draft.pk,
        transfer=transfer.pk,
        watched=watched.pk,
        mail=mail.pk,
    )


# The pages --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    name: str
    path: Callable[[World], str]
    shows: tuple[str, ...]  # the fields the page must show, verbatim
    screenshot: bool = False


def url(name: str, *args: Callable[[World], int], query: dict | None = None):
    """The page's path; arguments and query values may be read from the world."""

    def path(world: World) -> str:
        found = reverse(name, args=[arg(world) for arg in args])
        if not query:
            return found
        values = {k: v(world) if callable(v) else v for k, v in (query or {}).items()}
        return f"{found}?{urlencode(values)}"

    return path


def _pk(attribute: str) -> Callable[[World], int]:
    return lambda world: getattr(world, attribute)


VENDOR, SENDER, INTEGRATION = _pk("vendor"), _pk("sender"), _pk("integration")
VERSION, TRANSFER, DECLARATION = _pk("version"), _pk("transfer"), _pk("declaration")
PARTIES = ("system_sender", "system_receiver", "vendor_sender", "vendor_receiver")
ROUTE_NAMES = ("system_sender", "system_receiver", "municipality")

PAGES: dict[str, list[Shown]] = {
    # Vendor staff of the sending vendor: drives the integration.
    "nordlys": [
        Shown(
            "dashboard",
            url("dashboard"),
            ("user_nordlys", "vendor_sender", "system_sender", "alert_message", "integration"),
            screenshot=True,
        ),
        Shown("it-systems", url("itsystems:list"), ("system_sender", "vendor_sender")),
        Shown("it-system-edit", url("itsystems:edit", SENDER), ("system_sender",)),
        Shown(
            "organisation",
            url("organisations:detail", VENDOR),
            ("vendor_sender", "system_sender", "user_nordlys"),
        ),
        Shown(
            "infref-request",
            url("gdpr:request", _pk("request")),
            ("request_description", "system_sender", "vendor_sender"),
        ),
        Shown(
            "declaration",
            url("gdpr:declaration", DECLARATION),
            (
                "declaration_purpose",
                "declaration_dpa_title",
                "declaration_signatory",
                "vendor_sender",
                "system_sender",
                "system_receiver",
                "municipality",
            ),
        ),
        Shown("integrations", url("onboarding:list"), ("integration", "system_sender")),
        Shown(
            "integration",
            url("onboarding:detail", INTEGRATION),
            (
                "integration",
                "legal_basis",
                "task_comment",
                "test_scope",
                "agreement_title",
                "municipality",
                *PARTIES,
            ),
        ),
        Shown("task", url("onboarding:task", _pk("task")), ("task_comment", "integration")),
        Shown("test", url("onboarding:test", INTEGRATION), ("test_scope", "integration")),
        Shown("agreement", url("onboarding:agreement", INTEGRATION), ("agreement_title",)),
        Shown("specification", url("specs:specification", INTEGRATION), ("integration", *PARTIES)),
        Shown(
            "specification-version",
            url("specs:version", VERSION),
            (
                "spec_frequency",
                "spec_notes",
                "spec_field_name",
                "spec_field_description",
                "spec_document",
                "integration",
            ),
        ),
        Shown(
            "specification-new-version",
            url("specs:version_create", INTEGRATION),
            ("spec_frequency", "spec_notes", "spec_field_name", "spec_field_description"),
        ),
        Shown("transfers", url("transfers:list"), ("transfer_name", *ROUTE_NAMES)),
        Shown(
            "transfers-of-route",
            url("transfers:list", query={"route": _pk("route")}),
            ("transfer_name", *ROUTE_NAMES),
        ),
        Shown("transfer", url("transfers:detail", TRANSFER), ("transfer_name", "transfer_error")),
        Shown("routes", url("transfers:routes"), ROUTE_NAMES),
        Shown("account", url("transfers:account", _pk("account")), ("system_sender",)),
        Shown("api-tokens", url("handoff:tokens", SENDER), ("token_name", "system_sender")),
        Shown("folders", url("handoff:folders", SENDER), ("watched_pattern", "pickup_name")),
        Shown(
            "watched-folder",
            url("handoff:watched_edit", SENDER, _pk("watched")),
            ("watched_pattern",),
        ),
        Shown("outbox", url("outbox:list"), ("mail_subject",)),
        # The mail's text quotes names with their control characters made visible
        # (portal/core/text.py), so the IT system's name is not there verbatim.
        Shown("mail", url("outbox:detail", _pk("mail")), ("mail_subject",)),
        Shown("audit", url("audit:log"), ("transfer_name", "municipality")),
    ],
    # Vendor staff of the receiving vendor.
    "fjordsoft": [
        Shown(
            "dashboard",
            url("dashboard"),
            ("user_fjordsoft", "vendor_receiver", "system_receiver", "alert_message"),
        ),
        Shown("received", url("transfers:received"), ("received_name", "received_reason")),
        Shown("transfers", url("transfers:list"), ("transfer_name", *ROUTE_NAMES)),
        Shown(
            "declaration-draft",
            url("gdpr:declaration_edit", _pk("draft")),
            ("draft_purpose", "draft_volume", "system_receiver", "municipality"),
            screenshot=True,
        ),
        Shown(
            "integration",
            url("onboarding:detail", INTEGRATION),
            ("integration", "agreement_title", *PARTIES),
        ),
        Shown(
            "specification-version",
            url("specs:version", VERSION),
            ("spec_field_name", "spec_document", "spec_notes"),
        ),
        Shown("audit", url("audit:log"), ("transfer_name", "municipality")),
    ],
    # The municipal architect of Aarhus.
    "aarhus": [
        Shown("dashboard", url("dashboard"), ("user_aarhus", "municipality", "alert_message")),
        Shown(
            "review",
            url("review:overview"),
            (
                "municipality",
                "integration",
                "transfer_name",
                "received_name",
                "received_reason",
                *PARTIES,
            ),
            screenshot=True,
        ),
        Shown("municipality", url("onboarding:municipality"), ("integration", "municipality")),
        Shown("transfers", url("transfers:list"), ("transfer_name", *ROUTE_NAMES)),
        Shown("received", url("transfers:received"), ("received_name", "received_reason")),
        Shown("audit", url("audit:log"), ("transfer_name", "municipality")),
    ],
    # A KOMBIT operator.
    "kombit": [
        Shown("dashboard", url("dashboard"), ("user_kombit",)),
        Shown(
            "vendors",
            url("organisations:list", query={"kind": "vendor"}),
            ("vendor_sender", "vendor_receiver"),
        ),
        # KOMBIT sees a vendor's IT systems, not its users.
        Shown(
            "organisation", url("organisations:detail", VENDOR), ("vendor_sender", "system_sender")
        ),
        Shown("it-systems", url("itsystems:list"), PARTIES),
        Shown("infref-requests", url("gdpr:requests"), ("system_sender", "vendor_sender")),
        Shown(
            "infref-request",
            url("gdpr:request", _pk("request")),
            ("request_description", "system_sender"),
        ),
        Shown(
            "declaration",
            url("gdpr:declaration", DECLARATION),
            ("declaration_purpose", "declaration_dpa_title", "declaration_signatory"),
        ),
        Shown("matrix", url("onboarding:matrix"), ("integration",)),
        Shown(
            "integration",
            url("onboarding:detail", INTEGRATION),
            ("integration", "legal_basis", "task_comment", "agreement_title"),
        ),
        Shown("routes", url("transfers:routes"), ROUTE_NAMES),
        Shown("outbox", url("outbox:list"), ("mail_subject",), screenshot=True),
        Shown("mail", url("outbox:detail", _pk("mail")), ("mail_subject",)),
        Shown("audit", url("audit:log"), ("transfer_name", "municipality")),
    ],
    # A superuser: the portal's pages and the admin's change lists and forms.
    "admin": [
        Shown("dashboard", url("dashboard"), ("user_admin", "alert_message")),
        Shown(
            "review",
            url("review:overview", query={"municipality": "751"}),
            ("municipality", "transfer_name", "received_name"),
        ),
        Shown("transfer", url("transfers:detail", TRANSFER), ("transfer_name", "transfer_error")),
        Shown("admin", url("admin:index"), ()),
        Shown(
            "admin-organisations",
            url("admin:accounts_organisation_changelist", query={"kind__exact": "vendor"}),
            ("vendor_sender", "vendor_receiver"),
            screenshot=True,
        ),
        Shown(
            "admin-organisation",
            url("admin:accounts_organisation_change", VENDOR),
            ("vendor_sender",),
        ),
        Shown(
            "admin-it-systems",
            url("admin:itsystems_itsystem_changelist"),
            ("system_sender", "system_receiver"),
        ),
        Shown(
            "admin-integrations",
            url("admin:onboarding_integration_changelist"),
            ("integration", "system_sender", "system_receiver"),
        ),
        Shown(
            "admin-integration",
            url("admin:onboarding_integration_change", INTEGRATION),
            ("integration", "legal_basis"),
        ),
        Shown(
            "admin-transfer",
            url("admin:transfers_transfer_change", TRANSFER),
            ("transfer_name", "transfer_error"),
        ),
        Shown("admin-audit", url("admin:audit_auditevent_changelist"), ("audit_summary",)),
        Shown("admin-alerts", url("admin:alerts_alert_changelist"), ("alert_message",)),
        Shown("admin-outbox", url("admin:outbox_outgoingmail_changelist"), ("mail_subject",)),
        Shown("admin-api-tokens", url("admin:handoff_apitoken_changelist"), ("token_name",)),
        Shown(
            "admin-watched-folders",
            url("admin:handoff_watchedfolder_changelist"),
            ("watched_pattern",),
        ),
        Shown(
            "admin-documents",
            url("admin:specs_specificationdocument_changelist"),
            ("spec_document",),
        ),
        Shown(
            "admin-infref-request",
            url("admin:gdpr_infrefrequest_change", _pk("request")),
            ("request_description",),
        ),
    ],
}


# What the browser is asked on every page -----------------------------------------------------

_INSPECT = """
(expected) => {
  const markup = [...document.querySelectorAll('[data-xss]')].map(
    (element) => element.outerHTML.slice(0, 160));
  const handlers = [];
  const scriptUrls = [];
  for (const element of document.querySelectorAll('*')) {
    for (const attribute of element.attributes) {
      const name = attribute.name.toLowerCase();
      if (name.startsWith('on')) {
        handlers.push(`<${element.localName} ${name}="${attribute.value.slice(0, 80)}">`);
      }
      if (['href', 'src', 'action', 'formaction', 'xlink:href', 'data'].includes(name)) {
        let protocol = '';
        try { protocol = new URL(attribute.value, document.baseURI).protocol; } catch (e) {}
        if (protocol === 'javascript:') {
          scriptUrls.push(`<${element.localName} ${name}="${attribute.value.slice(0, 80)}">`);
        }
      }
    }
  }
  // Everything the page shows or holds as a value: text (the title's too), attributes and the
  // current values of form fields.
  const held = [document.documentElement.textContent];
  for (const element of document.querySelectorAll('*')) {
    for (const attribute of element.attributes) held.push(attribute.value);
    if (typeof element.value === 'string') held.push(element.value);
  }
  const all = held.join('\\n');
  return {
    markup,
    handlers,
    scriptUrls,
    xss: window.__xss === undefined ? null : String(window.__xss),
    missing: expected.filter(([key, text]) => !all.includes(text)).map(([key]) => key),
    templateLiteral: all.includes('{{7*7}}') && all.includes('${7*7}'),
  };
}
"""


class HostileVisit(Visit):
    """One role's browser, checking every page it opens (the login pages included)."""

    def __init__(self, context, base: str, world: World) -> None:
        super().__init__(context, base)
        self.world = world
        self.expected: tuple[str, ...] = ()
        self.visited = 0
        self.page.on("dialog", self._dialog)

    def _dialog(self, dialog) -> None:
        self.problems.append(f"{self.page.url}: a dialog ({dialog.type}) opened: {dialog.message}")
        dialog.dismiss()

    def collect(self, name: str) -> None:
        page: Page = self.page
        page.wait_for_load_state("load")
        found = page.evaluate(_INSPECT, [[key, self.world.texts[key]] for key in self.expected])
        where = f"{name} ({page.url.removeprefix(self.base)})"
        for element in found["markup"]:
            self.problems.append(f"{where}: a payload became markup: {element}")
        for element in found["handlers"]:
            self.problems.append(f"{where}: an inline event handler: {element}")
        for element in found["scriptUrls"]:
            self.problems.append(f"{where}: a javascript: URL: {element}")
        if found["xss"] is not None:
            self.problems.append(f"{where}: a payload ran: window.__xss = {found['xss']}")
        for key in found["missing"]:
            self.problems.append(
                f"{where}: does not show the {FIELDS[key]} ({key}) verbatim: "
                f"{self.world.texts[key]!r}"
            )
        if (
            any(TEMPLATE_PAYLOAD in self.world.texts[key] for key in self.expected)
            and not found["templateLiteral"]
        ):
            self.problems.append(f"{where}: {{{{7*7}}}} or ${{7*7}} is not shown as written")
        self.visited += 1

    def show(self, role: str, shown: Shown) -> None:
        path = shown.path(self.world)
        # The portal's header names the user on every page (the admin's shows the first name).
        own_name = () if path.startswith("/admin/") else (f"user_{role}",)
        self.expected = (*shown.shows, *own_name)
        response = self.page.goto(urljoin(self.base, path))
        status = response.status if response is not None else None
        if status != 200:
            self.problems.append(f"{role} {shown.name} ({path}): answered {status}, not 200")
            return
        self.collect(f"{role} {shown.name}")
        if shown.screenshot:
            screenshot(self.page, f"xss-{role}-{shown.name}")


@pytest.fixture
def no_pdf(monkeypatch):
    """WeasyPrint's seconds buy nothing here: the declaration's mail only needs an attachment."""
    monkeypatch.setattr(gdpr.mail, "render_declaration_pdf", lambda declaration: PDF)


@pytest.fixture(autouse=True)
def two_factor_on(settings):
    settings.TWO_FACTOR_REQUIRED = True


def test_every_seeded_field_is_expected_on_some_page():
    """Without a browser: the walk below would not notice a field that no page is asked for."""
    expected = {key for pages in PAGES.values() for shown in pages for key in shown.shows}
    unknown = expected - set(FIELDS)
    assert not unknown, f"pages expect fields that are not seeded: {sorted(unknown)}"
    unseen = {key: FIELDS[key] for key in set(FIELDS) - expected}
    assert not unseen, f"seeded but expected on no page: {unseen}"
    roles = {role for role, pages in PAGES.items() if pages}
    assert roles == {"nordlys", "fjordsoft", "aarhus", "kombit", "admin"}, roles


@pytest.mark.parametrize("role", list(PAGES))
def test_stored_payloads_are_text_for_every_role(
    live_server,
    chromium_browser,
    no_pdf,
    role,
):
    world = build_world()
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    try:
        visit = HostileVisit(context, live_server.url, world)
        visit.log_in(role)  # the login pages and the dashboard, checked with nothing expected
        for shown in PAGES[role]:
            visit.show(role, shown)
    finally:
        context.close()
    assert visit.visited >= len(PAGES[role]), visit.problems
    assert not visit.problems, f"{len(visit.problems)} problems:\n" + "\n".join(visit.problems)
