"""A local Web Push service double: a real HTTP server on 127.0.0.1 that speaks RFC 8030/8291/8292.

`subscribe()` makes a subscription the way a browser does (a fresh P-256 key pair and a 16-byte auth secret;
an endpoint URL on this server). For each POST to an endpoint it issued, the double checks what a real push
service checks and more:
- `Authorization: vapid t=<JWT>, k=<key>`: the JWT is ES256, signed by `k`; `aud` is the endpoint's origin,
  `exp` is in the future and at most 24 h away, `sub` is present;
- `Content-Encoding: aes128gcm` and a `TTL` header;
- the body decrypts (RFC 8291) with the subscription's private key and auth secret;
then records the plaintext and answers 201 (or 410 for an endpoint the test marked gone, 404 for one it never
issued). Requests that fail a check are answered 400/401 and recorded in `rejected`.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


@dataclass
class Subscription:
    token: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes

    def info(self) -> dict:
        """What PushManager.subscribe() hands the page (and the page PUTs to /api/v1/push/subscription)."""
        point = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"endpoint": self.endpoint, "keys": {"p256dh": b64url(point), "auth": b64url(self.auth)}}


@dataclass
class Delivery:
    endpoint: str
    payload: dict
    claims: dict
    vapid_key: str
    headers: dict  # lower-case names


@dataclass
class PushDouble:
    server: ThreadingHTTPServer
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    deliveries: list[Delivery] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    outage: int | None = None  # answer every POST with this status (e.g. 503) while set
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def origin(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def subscribe(self) -> Subscription:
        token = secrets.token_urlsafe(16)
        sub = Subscription(
            token=token,
            endpoint=f"{self.origin}/push/{token}",
            private_key=ec.generate_private_key(ec.SECP256R1()),
            auth=secrets.token_bytes(16),
        )
        with self.lock:
            self.subscriptions[token] = sub
        return sub

    def mark_gone(self, sub: Subscription) -> None:
        with self.lock:
            self.gone.add(sub.token)

    def delivered_to(self, sub: Subscription) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if d.endpoint == sub.endpoint]

    def wait_for(self, predicate, timeout: float = 60.0, what: str = "a push message"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                value = predicate(self)
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; rejected: {self.rejected}")

    # --- checks ------------------------------------------------------------------------------------------

    def verify_vapid(self, header: str, endpoint: str) -> tuple[dict, str]:
        scheme, _, params = header.partition(" ")
        if scheme.lower() != "vapid":
            raise ValueError(f"Authorization scheme {scheme!r}, not vapid")
        parts = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
        token, key = parts.get("t", ""), parts.get("k", "")
        signing_input, _, signature = token.rpartition(".")
        head_b64, _, claims_b64 = signing_input.partition(".")
        head = json.loads(b64url_decode(head_b64))
        if head.get("alg") != "ES256":
            raise ValueError(f"JWT alg {head.get('alg')!r}")
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(key))
        raw = b64url_decode(signature)
        if len(raw) != 64:
            raise ValueError("ES256 signature is not 64 bytes")
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        try:
            public.verify(der, signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as exc:
            raise ValueError("VAPID signature does not verify against k") from exc
        claims = json.loads(b64url_decode(claims_b64))
        parts_url = urlsplit(endpoint)
        if claims.get("aud") != f"{parts_url.scheme}://{parts_url.netloc}":
            raise ValueError(f"aud {claims.get('aud')!r} is not the endpoint's origin")
        now = time.time()
        if not (now < int(claims.get("exp", 0)) <= now + 24 * 3600):
            raise ValueError("exp is not within the next 24 hours")
        if not claims.get("sub"):
            raise ValueError("no sub claim")
        return claims, key


def _handler(double: PushDouble):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 - quiet: tests read `deliveries`
            return

        def _answer(self, code: int, reason: str = "") -> None:
            if code >= 400 and code not in (404, 410) and code != double.outage:
                with double.lock:
                    double.rejected.append(reason)
            body = reason.encode()
            self.send_response(code)
            if code == 201:
                self.send_header("Location", f"{double.origin}/message/{secrets.token_hex(8)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            token = self.path.rsplit("/", 1)[-1] if self.path.startswith("/push/") else ""
            with double.lock:
                sub = double.subscriptions.get(token)
                gone = token in double.gone
            if double.outage:
                return self._answer(double.outage, "push service unavailable")
            if sub is None:
                return self._answer(404, "unknown subscription")
            if gone:
                return self._answer(410, "subscription expired")
            try:
                claims, key = double.verify_vapid(self.headers.get("Authorization", ""), sub.endpoint)
            except (ValueError, KeyError, json.JSONDecodeError) as exc:
                return self._answer(401, f"vapid: {exc}")
            if self.headers.get("Content-Encoding") != "aes128gcm":
                return self._answer(400, f"Content-Encoding {self.headers.get('Content-Encoding')!r}")
            ttl = self.headers.get("TTL")
            if ttl is None or not ttl.isdigit():
                return self._answer(400, "TTL header missing or not a number")
            try:
                plaintext = http_ece.decrypt(body, private_key=sub.private_key, auth_secret=sub.auth)
                payload = json.loads(plaintext)
            except Exception as exc:  # noqa: BLE001 - any decryption failure is the sender's fault
                return self._answer(400, f"cannot decrypt: {exc.__class__.__name__}")
            with double.lock:
                double.deliveries.append(
                    Delivery(
                        endpoint=sub.endpoint,
                        payload=payload,
                        claims=claims,
                        vapid_key=key,
                        headers={k.lower(): v for k, v in self.headers.items()},
                    )
                )
            return self._answer(201)

    return Handler


def start() -> PushDouble:
    server = ThreadingHTTPServer(("127.0.0.1", 0), None)  # handler set below (it needs the double)
    double = PushDouble(server=server)
    server.RequestHandlerClass = _handler(double)
    threading.Thread(target=server.serve_forever, daemon=True, name="push-double").start()
    return double


def stop(double: PushDouble) -> None:
    double.server.shutdown()
    double.server.server_close()
