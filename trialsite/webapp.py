"""The participant web app (issue 10): one HTML shell for /app/ and every deep link under it, the service
worker at /app/sw.js (scope /app/), all under a strict Content-Security-Policy with no inline script.

The app is static ES modules under trialsite/static/app/ talking only to the public /api/v1/ contract; this
module only serves the shell. It imports no app (trialsite is the spine)."""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cache, wraps
from pathlib import Path

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.views.decorators.http import require_GET

APP_STATIC = Path(__file__).resolve().parent / "static" / "app"
# Loaded on demand, never part of the shell: the QR decoder (only where BarcodeDetector is missing) and the
# accessibility engine (tests only).
NOT_IN_SHELL = {"vendor/jsQR.js", "vendor/axe.min.js", "vendor/VENDOR.json", "vendor/VENDOR.md"}


def import_map() -> str:
    """The page's import map (inline, pinned by its hash in the CSP: an import map cannot be external)."""
    return json.dumps({"imports": {"idb": static("app/vendor/idb.js")}}, separators=(",", ":"))


def shell_files() -> list[str]:
    """Every static file of the shell, relative to static/app/, sorted."""
    files = []
    for path in sorted(APP_STATIC.rglob("*")):
        rel = path.relative_to(APP_STATIC).as_posix()
        if path.is_file() and rel not in NOT_IN_SHELL:
            files.append(rel)
    return files


def preload_modules() -> list[str]:
    """Every module of the first screens, announced up front so a slow network fetches them in parallel
    instead of one import level after another."""
    core = ["js/main.js", "js/router.js", "js/store.js", "js/api.js", "js/queue.js", "js/i18n.js", "js/ui.js"]
    return [static(f"app/{rel}") for rel in [*core, "js/session.js", "vendor/idb.js", "js/screens/home.js"]]


@cache
def _shell_version_cached(_mtimes: tuple) -> str:
    digest = hashlib.sha256()
    for rel in shell_files():
        digest.update(rel.encode())
        digest.update((APP_STATIC / rel).read_bytes())
    digest.update(import_map().encode())
    return digest.hexdigest()[:16]


def shell_version() -> str:
    """A hash of the shell's files: any change to the app makes a new service worker (and a new cache)."""
    mtimes = tuple((APP_STATIC / rel).stat().st_mtime_ns for rel in shell_files())
    return _shell_version_cached(mtimes)


def csp_header(*, script_hashes: tuple[str, ...] = ()) -> str:
    scripts = " ".join(["'self'", *(f"'sha256-{h}'" for h in script_hashes)])
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src {scripts}",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "connect-src 'self'",
            "worker-src 'self'",
            "manifest-src 'self'",
            "media-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def with_app_headers(view):
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response.headers.setdefault("Content-Security-Policy", csp_header())
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Permissions-Policy"] = "camera=(self), geolocation=(), microphone=()"
        return response

    return wrapped


@require_GET
@with_app_headers
def app_shell(request, path: str = ""):
    """/app/ and every deep link under it (/app/enrol, /app/survey/<uuid>, …): the same shell; the router in
    the page decides. The enrolment code travels in the fragment, which never reaches this view."""
    imports = import_map()
    digest = base64.b64encode(hashlib.sha256(imports.encode()).digest()).decode()
    response = render(
        request,
        "app/index.html",
        {
            "import_map": imports,
            "preload": preload_modules(),
            "shell_version": shell_version(),
            "app_version": settings.SOFTWARE_VERSION,
        },
    )
    response.headers["Content-Security-Policy"] = csp_header(script_hashes=(digest,))
    response.headers["Cache-Control"] = "no-cache"
    return response


@require_GET
@with_app_headers
def service_worker(request):
    """The service worker, served from /app/ so that its scope is /app/. `no-cache` makes the browser check
    for a new one on every navigation; the shell version and file list are filled in here."""
    source = (APP_STATIC / "sw.js").read_text(encoding="utf-8")
    shell = ["/app/", *(static(f"app/{rel}") for rel in shell_files() if rel != "sw.js")]
    source = source.replace("__SHELL_VERSION__", shell_version()).replace("__SHELL_FILES__", json.dumps(shell))
    response = HttpResponse(source, content_type="text/javascript; charset=utf-8")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Service-Worker-Allowed"] = "/app/"
    return response
