"""Danish by default, English selectable, and complete catalogues for both."""

import shutil
import subprocess
import sys
from pathlib import Path

import polib
import pytest
from django.urls import reverse

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = ["da", "en"]


def test_pages_are_danish_even_for_an_english_browser(client_for, staff_a):
    page = client_for(staff_a).get(reverse("dashboard"), HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.9")
    assert page["Content-Language"] == "da"
    assert '<html lang="da">' in page.content.decode()
    assert "<h1>Overblik</h1>" in page.content.decode()


def test_english_can_be_chosen_and_danish_chosen_back(client_for, staff_a):
    client = client_for(staff_a)
    response = client.post(
        reverse("set_language"), {"language": "en", "next": reverse("dashboard")}
    )
    assert response.status_code == 302
    page = client.get(reverse("dashboard")).content.decode()
    assert '<html lang="en">' in page
    assert "<h1>Overview</h1>" in page
    client.post(reverse("set_language"), {"language": "da", "next": "/"})
    assert "<h1>Overblik</h1>" in client.get(reverse("dashboard")).content.decode()


def test_an_unknown_language_choice_falls_back_to_danish(client_for, staff_a):
    client = client_for(staff_a)
    client.cookies["django_language"] = "xx"
    assert "<h1>Overblik</h1>" in client.get(reverse("dashboard")).content.decode()


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_committed_catalogue_is_complete(language):
    catalogue = polib.pofile(str(ROOT / "locale" / language / "LC_MESSAGES" / "django.po"))
    assert catalogue.untranslated_entries() == []
    assert catalogue.fuzzy_entries() == []
    assert all(all(entry.msgstr_plural.values()) for entry in catalogue if entry.msgid_plural)


@pytest.mark.system
def test_makemessages_finds_no_string_missing_from_the_catalogues(tmp_path):
    """Every translatable string in the code is in the committed catalogues, none is left over."""
    copy = tmp_path / "project"
    shutil.copytree(
        ROOT,
        copy,
        ignore=shutil.ignore_patterns(
            ".venv", "node_modules", ".git", "data", "*.mo", "__pycache__", "tests"
        ),
    )
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "makemessages",
            *[f"-l{code}" for code in LANGUAGES],
            "--no-obsolete",
            "--no-location",
        ],
        cwd=copy,
        env={"PATH": "/usr/bin:/bin", "DEBUG": "true", "PYTHONPATH": str(copy)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for language in LANGUAGES:
        fresh = polib.pofile(str(copy / "locale" / language / "LC_MESSAGES" / "django.po"))
        committed = polib.pofile(str(ROOT / "locale" / language / "LC_MESSAGES" / "django.po"))
        assert {e.msgid for e in fresh} == {e.msgid for e in committed}
