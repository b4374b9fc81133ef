"""The portal's settings for the test suite: the production module with test-only secrets."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-never-used-outside-the-suite-0123456789")
os.environ.setdefault("SFTP_KEY_ENCRYPTION_KEY", "eJ9c5m0TTKQ3YgNG4Cv0r1z6kx3Q7cV2yX8hLw1uE6A=")
# Each test process (and each xdist worker) gets its own data folder: files, outbox, cache.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
os.environ["PORTAL_DATA_DIR"] = tempfile.mkdtemp(prefix=f"fdd-portal-test-{_worker}-")

from portal.settings import *  # noqa: E402, F403
from portal.settings import DATA_DIR, DATABASES, STORAGES  # noqa: E402

# Requests in the suite are plain HTTP; production's HTTPS redirect is checked by check --deploy.
SECURE_SSL_REDIRECT = False
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# A file, not memory, so worker processes started by a test see the same test database.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
# The rest of the suite logs operators and superusers in with a password alone (force_login,
# the test client's login(), which also bypasses the request django-axes needs): two-step login
# and login throttling are switched on again by the tests that check them
# (tests/test_two_factor.py, tests/test_web_security.py, tests/test_isolation_matrix.py).
TWO_FACTOR_REQUIRED = False
AXES_ENABLED = False
# The published names, and the simulators and sshd the suite starts on free loopback ports;
# tests/test_sftp_endpoints.py checks the default list and the refusals.
SFTP_ALLOWED_HOSTS = [
    "sftp.serviceplatformen.dk:22",
    "sftpexttest.serviceplatformen.dk:22",
    "127.0.0.1:*",
    "localhost:*",
    "[::1]:*",
]
