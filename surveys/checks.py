"""System checks for reminder providers (issue 11 item 7): production never fakes an SMS or a push.

Under settings with REMINDER_ALLOW_LOCAL_PROVIDERS = False (production), each channel listed in
REMINDER_CHANNELS must have a real provider: SMS a backend other than the local outbox/console (Twilio needs
its credentials), push the Web Push backend with a VAPID key pair and subject. Otherwise `manage.py check`
(and so `check --deploy`, `migrate` and the compose web start) fails with an error naming the fix: configure
the provider, or leave the channel out of REMINDER_CHANNELS (e.g. REMINDER_CHANNELS=email).
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register

LOCAL_BACKENDS = {"surveys.reminders.channels.FileOutboxBackend", "surveys.reminders.channels.ConsoleBackend"}
WEBPUSH = "surveys.reminders.channels.WebPushBackend"
TWILIO = "surveys.reminders.channels.TwilioSmsBackend"


def _s(name: str) -> str:
    import os

    return getattr(settings, name, None) or os.environ.get(name) or ""


@register()
def reminder_providers_check(app_configs=None, **kwargs):
    from trialsite.vapid import private_key_load

    from .reminders.channels import channels_enabled, vapid_configured

    if getattr(settings, "REMINDER_ALLOW_LOCAL_PROVIDERS", True):
        return []
    errors = []
    enabled = channels_enabled()
    unknown = sorted(set(enabled) - {"email", "sms", "push"})
    if unknown:
        errors.append(Error(f"REMINDER_CHANNELS names unknown channels: {', '.join(unknown)}", id="surveys.E101"))
    if "sms" in enabled:
        backend = _s("REMINDER_SMS_BACKEND") or "surveys.reminders.channels.FileOutboxBackend"
        if backend in LOCAL_BACKENDS:
            errors.append(
                Error(
                    "SMS reminders are enabled but no SMS provider is configured: they would be written to a local "
                    "file and marked sent.",
                    hint=f"Set REMINDER_SMS_BACKEND={TWILIO} with TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and "
                    "TWILIO_FROM_NUMBER (or TWILIO_MESSAGING_SERVICE_SID), or leave sms out of REMINDER_CHANNELS.",
                    id="surveys.E102",
                )
            )
        elif backend == TWILIO and not (
            _s("TWILIO_ACCOUNT_SID")
            and _s("TWILIO_AUTH_TOKEN")
            and (_s("TWILIO_FROM_NUMBER") or _s("TWILIO_MESSAGING_SERVICE_SID"))
        ):
            errors.append(
                Error(
                    "REMINDER_SMS_BACKEND is Twilio but its credentials are incomplete.",
                    hint="Set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER "
                    "(or TWILIO_MESSAGING_SERVICE_SID).",
                    id="surveys.E103",
                )
            )
    if "push" in enabled:
        backend = _s("REMINDER_PUSH_BACKEND") or (WEBPUSH if vapid_configured() else "")
        if not backend or backend in LOCAL_BACKENDS:
            errors.append(
                Error(
                    "Push reminders are enabled but Web Push is not configured: they would be written to a local "
                    "file and marked sent.",
                    hint="Set WEBPUSH_VAPID_PRIVATE_KEY, WEBPUSH_VAPID_PUBLIC_KEY and WEBPUSH_VAPID_SUBJECT "
                    "(`manage.py webpush_keys` prints a pair), or leave push out of REMINDER_CHANNELS.",
                    id="surveys.E104",
                )
            )
        elif backend == WEBPUSH:
            problem = ""
            if not _s("WEBPUSH_VAPID_SUBJECT").startswith(("mailto:", "https://")):
                problem = "WEBPUSH_VAPID_SUBJECT must be a mailto: or https: URL"
            try:
                private_key_load(_s("WEBPUSH_VAPID_PRIVATE_KEY"))
            except ValueError:
                problem = "WEBPUSH_VAPID_PRIVATE_KEY is not a P-256 private key"
            if problem:
                errors.append(Error(f"Web Push is misconfigured: {problem}.", id="surveys.E105"))
    return errors
