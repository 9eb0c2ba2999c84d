"""Production: every secret from the environment, no defaults; `check --deploy` clean."""

from .base import *  # noqa: F403
from .base import env, env_bool, env_required

DEBUG = False
# prod: commands that must never touch a production database (`manage.py demo`: known passwords) check this.
TRIALSITE_PRODUCTION = True
SECRET_KEY = env_required("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = [h.strip() for h in env_required("DJANGO_ALLOWED_HOSTS").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in (env("DJANGO_CSRF_TRUSTED_ORIGINS", "") or "").split(",") if o.strip()]
FIELD_ENCRYPTION_KEY = env_required("FIELD_ENCRYPTION_KEY")
REDIS_URL = env_required("REDIS_URL")
CELERY_BROKER_URL = REDIS_URL

TRIALSITE_REQUIRE_2FA = env_bool("TRIALSITE_REQUIRE_2FA", True)

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
SECURE_REDIRECT_EXEMPT = [r"^health$"]
SECURE_HSTS_SECONDS = int(env("DJANGO_HSTS_SECONDS", "31536000") or 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"

EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = int(env("EMAIL_PORT", "25") or 25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)

# --- Participant app, Web Push, reminder providers (issue 10 / issue 11 item 7) ---
PUBLIC_BASE_URL = env_required("PUBLIC_BASE_URL").rstrip("/")
WEBPUSH_ALLOW_INSECURE_ENDPOINTS = False
# SMS and push never fall back to the local file outbox here: a channel in REMINDER_CHANNELS without a configured
# provider is a system check error (surveys.checks), so `manage.py check --deploy` and the processes refuse to start.
REMINDER_ALLOW_LOCAL_PROVIDERS = False
