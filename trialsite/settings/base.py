"""Settings shared by every environment. Values come from the environment (12-factor)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
import pghistory

BASE_DIR = Path(__file__).resolve().parent.parent.parent
LOCAL_DIR = Path(os.environ.get("TRIALSITE_LOCAL_DIR", BASE_DIR / ".local"))


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def env_required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"The environment variable {name} is required.")
    return value


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


SOFTWARE_VERSION = "0.1.0"

INSTALLED_APPS = [
    "trialsite.admin_apps.TrialsiteAdminConfig",  # django.contrib.admin with trialsite's site (2FA, scoping)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "pgtrigger",
    "pghistory",
    "pghistory.admin",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "trialsite",
    "participants",
    "surveys",
    "analytics",
]

MIDDLEWARE = [
    # prod: /health answers container health checks by address, before host validation (health only)
    "trialsite.middleware.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "trialsite.middleware.RequestIdMiddleware",
    "trialsite.middleware.NulGuardMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "trialsite.middleware.SessionExpiryMiddleware",
    "trialsite.middleware.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "trialsite.urls"
WSGI_APPLICATION = "trialsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "trialsite" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def database_config(url: str | None = None) -> dict:
    url = url or os.environ.get("DATABASE_URL")
    if not url:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            "DATABASE_URL is not set. Use `make run` / `make test` (they start an embedded PostgreSQL) "
            "or point DATABASE_URL at a PostgreSQL server."
        )
    config = dj_database_url.parse(url, conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")))
    config["ENGINE"] = "trialsite.db_backend"  # Django's PostgreSQL backend, cheaper health checks
    config["CONN_HEALTH_CHECKS"] = True
    # Behind PgBouncer in transaction-pooling mode (DB_TRANSACTION_POOLING=1): a server-side cursor outlives the
    # statement's transaction on one server connection, so Django must not use them (README, Operations).
    config["DISABLE_SERVER_SIDE_CURSORS"] = os.environ.get("DB_TRANSACTION_POOLING") == "1"
    # Each concurrent test run (developers, helpers, CI) may pick its own test database name.
    config["TEST"] = {"NAME": os.environ.get("TEST_DB_NAME") or None}
    return config


DATABASES = {"default": database_config()}
# A streaming replica for bulk reads (exports, analytics figures): see trialsite/db.py. Writes never go there.
if os.environ.get("DATABASE_REPLICA_URL"):
    DATABASES["replica"] = {
        **database_config(os.environ["DATABASE_REPLICA_URL"]),
        "TEST": {"MIRROR": "default"},  # tests read the test database through the alias
    }
DATABASE_ROUTERS = ["trialsite.db.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", LOCAL_DIR / "static"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", LOCAL_DIR / "media"))
EXPORT_ROOT = Path(os.environ.get("EXPORT_ROOT", LOCAL_DIR / "exports"))
# Connections that copy an export's tables in parallel on one shared snapshot (1 = serial, one connection).
EXPORT_COPY_WORKERS = int(os.environ.get("EXPORT_COPY_WORKERS", "3"))

# Sessions: idle expiry 30 minutes (refreshed on every request), absolute expiry 12 hours
# (trialsite.middleware.SessionExpiryMiddleware).
SESSION_COOKIE_AGE = 30 * 60
SESSION_SAVE_EVERY_REQUEST = True
SESSION_ABSOLUTE_MAX_AGE = 12 * 60 * 60
SESSION_COOKIE_HTTPONLY = True

# django-axes: lock out a username after repeated failures (admin and staff token endpoint).
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=30)
# A username is locked after repeated failures from anywhere (the username+address pair keeps axes' check happy).
AXES_LOCKOUT_PARAMETERS = ["username", ["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True

# Staff must use TOTP in production (trialsite.middleware / admin site); optional in development.
TRIALSITE_REQUIRE_2FA = env_bool("TRIALSITE_REQUIRE_2FA", False)

# Field encryption (participants' contact details). Comma-separated Fernet keys: the first encrypts,
# all decrypt (key rotation).
FIELD_ENCRYPTION_KEY = os.environ.get("FIELD_ENCRYPTION_KEY", "")

REDIS_URL = os.environ.get("REDIS_URL", "")

# Celery: at-least-once delivery made safe by idempotent tasks (unique keys / state guards).
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 15 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 14 * 60
# Longer than any countdown or retry delay we use (retries back off to at most 10 minutes).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", str(2 * 60 * 60)))
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["trialsite.api.auth.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["trialsite.api.parsers.StrictJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "trialsite.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_RATES": {"enrol": os.environ.get("ENROL_THROTTLE_RATE", "10/min"), "staff_token": "20/min"},
    "DATETIME_FORMAT": "iso-8601",
    # How many proxies (load balancers) in front of the web processes append to X-Forwarded-For; unset: none,
    # and the header is ignored for throttling (clients could forge it).
    "NUM_PROXIES": int(os.environ["TRUSTED_PROXY_COUNT"]) if os.environ.get("TRUSTED_PROXY_COUNT") else None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "trialsite API",
    "DESCRIPTION": 'Participant (phone) and staff API of trialsite. Errors: {"error": {"code", "message", "fields"}}.',
    "VERSION": SOFTWARE_VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
}

# Audit trail (django-pghistory): insert/update/delete by triggers; event tables are append-only.
PGHISTORY_APPEND_ONLY = True
PGHISTORY_MIDDLEWARE_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Event tables index only what the audit trail looks events up by (issue 14: an index per copied foreign key cost a
# survey submission ~33 index insertions): the object (pgh_obj: an object's history, the previous event of a diff),
# the context (the user filter) and the audit subject, a participant (trialsite.audit.tracked keeps those
# columns' indexes: the participant filter, the participant page, site scoping). Other copied keys: not indexed.
PGHISTORY_FOREIGN_KEY_FIELD = pghistory.ForeignKey(db_index=False)
PGHISTORY_OBJ_FIELD = pghistory.ObjForeignKey(db_index=True)
PGHISTORY_CONTEXT_FIELD = pghistory.ContextForeignKey(db_index=True)

API_TOKEN_TTL_PARTICIPANT = timedelta(days=int(os.environ.get("PARTICIPANT_TOKEN_DAYS", "180")))
API_TOKEN_TTL_STAFF = timedelta(hours=int(os.environ.get("STAFF_TOKEN_HOURS", "12")))

DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "trialsite <noreply@trialsite.invalid>")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}


def _cache_url(url: str, db: int = 1) -> str:
    """The broker's Redis URL with the cache's database (throttling, lock-out counters live in database 1;
    the broker uses the URL's own, normally 0). Credentials, host, port and query options are kept; for a
    Unix socket (`unix://…?db=0`) the database is the `db` option."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.scheme in ("redis", "rediss"):
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "db"]
        return urlunsplit(parts._replace(path=f"/{db}", query=urlencode(query)))
    if parts.scheme == "unix":
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "db"]
        return f"{url.split('?', 1)[0]}?{urlencode([*query, ('db', str(db))])}"
    return url


CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _cache_url(REDIS_URL)}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- Participant app, Web Push, SMS provider, reminder channels (issue 10 / issue 11 item 7) ---
# The address participants reach trialsite at; the enrolment QR code encodes <PUBLIC_BASE_URL>/app/enrol#<CODE>.
PUBLIC_BASE_URL = (os.environ.get("PUBLIC_BASE_URL") or "").rstrip("/")
# Web Push (VAPID): private key as base64url (raw 32 bytes or DER) or PEM; public key base64url uncompressed.
WEBPUSH_VAPID_PRIVATE_KEY = os.environ.get("WEBPUSH_VAPID_PRIVATE_KEY", "")
WEBPUSH_VAPID_PUBLIC_KEY = os.environ.get("WEBPUSH_VAPID_PUBLIC_KEY", "")
WEBPUSH_VAPID_SUBJECT = os.environ.get("WEBPUSH_VAPID_SUBJECT", "")
WEBPUSH_TTL = int(os.environ.get("WEBPUSH_TTL", str(4 * 60 * 60)))
WEBPUSH_ALLOW_INSECURE_ENDPOINTS = env_bool("WEBPUSH_ALLOW_INSECURE_ENDPOINTS", False)
# Twilio (REMINDER_SMS_BACKEND=surveys.reminders.channels.TwilioSmsBackend).
TWILIO_ACCOUNT_SID = os.environ.get("TWILIO_ACCOUNT_SID", "")
TWILIO_AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN", "")
TWILIO_FROM_NUMBER = os.environ.get("TWILIO_FROM_NUMBER", "")
TWILIO_MESSAGING_SERVICE_SID = os.environ.get("TWILIO_MESSAGING_SERVICE_SID", "")
# Channels this deployment may use (a subset of email,sms,push); a protocol channel not listed is never used.
REMINDER_CHANNELS = [
    c.strip() for c in (os.environ.get("REMINDER_CHANNELS") or "email,sms,push").split(",") if c.strip()
]
# Whether the local file outbox / console may stand in for an SMS or push provider (development only).
REMINDER_ALLOW_LOCAL_PROVIDERS = True

