"""VAPID keys for Web Push (RFC 8292): generation, and the application server key browsers need.

The private key is kept as base64url of the raw 32-byte P-256 scalar (what `manage.py webpush_keys` prints and
what py-vapid's `Vapid.from_string` reads; DER and PEM work too). The public key is the base64url uncompressed
point (65 bytes) that `PushManager.subscribe({applicationServerKey})` takes.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _b64url_decode(value: str) -> bytes:
    value = value.strip().replace("\n", "")
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def generate() -> tuple[str, str]:
    """A fresh key pair: (private key base64url raw, public key base64url uncompressed point)."""
    key = ec.generate_private_key(ec.SECP256R1())
    raw = key.private_numbers().private_value.to_bytes(32, "big")
    return b64url(raw), public_key_of(key)


def private_key_load(value: str) -> ec.EllipticCurvePrivateKey:
    """Parse WEBPUSH_VAPID_PRIVATE_KEY (raw base64url, DER base64url, or PEM). ValueError when it is not one."""
    value = (value or "").strip()
    if not value:
        raise ValueError("empty")
    if value.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(value.encode(), password=None)
    else:
        data = _b64url_decode(value)
        if len(data) == 32:
            key = ec.derive_private_key(int.from_bytes(data, "big"), ec.SECP256R1())
        else:
            key = serialization.load_der_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("not a P-256 key")
    return key


def public_key_of(key: ec.EllipticCurvePrivateKey) -> str:
    point = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return b64url(point)


def dev_keys_ensure(local_dir: Path) -> dict[str, str]:
    """Development (`make run`): the key pair under .local/webpush/vapid.json, generated on first use."""
    path = Path(local_dir) / "webpush" / "vapid.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    private, public = generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"WEBPUSH_VAPID_PRIVATE_KEY": private, "WEBPUSH_VAPID_PUBLIC_KEY": public}, fh)
    return {"WEBPUSH_VAPID_PRIVATE_KEY": private, "WEBPUSH_VAPID_PUBLIC_KEY": public}


def configured_public_key() -> str | None:
    """The application server key for browsers: WEBPUSH_VAPID_PUBLIC_KEY, else derived from the private key.
    None when Web Push is not configured (no private key)."""
    from django.conf import settings

    private = getattr(settings, "WEBPUSH_VAPID_PRIVATE_KEY", "") or os.environ.get("WEBPUSH_VAPID_PRIVATE_KEY", "")
    if not private:
        return None
    public = getattr(settings, "WEBPUSH_VAPID_PUBLIC_KEY", "") or os.environ.get("WEBPUSH_VAPID_PUBLIC_KEY", "")
    return public.rstrip("=") if public else public_key_of(private_key_load(private))
