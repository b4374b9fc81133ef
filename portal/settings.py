"""Settings for the FDD portal, read from the environment (see README, "Configuration")."""

import base64
import hashlib
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from portal.core.logs import FORMATS, logging_config
from portal.env import (
    database_from_url,
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_path,
    env_str,
    sqlite_database,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = env_path("PORTAL_DATA_DIR", BASE_DIR / "data")

DEBUG = env_bool("DEBUG", False)

_DEV_SECRET_KEY = "insecure-development-key-only-used-with-DEBUG-on"  # noqa: S105
SECRET_KEY = env_str("SECRET_KEY", _DEV_SECRET_KEY if DEBUG else None)
if SECRET_KEY is None:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.forms",
    "django_htmx",
    "csp",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "portal.accounts",
    "portal.sso",
    "portal.itsystems",
    "portal.outbox",
    "portal.onboarding",
    "portal.audit",
    "portal.alerts",
    "portal.specs",
    "portal.review",
    "portal.core",
    # Before django_q: transfers' `qcluster` checks the SFTP keys before the workers start.
    "transfers",
    "django_q",
    "gdpr",
    # The REST API, watched folders and commands that hand files over without a person.
    "ninja",
    "handoff",
]

MIDDLEWARE = [
    "portal.core.request_id.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "portal.core.middleware.ChosenLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "portal.core.middleware.IdleSessionMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "portal.core.headers.PermissionsPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "portal.accounts.two_factor.TwoFactorMiddleware",
    # Last, as django-axes asks: it turns a lockout flagged during the login into its response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.core.context_processors.navigation",
            ],
        },
    },
]

# Widgets take the design system's classes from templates/django/forms/widgets.
FORM_RENDERER = "django.forms.renderers.TemplatesSetting"

_database_url = env_str("DATABASE_URL")
DATABASES = {
    "default": database_from_url(_database_url)
    if _database_url
    else sqlite_database(DATA_DIR / "portal.sqlite3")
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-q2 monitoring and the health check read cluster heartbeats from the cache, so it must be
# shared between the web server and the workers: Redis when configured, else files in DATA_DIR.
_redis_url = env_str("REDIS_URL")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _redis_url}
    if _redis_url
    else {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": DATA_DIR / "cache",
    }
}

Q_CLUSTER = {
    "name": "fdd-portal",
    "orm": "default",
    "workers": env_int("Q_WORKERS", 2, minimum=1),
    # A task that outlives `timeout` is killed; it is offered again only after `retry`, which
    # must be longer so a slow task is never running twice.
    "timeout": env_int("Q_TIMEOUT", 3600, minimum=1),
    "retry": env_int("Q_RETRY", 3900, minimum=2),
    "max_attempts": env_int("Q_MAX_ATTEMPTS", 5, minimum=1),
    "ack_failures": False,
    "catch_up": False,
    "poll": 0.5,
    # The ORM queue, rung when a task is queued on this host instead of waiting out the poll.
    "broker_class": "portal.core.queue_broker.WakingORM",
    # Every successful task is kept (0), and transfers.task_history prunes them by age: with a
    # limit, django-q2 reads every kept success on each task that ends, so a worker slowed as
    # the history filled (a thousand rows read per task).
    "save_limit": 0,
    "label": "Task queue",
}
if Q_CLUSTER["retry"] <= Q_CLUSTER["timeout"]:
    raise ImproperlyConfigured("Q_RETRY must be longer than Q_TIMEOUT.")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
# Seconds a link to set a forgotten password stays valid (portal/accounts/self_service.py); it
# works once, and a login or a password change spends it too.
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 3600, minimum=60)

# django-axes counts failed logins per user name and address (not per address alone, so one
# office behind a shared address cannot lock out all its colleagues) and refuses that pair for
# the cool-off, even with the right password.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "portal.accounts.lockout.lockout_response"
AXES_CLIENT_IP_CALLABLE = "portal.accounts.lockout.client_ip"
# Read by the client address above: behind the TLS proxy, the address the proxy saw.
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", False)

# KOMBIT operators and superusers enter a code from an authenticator app (TOTP) at each login;
# see portal/accounts/two_factor.py. Not read from the environment: no deployment turns it off.
TWO_FACTOR_REQUIRED = True
OTP_TOTP_ISSUER = "FDD-portal"
# The admin never shows a device's secret, nor its QR code.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

