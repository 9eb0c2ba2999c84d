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
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.utils import timezone
from django.utils.module_loading import import_string


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
        masked = "…" + to[-2:] if len(to) > 2 else "…"
        print(f"[{self.channel}] to={masked} key={key}: {body}")  # noqa: T201 - the development console channel
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


def channel_get(name: str):
    """The channel object for 'email', 'sms' or 'push' (a fresh one each call: settings may change in tests)."""
    if name == "email":
        return EmailChannel()
    default = "surveys.reminders.channels.FileOutboxBackend"
    if name == "sms":
        return import_string(_setting("REMINDER_SMS_BACKEND", default))("sms")
    if name == "push":
        return import_string(_setting("REMINDER_PUSH_BACKEND", default))("push")
    raise PermanentChannelError(f"unknown channel {name!r}")


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
    preferred = [c for c in (participant.channels or []) if c in allowed] or list(allowed)
    contact = None
    for name in preferred:
        if name == "push":
            if participant.push_token:
                return Address("push", participant.push_token)
            continue
        if contact is None:
            contact = contact_for_reminder(participant)
        if name == "email" and contact.get("email"):
            return Address("email", contact["email"])
        if name == "sms" and contact.get("phone"):
            return Address("sms", contact["phone"])
    return None
