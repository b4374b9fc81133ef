"""The migrations describe the models as they are: a change to a field without its migration
would pass every test on the test database and fail on a real one."""

import io

from django.core.management import call_command


def test_no_model_change_is_missing_its_migration(db):
    out = io.StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit as missing:
        raise AssertionError(f"a migration is missing:\n{out.getvalue()}") from missing
