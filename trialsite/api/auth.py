"""Bearer tokens (hashed, expiring, revocable) for participants' phones and staff scripts."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from functools import cache

from django.conf import settings
from django.utils import timezone
from rest_framework import authentication, exceptions

from trialsite import audit
from trialsite.compiled_query import CompiledQuery
from trialsite.models import ApiToken


def token_issue(*, user, kind: str, ttl: timedelta, device: dict | None = None) -> tuple[str, ApiToken]:
    """Create a token; returns the secret (shown once) and the stored row (which keeps only its hash)."""
    key = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        kind=kind,
        key_hash=ApiToken.hash_key(key),
        expires_at=timezone.now() + ttl,
        device=device or {},
    )
    return key, token


def token_revoke(*, token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


@cache
def _token_related() -> tuple[str, ...]:
    # Read once per process: the relations fetched with the token in its one query (settings name them, e.g. the
    # phone's participant, so no further query per request needs to find "who is this").
    return tuple(getattr(settings, "API_TOKEN_SELECT_RELATED", None) or ("user",))


def _live_token(*, key_hash: str, now: datetime):
    # key_hash is unique: at most one row, so no ORDER BY (first() would add one on the pk).
    return ApiToken.objects.select_related(*_token_related()).filter(
        key_hash=key_hash, revoked_at__isnull=True, expires_at__gt=now
    )[:1]


# The token lookup (with its user and the settings' relations) compiled to SQL once per process; every request
# still runs it: a revoked or expired token, or one of a deactivated user, stops working at once.
_live_token_query = CompiledQuery(
    _live_token,
    placeholders={"key_hash": "<key-hash placeholder>", "now": datetime(1970, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)},
)


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header.")
        try:
            key = header[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid token.") from exc
        now = timezone.now()
        rows = _live_token_query(key_hash=ApiToken.hash_key(key), now=now)
        token = rows[0] if rows else None
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or expired token.")
        if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=5):
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        audit.annotate(user=token.user.pk)
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
