"""Control and direction characters in typed text: refused on a single line, quoted in mails.

The probe: an IT system named "CRLF test\\r\\nBcc: attacker@example.invalid\\r\\nX-Injected: 1"
made the InfRef mail to KOMBIT start its body with those two lines.
"""

import importlib
import inspect
import uuid
from pathlib import Path

import pytest
from django import forms
from django.apps import apps
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, RegexValidator
from django.db import models
from django.urls import reverse

from gdpr.infref import validate_infref_name
from handoff.folders import validate_folder_path
from portal.accounts.cvr import validate_cvr
from portal.core.text import file_label, quoted, quoted_block, single_line
from portal.itsystems.models import ItSystem
from portal.outbox.models import OutgoingMail

ROOT = Path(__file__).resolve().parent.parent
PROJECT_APPS = ("portal", "gdpr", "transfers", "handoff")
FORGED = "CRLF test\r\nBcc: attacker@example.invalid\r\nX-Injected: 1"
REFUSED = [
    "\r",
    "\n",
    "\x00",
    "\t",
    "\x1b",
    "\x7f",
    "\x85",
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
]

# Single-line model fields people never type: the portal fills them from what it computed,
# received or checked against a stricter format of its own.
SET_BY_THE_PORTAL = {
    ("OutgoingMail", "subject"),  # the first line of a rendered template; queue_mail checks it
    ("OutgoingMail", "message_id"),
    ("MailAttachment", "filename"),
    ("MailAttachment", "content_type"),
    ("MailAttachment", "sha256"),
    ("ProcessingAgreement", "document_sha256"),
    ("AuditEvent", "object_type"),
    ("AuditEvent", "object_id"),
    ("AuditEvent", "summary"),
    ("Alert", "dedupe_key"),
    ("SpecificationDocument", "original_name"),  # file_label()
    ("SpecificationDocument", "sha256"),
    ("SftpAccount", "key_fingerprint"),
    ("SftpAccount", "host_key_fingerprint"),
    ("SftpAccount", "offered_host_key_fingerprint"),
    ("Transfer", "original_name"),  # file_label()
    ("Transfer", "payload"),
    ("Transfer", "sha256"),
    ("Transfer", "remote_name"),
    ("ReceivedFile", "remote_name"),  # checked by the protocol before it is stored
    ("ReceivedFile", "stored_path"),
    ("ReceivedFile", "sha256"),
    ("ReceivedFile", "infref_name"),
    ("ReceivedFile", "sender_username"),
    ("GdprDeclaration", "content_sha256"),
    ("DeclarationDownload", "sha256"),
    ("ApiToken", "digest"),
    ("ApiToken", "prefix"),
    ("ApiSend", "key"),  # visible ASCII only, checked by the API
    ("ApiSend", "original_name"),  # file_label() of the upload, as its transfer's
    ("ApiSend", "sha256"),
    ("FolderPickup", "name"),  # a file name on the portal's own host
    ("FolderPickup", "claimed_as"),
    ("FolderDelivery", "path"),
    # From the identity provider's signed assertion and the portal's own redirect check.
    ("SsoIdentity", "issuer"),
    ("SsoIdentity", "name_id"),
    ("SsoRequest", "next_url"),
}
# Form fields whose value is not text to show: secrets and codes.
NOT_TEXT = {
    ("ImportKeyForm", "passphrase"),  # a secret, never shown, may hold anything
    ("CodeForm", "token"),  # parsed to six digits or a backup code's alphabet
    ("LoginForm", "username"),  # only compared with the user names there are, never stored
}
# Form fields that parse their text into something else, refusing what does not parse.
PARSED = (forms.UUIDField, forms.EmailField, forms.URLField, forms.SlugField, forms.JSONField)
# Form fields checked in the form's own clean method.
CHECKED_BY_THE_FORM = {
    ("OutgoingMailAddForm", "subject"),  # validate_subject
}


def _stricter(validators) -> bool:
    """A validator that already allows only a narrow alphabet (CVR, InfRef, names on disk)."""
    return any(
        isinstance(v, RegexValidator | EmailValidator)
        or v in (validate_cvr, validate_infref_name, validate_folder_path)
        for v in validators
    )


@pytest.mark.parametrize("character", REFUSED, ids=lambda c: f"U+{ord(c):04X}")
def test_a_single_line_refuses_control_and_direction_characters(character):
    with pytest.raises(ValidationError) as refused:
        single_line(f"Alfa{character}Sag")
    assert refused.value.code == "control_characters"
    assert f"U+{ord(character):04X}" in refused.value.messages[0]


@pytest.mark.parametrize("text", ["Ældrepleje – Århus", "data(1)+v2.csv", "Ünïcødé 🚀", "a/b\\c"])
def test_a_single_line_takes_ordinary_text(text):
    single_line(text)


