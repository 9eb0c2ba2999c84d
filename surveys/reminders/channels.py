"""Reminder channels: e-mail through Django's mail backends, SMS and push through pluggable adapters.

A channel's `send()` gets the reminder's uuid as `key`; it returns the provider's message id or raises
`ChannelError` (transient: retried with backoff) / `PermanentChannelError` (not retried: the reminder fails).

Plugging a provider: write a class with
    idempotent: bool              # True when the provider de-duplicates on `key` (safe to re-send after a crash)
    def send(self, *, key: str, to: str, subject: str, body: str) -> str
and name it in the setting (or environment variable) `REMINDER_SMS_BACKEND` / `REMINDER_PUSH_BACKEND`
(dotted path). The default for both is `FileOutboxBackend`, which appends JSON lines to
`.local/outbox/<channel>.jsonl` (directory: `REMINDER_OUTBOX_DIR`) and ignores a key it has already written,
like a provider that honours idempotency keys. `ConsoleBackend` prints instead.

E-mail: the message carries `Message-ID: <key@trialsite.reminders>`. SMTP has no idempotency, so the e-mail
channel is not idempotent: a send interrupted at an unknown point is never repeated (the reminder fails with
the reason, visible to coordinators) rather than risk a duplicate.

Real providers here: `WebPushBackend` (Web Push with VAPID to each of the participant's browser subscriptions;
the default push backend once WEBPUSH_VAPID_PRIVATE_KEY is set) and `TwilioSmsBackend` (SMS through Twilio's
official client). `REMINDER_CHANNELS` lists the channels a deployment may use; under production settings a
listed SMS/push channel without a real provider is a system check error (surveys.checks), never a silent
write to the local outbox.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.utils import timezone
from django.utils.module_loading import import_string

log = logging.getLogger(__name__)


class ChannelError(Exception):
    """A transient failure: the task retries with exponential backoff and jitter."""


class PermanentChannelError(ChannelError):
    """The provider refused the message for good (bad number, unsubscribed): no retry."""


def _setting(name: str, default: str | None = None) -> str | None:
    return getattr(settings, name, None) or os.environ.get(name) or default


def outbox_dir() -> Path:
    return Path(_setting("REMINDER_OUTBOX_DIR") or (Path(settings.BASE_DIR) / ".local" / "outbox"))


class FileOutboxBackend:
    """Local SMS/push provider: JSON lines under the outbox directory, de-duplicated on the key."""

    idempotent = True

    def __init__(self, channel: str) -> None:
        self.channel = channel

    @property
    def path(self) -> Path:
        return outbox_dir() / f"{self.channel}.jsonl"

    def send(self, *, key: str, to: str, subject: str, body: str) -> str:
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.seek(0)
            for line in fh:
                if json.loads(line).get("key") == key:
                    return f"{self.channel}-{key}"  # already accepted: the provider's idempotency
            fh.write(
                json.dumps({"key": key, "to": to, "subject": subject, "body": body, "at": timezone.now().isoformat()})
                + "\n"
            )
            fh.flush()
            os.fsync(fh.fileno())
        return f"{self.channel}-{key}"


class ConsoleBackend:
    idempotent = False

    def __init__(self, channel: str) -> None:
        self.channel = channel

    def send(self, *, key: str, to: str, subject: str, body: str) -> str:
        # Contact details never reach logs: only the last two characters of the address are shown.
        print(f"[{self.channel}] to={mask(to)} key={key}: {body}")  # noqa: T201 - the development console channel
        return f"console-{key}"


class EmailChannel:
    idempotent = False

    def __init__(self, channel: str = "email") -> None:
        self.channel = channel

    def send(self, *, key: str, to: str, subject: str, body: str) -> str:
        message_id = f"<{key}@trialsite.reminders>"
        message = EmailMessage(
            subject=subject,
            body=body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[to],
            headers={"Message-ID": message_id, "X-Idempotency-Key": key},
            connection=get_connection(fail_silently=False),
        )
        try:
            message.send()
        except OSError as exc:  # SMTP and socket errors: transient
            raise ChannelError(f"e-mail: {exc.__class__.__name__}: {exc}") from exc
        return message_id


def mask(to: str) -> str:
    """A phone number or address as it may appear in logs: only its last two characters."""
    return "…" + to[-2:] if len(to) > 2 else "…"


# --- Web Push --------------------------------------------------------------------------------------------

PUSH_BODY = "A survey is waiting for you"  # never an arm, a score or anything clinical


def public_base_url() -> str:
    return (getattr(settings, "PUBLIC_BASE_URL", "") or "").rstrip("/")


def push_payload(*, title: str, instance_uuid, key: str) -> dict:
    """What the service worker receives: a neutral text, the survey to open on a tap, and the tag that makes a
    repeat of the same reminder replace its notification instead of adding one."""
    return {"title": title, "body": PUSH_BODY, "url": f"{public_base_url()}/app/survey/{instance_uuid}", "tag": key}


def vapid_configured() -> bool:
    return bool(_setting("WEBPUSH_VAPID_PRIVATE_KEY"))


class WebPushBackend:
    """Web Push (RFC 8030/8291/8292) through pywebpush to every browser subscription of the participant.

    `to` is ignored: the reminder (`key` is its uuid) names the participant and the survey. Idempotent: each
    message carries `Topic: <reminder uuid>` (a push service replaces an undelivered message of the same topic)
    and the notification `tag` is the reminder uuid (the browser replaces a shown notification with the same
    tag), so a re-send after a crash never shows a second notification.
    404/410 from a push service: that subscription is deleted; when none is left the reminder fails for good.
    Another 4xx for every device: permanent. Network errors, 429 and 5xx: transient (retried).
    """

    idempotent = True
    timeout = 10.0

    def __init__(self, channel: str = "push") -> None:
        self.channel = channel

    def send(self, *, key: str, to: str, subject: str, body: str) -> str:
        import requests
        from py_vapid import Vapid
        from pywebpush import WebPushException, webpush

        from participants.selectors import push_subscriptions_for_delivery
        from participants.services.push import push_subscription_expire, push_subscriptions_mark_used

        from ..models import Reminder

        private_key = _setting("WEBPUSH_VAPID_PRIVATE_KEY")
        subject_claim = _setting("WEBPUSH_VAPID_SUBJECT")
        if not private_key or not subject_claim:
            raise PermanentChannelError("web push: WEBPUSH_VAPID_PRIVATE_KEY and WEBPUSH_VAPID_SUBJECT are not set")
        row = Reminder.objects.filter(uuid=key).values_list("instance__uuid", "instance__participant_id").first()
        if row is None:
            raise PermanentChannelError("web push: unknown reminder")
        instance_uuid, participant_id = row
        targets = push_subscriptions_for_delivery(participant_id=participant_id)
        if not targets:
            raise PermanentChannelError("web push: the participant has no push subscription (none on file)")
        vapid = Vapid.from_string(private_key=private_key)
        data = json.dumps(push_payload(title=subject, instance_uuid=instance_uuid, key=key))
        ttl = int(_setting("WEBPUSH_TTL") or 4 * 60 * 60)
        delivered: list[int] = []
        gone: list[int] = []
        transient: list[str] = []
        refused: list[str] = []
        for target in targets:
            parts = urlsplit(target.endpoint)
            claims = {  # a fresh dict per device: pywebpush fills in `aud` from the first endpoint it sees
                "sub": subject_claim,
                "aud": f"{parts.scheme}://{parts.netloc}",
                "exp": int(timezone.now().timestamp()) + 12 * 60 * 60,
            }
            try:
                webpush(
                    subscription_info={
                        "endpoint": target.endpoint,
                        "keys": {"p256dh": target.p256dh, "auth": target.auth},
                    },
                    data=data,
                    vapid_private_key=vapid,
                    vapid_claims=claims,
                    content_encoding="aes128gcm",
                    ttl=ttl,
                    timeout=self.timeout,
                    headers={"Topic": key.replace("-", ""), "Urgency": "normal"},
                )
            except WebPushException as exc:
                code = exc.response.status_code if exc.response is not None else None
                if code in (404, 410):
                    gone.append(target.id)
                elif code is not None and 400 <= code < 500 and code not in (408, 429):
                    refused.append(str(code))
                else:
                    transient.append(str(code or exc.__class__.__name__))
            except requests.RequestException as exc:
                transient.append(exc.__class__.__name__)
            else:
                delivered.append(target.id)
        for sub_id in gone:
            push_subscription_expire(subscription_id=sub_id)
        log.info(
            "web push %s: %d delivered, %d gone, %d refused, %d transient",
            key,
            len(delivered),
            len(gone),
            len(refused),
            len(transient),
        )
        if delivered:
            push_subscriptions_mark_used(subscription_ids=delivered)
            return f"webpush-{key}:{len(delivered)}/{len(targets)}"
        if transient:
            raise ChannelError(f"web push: push service unavailable ({', '.join(transient)})")
        if refused:
            raise PermanentChannelError(f"web push: refused by the push service ({', '.join(refused)})")
        raise PermanentChannelError("web push: every subscription of the participant has expired (404/410)")


# --- SMS through Twilio ----------------------------------------------------------------------------------


class TwilioSmsBackend:
    """SMS through Twilio's official client (`twilio` package): POST /2010-04-01/Accounts/<SID>/Messages.json.

    Settings: TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID.
    Twilio does not de-duplicate message creation, so like e-mail this channel is not idempotent.
    A 4xx from Twilio (e.g. 21211 invalid 'To' number, 21610 unsubscribed) is permanent; 429, 5xx and network
    errors are transient. TWILIO_API_BASE_URL (tests only) points the client at a local double.
    """

    idempotent = False
    timeout = 10.0

    def __init__(self, channel: str = "sms") -> None:
        self.channel = channel

    def _client(self):
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        base = _setting("TWILIO_API_BASE_URL")

        class RebasedHttpClient(TwilioHttpClient):
            # Twilio's documented extension point (a custom http_client); here it only swaps the origin.
            def request(self, method, url, *args, **kwargs):
                if base and url.startswith("https://api.twilio.com"):
                    url = base.rstrip("/") + url[len("https://api.twilio.com") :]
                return super().request(method, url, *args, **kwargs)

        return Client(
            _setting("TWILIO_ACCOUNT_SID"),
            _setting("TWILIO_AUTH_TOKEN"),
            http_client=RebasedHttpClient(timeout=self.timeout),
            environment={},
        )

    def send(self, *, key: str, to: str, subject: str, body: str) -> str:
        import requests
        from twilio.base.exceptions import TwilioException, TwilioRestException

        sid, token = _setting("TWILIO_ACCOUNT_SID"), _setting("TWILIO_AUTH_TOKEN")
        sender, service = _setting("TWILIO_FROM_NUMBER"), _setting("TWILIO_MESSAGING_SERVICE_SID")
        if not sid or not token or not (sender or service):
            raise PermanentChannelError("sms: Twilio is not configured (TWILIO_ACCOUNT_SID, _AUTH_TOKEN, _FROM_NUMBER)")
        kwargs = {"to": to, "body": body}
        if service:
            kwargs["messaging_service_sid"] = service
        else:
            kwargs["from_"] = sender
        try:
            message = self._client().messages.create(**kwargs)
        except TwilioRestException as exc:
            what = f"sms to {mask(to)}: Twilio {exc.status} error {exc.code}"
            log.warning("%s", what)
            if 400 <= exc.status < 500 and exc.status not in (408, 429):
                raise PermanentChannelError(what) from exc
            raise ChannelError(what) from exc
        except (requests.RequestException, TwilioException, OSError) as exc:
            raise ChannelError(f"sms to {mask(to)}: {exc.__class__.__name__}") from exc
        log.info("sms to %s accepted by Twilio: %s", mask(to), message.sid)
        return str(message.sid)


def channel_get(name: str):
    """The channel object for 'email', 'sms' or 'push' (a fresh one each call: settings may change in tests)."""
    if name == "email":
        return EmailChannel()
    default = "surveys.reminders.channels.FileOutboxBackend"
    if name == "sms":
        path = _setting("REMINDER_SMS_BACKEND", default)
    elif name == "push":
        path = _setting("REMINDER_PUSH_BACKEND", WEBPUSH_PATH if vapid_configured() else default)
    else:
        raise PermanentChannelError(f"unknown channel {name!r}")
    backend = import_string(path)
    if backend in (FileOutboxBackend, ConsoleBackend) and not getattr(settings, "REMINDER_ALLOW_LOCAL_PROVIDERS", True):
        # Production: never pretend a local file is a provider (the system check refuses this at start too).
        raise PermanentChannelError(f"{name}: no provider configured (the local outbox is for development only)")
    return backend(name)


WEBPUSH_PATH = "surveys.reminders.channels.WebPushBackend"


def channels_enabled() -> list[str]:
    """REMINDER_CHANNELS: the channels this deployment may use (default all three)."""
    value = getattr(settings, "REMINDER_CHANNELS", None)
    if value is None:
        value = (os.environ.get("REMINDER_CHANNELS") or "email,sms,push").split(",")
    if isinstance(value, str):
        value = value.split(",")
    return [c.strip() for c in value if c.strip()]


# --- Contact details -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    channel: str
    to: str


def contact_for_reminder(participant) -> dict:
    """Decrypted e-mail and phone of a participant, for the senders only (read through the participants app)."""
    from participants.services.registration import contact_for_delivery

    return contact_for_delivery(participant=participant)


def address_for(participant, allowed: list[str]) -> Address | None:
    """The first channel the participant chose (else the protocol's order) that has an address."""
    enabled = channels_enabled()
    allowed = [c for c in allowed if c in enabled]
    preferred = [c for c in (participant.channels or []) if c in allowed] or list(allowed)
    contact = None
    for name in preferred:
        if name == "push":
            from participants.selectors import participant_has_push

            if participant_has_push(participant=participant):
                # The Web Push backend reaches every subscription of the participant; `to` is for the others.
                return Address("push", participant.push_token or "web-push")
            continue
        if contact is None:
            contact = contact_for_reminder(participant)
        if name == "email" and contact.get("email"):
            return Address("email", contact["email"])
        if name == "sms" and contact.get("phone"):
            return Address("sms", contact["phone"])
    return None
