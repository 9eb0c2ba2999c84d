"""The test suite: development settings with fast password hashing and mail kept in memory."""

from .base import env
from .development import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# outbox fault tests point a worker subprocess at a local SMTP server (aiosmtpd) through the environment.
if env("TEST_SMTP_PORT"):
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = "127.0.0.1"
    EMAIL_PORT = int(env("TEST_SMTP_PORT"))
AXES_ENABLED = True
