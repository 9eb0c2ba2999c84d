"""What the enrolment QR code holds: the participant app's enrol page with the code in the URL fragment.

`<PUBLIC_BASE_URL>/app/enrol#<CODE>`: a phone camera opens it in the browser; the fragment never reaches a
server (nor its access log), and the app reads it to enrol. The code stays typeable by hand.
"""

from __future__ import annotations

import segno
from django.conf import settings


def app_url(page: str, code: str) -> str:
    """`<PUBLIC_BASE_URL>/app/<page>#<code>`: the code travels in the fragment, never to a server."""
    base = (getattr(settings, "PUBLIC_BASE_URL", "") or "").rstrip("/")
    return f"{base}/app/{page}#{code}"


def enrolment_url(code: str) -> str:
    return app_url("enrol", code)


def enrolment_qr(code: str) -> segno.QRCode:
    return segno.make(enrolment_url(code), error="m")


def enrolment_qr_svg(code: str) -> str:
    """Inline SVG (no XML declaration) of the enrolment QR code."""
    return enrolment_qr(code).svg_inline(scale=6)


def kit_url(code: str) -> str:
    """What a self-blinding envelope's QR label holds: the app's kit page with the envelope code."""
    return app_url("kit", code)


def kit_qr_svg(code: str, *, scale: int = 4) -> str:
    """Inline SVG of an envelope's QR label."""
    return segno.make(kit_url(code), error="m").svg_inline(scale=scale)