# --- Dashboard snapshot (issue 14): the admin dashboard reads completion by site and week from a row the beat
# task refreshes every 5 minutes; an older row than this (seconds) is recomputed live on the page view.
DASHBOARD_SNAPSHOT_MAX_AGE = int(os.environ.get("DASHBOARD_SNAPSHOT_MAX_AGE", "900"))

# --- Export jobs that finish (issue 11): heartbeat, reclaim, attempts -----------------------------------------
# A running job whose heartbeat is older than this is reclaimed by the beat sweep (its worker died).
EXPORT_HEARTBEAT_STALE_AFTER = int(os.environ.get("EXPORT_HEARTBEAT_STALE_AFTER", "300"))
# A queued job not picked up after this many seconds has its message re-published (the message was lost).
EXPORT_REQUEUE_AFTER = int(os.environ.get("EXPORT_REQUEUE_AFTER", "120"))
# Runs (claims) before a job whose workers keep dying is failed.
EXPORT_MAX_ATTEMPTS = int(os.environ.get("EXPORT_MAX_ATTEMPTS", "3"))
# Celery queue of export runs: their own queue and worker pool (docker-compose `worker-exports`), so a long
# export never holds up a due reminder, an outbox e-mail or a sweep (all on the default queue, `worker`).
EXPORT_QUEUE = os.environ.get("EXPORT_QUEUE") or "exports"
CELERY_TASK_ROUTES = {"analytics.tasks.export_job_run": {"queue": EXPORT_QUEUE}}
# Test hook of the worker-kill fault test only: never set it in a deployment.
EXPORT_TEST_PAUSE_DIR = os.environ.get("EXPORT_TEST_PAUSE_DIR") or None

# --- outbox: bounded broker, cache and SMTP calls; the transactional outbox (trialsite.outbox) ---------------
# A broker that is down or hanging must never stall a web request beyond a few seconds: publishing is best
# effort (the outbox sweep re-publishes), so every broker call is short and retried at most once.
CELERY_BROKER_CONNECTION_TIMEOUT = float(os.environ.get("CELERY_BROKER_CONNECTION_TIMEOUT", "2"))
CELERY_BROKER_CONNECTION_RETRY = True  # workers and beat reconnect on their own after an outage
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,
    "socket_timeout": float(os.environ.get("CELERY_BROKER_SOCKET_TIMEOUT", "2")),
    "socket_connect_timeout": float(os.environ.get("CELERY_BROKER_SOCKET_TIMEOUT", "2")),
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
# CELERY_DEFAULT_QUEUE: where tasks go without an explicit queue (tests point a worker and beat at a private one).
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_DEFAULT_QUEUE") or "celery"
# The cache serves only the enrolment and staff-token throttles (axes keeps its lock-out in the database): short
# timeouts, and those throttles let requests through while Redis is unreachable (trialsite.api.throttling).
if REDIS_URL:
    CACHES["default"]["OPTIONS"] = {
        "socket_timeout": float(os.environ.get("CACHE_SOCKET_TIMEOUT", "1")),
        "socket_connect_timeout": float(os.environ.get("CACHE_SOCKET_TIMEOUT", "1")),
        **CACHES["default"].get("OPTIONS", {}),  # options written in REDIS_URL's query string win
    }
# SMTP is used only by workers (outbox deliveries, reminders); a hanging server is abandoned after this many seconds.
EMAIL_TIMEOUT = int(os.environ.get("EMAIL_TIMEOUT", "10"))
OUTBOX_MAX_ATTEMPTS = int(os.environ.get("OUTBOX_MAX_ATTEMPTS", "8"))
OUTBOX_BACKOFF_SECONDS = float(os.environ.get("OUTBOX_BACKOFF_SECONDS", "30"))
OUTBOX_BACKOFF_MAX = float(os.environ.get("OUTBOX_BACKOFF_MAX", "3600"))
OUTBOX_REPUBLISH_AFTER = float(os.environ.get("OUTBOX_REPUBLISH_AFTER", "60"))
OUTBOX_CLAIM_STALE_AFTER = float(os.environ.get("OUTBOX_CLAIM_STALE_AFTER", "300"))
OUTBOX_QUEUE = os.environ.get("OUTBOX_QUEUE") or None
