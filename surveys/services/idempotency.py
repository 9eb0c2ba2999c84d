"""Idempotency of phone writes: one IdempotencyRecord per (participant, key) next to the row it created.

A retry with the same key and the same canonical body gets the stored answer back (HTTP 200 instead of
201) and stores nothing; the same key with another body (or for another kind of write) is refused with
`idempotency_mismatch`. The record is inserted in the transaction that creates the row, so the two commit
together; a concurrent duplicate blocks on the unique index and then sees the first one's record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from ..errors import IdempotencyMismatch
from ..models import IdempotencyRecord


@dataclass(frozen=True)
class WriteResult:
    body: dict
    created: bool  # False: a replay of an earlier identical request

    @property
    def status_code(self) -> int:
        return 201 if self.created else 200


def request_hash(payload: Any) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_lookup(*, participant, key, kind: str, digest: str) -> WriteResult | None:
    """The stored answer for a replay; raises IdempotencyMismatch when the key was used differently."""
    # (participant, key) is unique: at most one row, so no ORDER BY (first() would add one).
    record = next(iter(IdempotencyRecord.objects.filter(participant=participant, key=key)[:1]), None)
    if record is None:
        return None
    if record.kind != kind or record.request_hash != digest:
        raise IdempotencyMismatch()
    return WriteResult(body=record.response_body, created=False)


def idempotency_store(*, participant, key, kind: str, digest: str, body: dict) -> None:
    """Call inside the transaction that creates the row."""
    IdempotencyRecord.objects.create(
        participant=participant, key=key, kind=kind, request_hash=digest, status_code=201, response_body=body
    )


def idempotent_write(*, participant, key, kind: str, payload: Any, perform: Callable[[], dict]) -> WriteResult:
    """Run `perform` (which creates the row and returns the response body) at most once per key."""
    digest = request_hash(payload)
    for attempt in range(2):
        replay = idempotency_lookup(participant=participant, key=key, kind=kind, digest=digest)
        if replay is not None:
            return replay
        try:
            with transaction.atomic():
                body = perform()
                idempotency_store(participant=participant, key=key, kind=kind, digest=digest, body=body)
                return WriteResult(body=body, created=True)
        except IntegrityError:
            # A concurrent request with the same key committed first: answer from its record.
            if attempt:
                raise
    raise AssertionError("unreachable")
