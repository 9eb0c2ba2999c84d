"""Test-only channel backends, importable by a real worker process (named through REMINDER_PUSH_BACKEND)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from surveys.reminders.channels import ChannelError, FileOutboxBackend


class FailingBackend:
    idempotent = True

    def __init__(self, channel: str) -> None:
        self.channel = channel

    def send(self, *, key: str, to: str, subject: str, body: str) -> str:
        raise ChannelError("provider is down")


class SlowOutboxBackend(FileOutboxBackend):
    """Hands the message to the (idempotent) outbox, then sleeps while the flag file REMINDER_SLOW_FLAG exists,
    after touching REMINDER_SLOW_FLAG + '.sleeping' — the worker is killed in that sleep, after the provider
    accepted the message and before the database recorded it."""

    def send(self, *, key: str, to: str, subject: str, body: str) -> str:
        provider_id = super().send(key=key, to=to, subject=subject, body=body)
        flag = Path(os.environ.get("REMINDER_SLOW_FLAG", "/nonexistent"))
        if flag.exists():
            Path(f"{flag}.sleeping").touch()
            deadline = time.monotonic() + 60
            while flag.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        return provider_id


class FlakyOutboxBackend(FileOutboxBackend):
    """Fails the first REMINDER_FLAKY_FAILURES attempts per key (counted in a file), then delivers."""

    def send(self, *, key: str, to: str, subject: str, body: str) -> str:
        counter = Path(os.environ["REMINDER_OUTBOX_DIR"]) / f"attempts-{key}"
        n = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(n + 1))
        if n < int(os.environ.get("REMINDER_FLAKY_FAILURES", "2")):
            raise ChannelError(f"transient failure {n + 1}")
        return super().send(key=key, to=to, subject=subject, body=body)
