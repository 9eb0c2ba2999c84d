"""Bearer tokens (hashed, expiring, revocable) for participants' phones and staff scripts."""

from __future__ import annotations

import secrets
from datetime import timedelta
from functools import cache

from django.conf import settings
from django.utils import timezone
from rest_framework import authentication, exceptions

from trialsite import audit
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
        # key_hash is unique: at most one row, so no ORDER BY (first() would add one on the pk).
        rows = ApiToken.objects.select_related(*_token_related()).filter(
            key_hash=ApiToken.hash_key(key), revoked_at__isnull=True, expires_at__gt=now
        )[:1]
        token = next(iter(rows), None)
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or expired token.")
        if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=5):
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        audit.annotate(user=token.user.pk)
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
