"""Field encryption for personal data (Fernet, with key rotation through MultiFernet).

settings.FIELD_ENCRYPTION_KEY is a comma-separated list of Fernet keys: the first encrypts, all decrypt.
To rotate: put the new key first, keep the old ones, run `rotate` over the stored values, drop old keys.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _keys(raw: str | None = None) -> list[str]:
    raw = settings.FIELD_ENCRYPTION_KEY if raw is None else raw
    keys = [k.strip() for k in (raw or "").split(",") if k.strip()]
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY is empty; set at least one Fernet key.")
    return keys


def _fernet() -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.encode()) for k in _keys()])
    except ValueError as exc:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY holds a value that is not a Fernet key.") from exc


def encrypt(value: str) -> str:
    """'' stays '' (nothing on file)."""
    if not value:
        return ""
    return _fernet().encrypt(value.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken as exc:
        raise ImproperlyConfigured("A stored value cannot be decrypted with any FIELD_ENCRYPTION_KEY key.") from exc


def rotate(token: str) -> str:
    """Re-encrypt with the first (current) key."""
    if not token:
        return ""
    return _fernet().rotate(token.encode("ascii")).decode("ascii")


def keyed_hash(value: str) -> str:
    """HMAC-SHA256 with the secret key: a lookup hash that cannot be brute-forced without the key."""
    return hmac.new(settings.SECRET_KEY.encode(), value.encode("utf-8"), hashlib.sha256).hexdigest()