LANGUAGE_CODE = "da"
LANGUAGES = [("da", _("Danish")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
# Day-month-year and a 24-hour clock in English too (portal/formats/).
FORMAT_MODULE_PATH = "portal.formats"
TIME_ZONE = "Europe/Copenhagen"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env_path("STATIC_ROOT", BASE_DIR / "staticfiles")
# The design system and htmx come from npm (`npm ci`), never copied into the repository.
STATICFILES_DIRS = [
    ("dkfds", BASE_DIR / "node_modules" / "dkfds" / "dist"),
    ("htmx", BASE_DIR / "node_modules" / "htmx.org" / "dist"),
    BASE_DIR / "portal" / "static",
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# In development WhiteNoise serves straight from the finders, so no collectstatic is needed.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_ROOT = DATA_DIR / "media"

# The embedded default writes each message as an .eml file to the outbox folder, never sending.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "portal.outbox.backends.OutboxFolderBackend")
EMAIL_FILE_PATH = DATA_DIR / "outbox"
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
# TLS from the first byte (SMTPS, usually port 465) rather than STARTTLS; not both.
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL exclude each other; set one.")
# Seconds a connection to the SMTP server may hang before the send fails (and is tried again):
# without it, a server that stops answering holds a worker forever.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "fdd-portal@localhost")
# Where InfRef requests and GDPR declarations go (seed, chapter 2).
# Links in mails point here.
PORTAL_BASE_URL = env_str("PORTAL_BASE_URL", "http://127.0.0.1:8000")
KOMBIT_MAIL_ADDRESS = env_str("KOMBIT_MAIL_ADDRESS", "kdi@kombit.dk")
# Days a vendor has to renew a GDPR declaration after a backward-compatible (minor) version of
# the data specification; sends go on until then.
DECLARATION_RENEWAL_DAYS = env_int("DECLARATION_RENEWAL_DAYS", 30, minimum=1)
# Days the link in an invitation to a colleague stays valid (it is used once).
INVITATION_DAYS = env_int("INVITATION_DAYS", 7, minimum=1)
OUTBOX_MAX_ATTEMPTS = env_int("OUTBOX_MAX_ATTEMPTS", 5, minimum=1)
# A mail still "sending" this long after its worker claimed it has lost that worker.
OUTBOX_ABANDONED_AFTER_SECONDS = env_int("OUTBOX_ABANDONED_AFTER_SECONDS", 600, minimum=60)

SESSION_COOKIE_SECURE = not DEBUG
# A session ends after this long without a request (portal.core.middleware.IdleSessionMiddleware
# moves the end forward while the user works), so a browser left open does not stay logged in.
SESSION_IDLE_MINUTES = env_int("SESSION_IDLE_MINUTES", 60, minimum=1)
SESSION_COOKIE_AGE = SESSION_IDLE_MINUTES * 60
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
# No script reads the CSRF cookie: forms carry the token, and htmx only sends GETs.
CSRF_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Scripts, styles, fonts and images come from the portal's own static files only: no inline
# script or style attribute runs, so injected markup cannot either. base.html tells htmx not to
# inject its indicator styles; the inline SVG charts and QR code use presentation attributes.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# Browser features the portal never uses, switched off for every page (portal.core.headers).
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # A load balancer probes a node over plain HTTP: a redirect to HTTPS would read as down.
    SECURE_REDIRECT_EXEMPT = [r"^(livez|readyz|healthz)$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    if BEHIND_TLS_PROXY:
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Private SSH keys are encrypted with this Fernet key. Development derives one from SECRET_KEY;
# production must set its own, kept apart from the database backups.
SFTP_KEY_ENCRYPTION_KEY = env_str(
    "SFTP_KEY_ENCRYPTION_KEY",
    base64.urlsafe_b64encode(hashlib.sha256(SECRET_KEY.encode()).digest()).decode()
    if DEBUG
    else None,
)
if SFTP_KEY_ENCRYPTION_KEY is None:
    # Else the web server would start and the first key made or used would fail.
    raise ImproperlyConfigured(
        "SFTP_KEY_ENCRYPTION_KEY must be set when DEBUG is off: one or more Fernet keys, "
        "comma-separated. Make one with the portal's Python: python -c "
        "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
    )
TRANSFER_DATA_DIR = DATA_DIR / "transfers"
TRANSFER_MAX_ATTEMPTS = env_int("TRANSFER_MAX_ATTEMPTS", 5, minimum=1)
# A send that shows no progress for this long has lost its worker and is queued again.
TRANSFER_STALE_SECONDS = env_int("TRANSFER_STALE_SECONDS", 120, minimum=10)
# A send that failed is tried again after this long, each further time twice as long (at most
# TRANSFER_RETRY_MAX_SECONDS), until the platform has refused it TRANSFER_MAX_ATTEMPTS times.
TRANSFER_RETRY_SECONDS = env_int("TRANSFER_RETRY_SECONDS", 10, minimum=1)
TRANSFER_RETRY_MAX_SECONDS = env_int("TRANSFER_RETRY_MAX_SECONDS", 600, minimum=1)
# A send that could not reach the platform (refused, reset, timed out, a transient error receipt)
# waits for it this long at most, trying again with the backoff above; such attempts do not
# count toward TRANSFER_MAX_ATTEMPTS. A maintenance window lasts hours.
TRANSFER_OUTAGE_WAIT_SECONDS = env_int("TRANSFER_OUTAGE_WAIT_SECONDS", 24 * 3600, minimum=0)
# A sent file with no receipt after this long is shown as "no receipt" and alerted once; its
# owner may send it again.
TRANSFER_RECEIPT_TIMEOUT_SECONDS = env_int("TRANSFER_RECEIPT_TIMEOUT_SECONDS", 900, minimum=1)
# How long a worker waits for the SFTP server (to connect, to answer a request) before it gives
# the connection up; a stalled connection costs a worker no more than this.
TRANSFER_TIMEOUT_SECONDS = env_int("TRANSFER_TIMEOUT_SECONDS", 30, minimum=1)
if TRANSFER_STALE_SECONDS <= TRANSFER_TIMEOUT_SECONDS:
    # Else a worker still waiting on a slow server would look dead, and its send (or the file
    # its fetch is staging) would be handed on while it still writes.
    raise ImproperlyConfigured(
        "TRANSFER_STALE_SECONDS must be longer than TRANSFER_TIMEOUT_SECONDS."
    )
# Data minimisation: days a sent file's local copy, and a received file, are kept once the
# transfer is final or the file is fetched. The records, checksums and audit trail stay.
TRANSFER_PAYLOAD_RETENTION_DAYS = env_int("TRANSFER_PAYLOAD_RETENTION_DAYS", 30, minimum=1)
RECEIVED_FILE_RETENTION_DAYS = env_int("RECEIVED_FILE_RETENTION_DAYS", 30, minimum=1)
# Days the task queue's record of successful tasks is kept (the admin's "Successful tasks");
# failed tasks stay until someone deletes them.
TASK_HISTORY_DAYS = env_int("TASK_HISTORY_DAYS", 14, minimum=1)
SIMULATOR_HOST = env_str("SIMULATOR_HOST", "127.0.0.1")
SIMULATOR_PORT = env_int("SIMULATOR_PORT", 2222, minimum=1)
SIMULATOR_DATA_DIR = env_path("SIMULATOR_DATA_DIR", DATA_DIR / "serviceplatform")
# The only SFTP servers the portal connects to (a host key probe, a send, a fetch): entries
# HOST[:PORT] where HOST is a name, an address or a network (10.0.0.0/8, [fd00::/8]) and PORT a
# number or * (22 when left out). Anything else is refused before a connection is tried, so an
# SFTP account cannot make the portal knock on other hosts and ports of its network.
SFTP_ALLOWED_HOSTS = env_list(
    "SFTP_ALLOWED_HOSTS",
    [
        "sftp.serviceplatformen.dk:22",
        "sftpexttest.serviceplatformen.dk:22",
        f"{SIMULATOR_HOST}:{SIMULATOR_PORT}",
    ],
)
# Uploads above this size go to a file on disk as they arrive; a 2 GB send never sits in memory.
# The API writes its uploads straight into TRANSFER_DATA_DIR (handoff.uploads) whatever the size.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# Drop folders (per route) and delivery folders (per receiving IT system) live under this root;
# the UI takes only paths inside it, so no one picks a folder elsewhere on the portal's host.
HANDOFF_FOLDER_ROOT = env_path("HANDOFF_FOLDER_ROOT", DATA_DIR / "handoff")
# How long a file in a drop folder must stay unchanged before it is taken (new folders' default).
HANDOFF_SETTLE_SECONDS = env_int("HANDOFF_SETTLE_SECONDS", 10, minimum=0)
# Pause between rounds of `manage.py watch_folders` when it runs without --once.
HANDOFF_WATCH_SECONDS = env_int("HANDOFF_WATCH_SECONDS", 5, minimum=1)
# Minutes between the scheduled rounds of the folders (portal.core.schedules); a minute is the
# least, as django-q2 looks at its schedules every 30 seconds.
HANDOFF_WATCH_MINUTES = env_int("HANDOFF_WATCH_MINUTES", 1, minimum=1)
# The API's OpenAPI document and its browsable page need a logged-in user or an API token
# unless this opens them to anyone.
API_DOCS_PUBLIC = env_bool("API_DOCS_PUBLIC", False)

# Single sign-on through the organisations' SAML 2.0 identity provider (portal/sso/; README,
# "Single sign-on"). Off unless SSO_IDP_METADATA names the IdP's metadata: a file, or an https
# URL read again every hour.
SSO_IDP_METADATA = env_str("SSO_IDP_METADATA", "")
# The portal's entity id at the IdP; by custom the address of its metadata.
SSO_SP_ENTITY_ID = env_str("SSO_SP_ENTITY_ID", f"{PORTAL_BASE_URL.rstrip('/')}/sso/metadata/")
# The portal's own key and certificate (PEM): they sign its AuthnRequests and decrypt
# assertions; the certificate is in the portal's metadata.
SSO_SP_KEY_FILE = env_path("SSO_SP_KEY_FILE", None)
SSO_SP_CERT_FILE = env_path("SSO_SP_CERT_FILE", None)
# The assertion's attribute names (Name="...") for the CVR number, e-mail address and full name:
# OIOSAML 3's (MitID Erhverv) unless set. The roles attribute carries plain values; none unless
# set, and then no one is made an organisation administrator by the IdP.
SSO_ATTRIBUTE_CVR = env_str(
    "SSO_ATTRIBUTE_CVR", "https://data.gov.dk/model/core/eid/professional/cvr"
)
SSO_ATTRIBUTE_EMAIL = env_str("SSO_ATTRIBUTE_EMAIL", "https://data.gov.dk/model/core/eid/email")
SSO_ATTRIBUTE_NAME = env_str("SSO_ATTRIBUTE_NAME", "https://data.gov.dk/model/core/eid/fullName")
SSO_ATTRIBUTE_ROLES = env_str("SSO_ATTRIBUTE_ROLES", "")
if SSO_IDP_METADATA:
    from portal.sso.config import metadata_url

    try:
        _sso_metadata_is_url = metadata_url(SSO_IDP_METADATA) is not None
    except ValueError as error:
        raise ImproperlyConfigured(str(error)) from None
    if not _sso_metadata_is_url:
        SSO_IDP_METADATA = str(Path(SSO_IDP_METADATA).expanduser().resolve())
        if not Path(SSO_IDP_METADATA).is_file():
            raise ImproperlyConfigured(f"SSO_IDP_METADATA={SSO_IDP_METADATA}: no such file.")
    for _name, _file in [
        ("SSO_SP_KEY_FILE", SSO_SP_KEY_FILE),
        ("SSO_SP_CERT_FILE", SSO_SP_CERT_FILE),
    ]:
        if _file is None or not _file.is_file():
            raise ImproperlyConfigured(
                f"{_name} must name a PEM file when SSO_IDP_METADATA is set."
            )

# Every line with its time, level and logger, and the request, user and transfer it was written
# for; LOG_FORMAT=json makes each line a JSON object (portal/core/logs.py).
LOG_FORMAT = env_choice("LOG_FORMAT", "text", FORMATS)
LOGGING = logging_config(LOG_FORMAT, env_str("LOG_LEVEL", "INFO"))
