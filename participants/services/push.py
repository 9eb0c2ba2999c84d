"""Web Push subscriptions of participants' browsers (PUT/DELETE /api/v1/push/subscription).

A subscription is `{"endpoint", "keys": {"p256dh", "auth"}}` as the browser's PushManager gives it. The
endpoint is a capability URL at the browser vendor's push service (https only; `http://127.0.0.1` and
`http://localhost` when WEBPUSH_ALLOW_INSECURE_ENDPOINTS is set, for the local push-service double).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ..models import Participant, PushSubscription

MAX_ENDPOINT = 2048


def b64url_decode(value: str) -> bytes:
    """base64url with or without padding (browsers send it unpadded); ValueError when it is not."""
    if not isinstance(value, str) or not value or len(value) > 256:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


def _clean_endpoint(endpoint) -> str:
    if not isinstance(endpoint, str) or not endpoint or len(endpoint) > MAX_ENDPOINT:
        raise ValidationError({"endpoint": ["The push service URL the browser gave (https)."]})
    try:
        parts = urlsplit(endpoint)
    except ValueError as exc:
        raise ValidationError({"endpoint": ["Not a URL."]}) from exc
    local = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost")
    allowed = parts.scheme == "https" or (local and getattr(settings, "WEBPUSH_ALLOW_INSECURE_ENDPOINTS", False))
    if not allowed or not parts.hostname or any(c.isspace() for c in endpoint):
        raise ValidationError({"endpoint": ["The push endpoint must be an https URL."]})
    return endpoint


def _clean_keys(keys) -> tuple[str, str]:
    errors: dict[str, list[str]] = {}
    if not isinstance(keys, dict):
        raise ValidationError({"keys": ['{"p256dh": "...", "auth": "..."} from the browser\'s subscription.']})
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    try:
        raw = b64url_decode(p256dh)
        if len(raw) != 65 or raw[0] != 4:
            raise ValueError("not an uncompressed point")
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)  # on the curve
    except ValueError:
        errors["keys.p256dh"] = ["The browser's P-256 public key: 65 bytes (uncompressed point), base64url."]
    try:
        if len(b64url_decode(auth)) != 16:
            raise ValueError("wrong length")
    except ValueError:
        errors["keys.auth"] = ["The browser's auth secret: 16 bytes, base64url."]
    if errors:
        raise ValidationError(errors)
    return p256dh.rstrip("="), auth.rstrip("=")


@transaction.atomic
def push_subscription_save(
    *, participant: Participant, endpoint, keys, now: datetime | None = None
) -> tuple[PushSubscription, bool]:
    """Store this device's subscription; the same one again changes nothing. Returns (row, created).

    A new subscription adds `push` to the participant's channels (as a push token does): a subscription is
    the push channel's contact detail. The same endpoint with new keys (the browser re-subscribed) replaces them.
    """
    now = now or timezone.now()
    endpoint = _clean_endpoint(endpoint)
    p256dh, auth = _clean_keys(keys)
    participant = Participant.objects.select_for_update().get(pk=participant.pk)
    row = PushSubscription.objects.filter(participant=participant, endpoint=endpoint).first()
    if row is not None:
        if (row.p256dh, row.auth) != (p256dh, auth):
            row.p256dh, row.auth = p256dh, auth
            row.save(update_fields=["p256dh", "auth"])
        return row, False
    row = PushSubscription(participant=participant, endpoint=endpoint, p256dh=p256dh, auth=auth, created_at=now)
    row.full_clean()
    row.save()
    if "push" not in participant.channels:
        participant.channels = [*participant.channels, "push"]
        participant.save(update_fields=["channels"])
    return row, True


@transaction.atomic
def push_subscription_delete(*, participant: Participant, endpoint) -> int:
    """Forget a subscription (the participant turned notifications off on that device). Unknown: nothing."""
    if not isinstance(endpoint, str) or not endpoint or len(endpoint) > MAX_ENDPOINT:
        raise ValidationError({"endpoint": ["The subscription's endpoint URL."]})
    deleted, _ = PushSubscription.objects.filter(participant=participant, endpoint=endpoint).delete()
    return deleted


@transaction.atomic
def push_subscription_expire(*, subscription_id: int) -> int:
    """The push service answered 404/410: the subscription is gone for good (called by the push channel)."""
    deleted, _ = PushSubscription.objects.filter(pk=subscription_id).delete()
    return deleted


@transaction.atomic
def push_subscriptions_mark_used(*, subscription_ids: list[int], now: datetime | None = None) -> int:
    return PushSubscription.objects.filter(pk__in=subscription_ids).update(last_used_at=now or timezone.now())
