"""Development defaults: what `make run` and `make test` use. Never for real participants."""

from .base import *  # noqa: F403
from .base import LOCAL_DIR, env

DEBUG = env("DJANGO_DEBUG", "1") == "1"
# Development only; production requires DJANGO_SECRET_KEY.
SECRET_KEY = env("DJANGO_SECRET_KEY", "dev-insecure-0b7c1f0e2a9d4c1bb1f1b8d1c7f4a3e2-not-for-production")
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

# Development-only Fernet key (production requires FIELD_ENCRYPTION_KEY from the environment).
FIELD_ENCRYPTION_KEY = env("FIELD_ENCRYPTION_KEY", "ZGV2LW9ubHkta2V5LXRyaWFsc2l0ZS0wMDAwMDAwMDA=")

# Reminders and alerts are written as files under .local/mail/ (API.md).
EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = str(env("EMAIL_FILE_PATH", str(LOCAL_DIR / "mail")))

# --- Participant app, Web Push (issue 10) ---
PUBLIC_BASE_URL = (env("PUBLIC_BASE_URL") or f"http://127.0.0.1:{env('PORT', '8000') or '8000'}").rstrip("/")
# The local push-service double (and a browser on localhost) use http://127.0.0.1 endpoints.
WEBPUSH_ALLOW_INSECURE_ENDPOINTS = env("WEBPUSH_ALLOW_INSECURE_ENDPOINTS", "1") == "1"
WEBPUSH_VAPID_SUBJECT = env("WEBPUSH_VAPID_SUBJECT") or "mailto:dev@trialsite.invalid"

# TRIALSITE_TEST_CLOCK (off unless set): the Celery workers, beats and gunicorn processes a test session starts keep
# its clock (trialsite/tests/clock.py), under the test settings and these development ones alike.
if env("TRIALSITE_TEST_CLOCK_OFFSET") or env("TRIALSITE_TEST_CLOCK"):
    from trialsite.tests import clock as _test_clock

    _test_clock.start()