def test_every_single_line_model_field_people_type_refuses_them():
    missing = []
    for model in apps.get_models():
        if model.__module__.split(".")[0] not in PROJECT_APPS:
            continue
        for field in model._meta.concrete_fields:
            if not isinstance(field, models.CharField) or field.choices or not field.editable:
                continue
            key = (model.__name__, field.name)
            if key in SET_BY_THE_PORTAL or _stricter(field.validators):
                continue
            if single_line not in field.validators:
                missing.append(key)
    assert missing == [], "add validators=[single_line], or say why not in SET_BY_THE_PORTAL"


def _project_forms():
    for path in ROOT.glob("*/**/*.py"):
        relative = path.relative_to(ROOT)
        if relative.parts[0] not in PROJECT_APPS or "migrations" in relative.parts:
            continue
        source = path.read_text()
        if "forms.Form" not in source and "forms.ModelForm" not in source:
            continue
        module = importlib.import_module(".".join(relative.with_suffix("").parts))
        for _name, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, forms.BaseForm) and cls.__module__ == module.__name__:
                yield cls


def test_every_single_line_form_field_refuses_them():
    found, missing = 0, []
    for form in _project_forms():
        for name, field in form.base_fields.items():
            if (
                not isinstance(field, forms.CharField)
                or isinstance(field, PARSED)
                or isinstance(field.widget, forms.Textarea | forms.PasswordInput)
            ):
                continue
            found += 1
            model = getattr(getattr(form, "_meta", None), "model", None)
            model_field = None
            if model is not None:
                model_field = next((f for f in model._meta.fields if f.name == name), None)
            validators = [*field.validators, *(model_field.validators if model_field else [])]
            key = (form.__name__, name)
            if key in NOT_TEXT | CHECKED_BY_THE_FORM or _stricter(validators):
                continue
            if single_line in validators:
                continue
            missing.append(key)
    assert found > 10  # the walk found the forms
    assert missing == []


def test_a_line_break_in_a_name_is_refused_on_the_form_and_nothing_is_saved(
    client_for, staff_a, vendor_a
):
    client = client_for(staff_a)
    client.cookies["django_language"] = "en"
    data = {"name": FORGED, "uuid": str(uuid.uuid4()), "vendor": vendor_a.pk, "is_sender": "on"}
    response = client.post(reverse("itsystems:create"), data)
    assert response.status_code == 200
    assert "takes a single line of text" in response.text
    assert "U+000A, U+000D" in response.text
    assert not ItSystem.objects.exists()


def test_the_message_is_in_danish_by_default(client_for, staff_a, vendor_a):
    data = {"name": "Alfa\u202eSag", "uuid": str(uuid.uuid4()), "vendor": vendor_a.pk}
    response = client_for(staff_a).post(reverse("itsystems:create"), data | {"is_sender": "on"})
    assert "én linje tekst" in response.text and "U+202E" in response.text


def test_a_name_that_holds_line_breaks_stays_on_its_line_in_the_mail_to_kombit(
    client_for, staff_a, vendor_a
):
    # Written before names were checked, or straight into the database.
    it_system = ItSystem.objects.create(
        uuid=uuid.uuid4(), name=FORGED, vendor=vendor_a, is_sender=True
    )
    description = "Borgerdata.\nBcc: someone@example.invalid\n\nTil KOMBIT"
    client_for(staff_a).post(
        reverse("gdpr:request_create"), {"it_system": it_system.pk, "description": description}
    )
    mail = OutgoingMail.objects.get()
    assert "\n" not in mail.subject and "\r" not in mail.subject
    assert mail.subject.endswith("»CRLF test␍␊Bcc: attacker@example.invalid␍␊X-Injected: 1«")
    lines = mail.body.splitlines()
    # Only the greeting the template writes itself starts a line; the typed text is quoted.
    starts = [line for line in lines if line.startswith(("Bcc:", "X-Injected:", "Til KOMBIT"))]
    assert starts == ["Til KOMBIT"]
    assert "> Bcc: someone@example.invalid" in lines
    assert "  IT-system: »CRLF test␍␊Bcc: attacker@example.invalid␍␊X-Injected: 1«" in lines


def test_quoting_shows_every_hidden_character():
    assert quoted("a\u202eb\x00c\td") == "»a<U+202E>b␀c␉d«"
    assert quoted_block("one\r\ntwo\n\nthree") == "> one\n> two\n>\n> three"


def test_an_uploaded_file_name_is_cleaned_not_refused():
    assert file_label("C:\\Users\\x\\Udtræk\u202e.csv") == "Udtræk.csv"
    assert file_label("../../etc/\r\n") == "file"
