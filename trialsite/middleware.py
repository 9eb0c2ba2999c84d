import time
import uuid

import pghistory
from django.conf import settings
from django.contrib.auth import logout
from django.http import JsonResponse


class RequestIdMiddleware:
    """Gives every request an id (from X-Request-ID when sane) that lands in logs and the audit trail."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        try:
            request.request_id = str(uuid.UUID(incoming))
        except ValueError:
            request.request_id = str(uuid.uuid4())
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response


class NulGuardMiddleware:
    """A NUL character in the URL or query string is bad input (PostgreSQL text cannot hold it): answer 400
    in the API's error shape before any view can pass it to the database."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if self.has_nul(request):
            from trialsite.api.errors import error_body

            return JsonResponse(
                error_body("validation_error", "The URL may not contain NUL (%00) characters."), status=400
            )
        return self.get_response(request)

    @staticmethod
    def has_nul(request) -> bool:
        if "\x00" in request.path:
            return True
        return any("\x00" in key or any("\x00" in v for v in values) for key, values in request.GET.lists())


class AuditContextMiddleware:
    """Every write inside a request is grouped in one audit context with the user, URL and request id."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method not in settings.PGHISTORY_MIDDLEWARE_METHODS:
            return self.get_response(request)
        user = getattr(request, "user", None)
        user_id = user.pk if user is not None and getattr(user, "is_authenticated", False) else None
        with pghistory.context(user=user_id, url=request.path, request_id=getattr(request, "request_id", None)):
            return self.get_response(request)


class SessionExpiryMiddleware:
    """Absolute session lifetime (idle expiry is SESSION_COOKIE_AGE with SESSION_SAVE_EVERY_REQUEST)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        session = getattr(request, "session", None)
        if session is not None and getattr(request, "user", None) is not None and request.user.is_authenticated:
            started = session.get("_trialsite_started")
            now = int(time.time())
            if started is None:
                session["_trialsite_started"] = now
            elif now - int(started) > settings.SESSION_ABSOLUTE_MAX_AGE:
                logout(request)
        return self.get_response(request)


class HealthCheckMiddleware:
    """`GET /health` answers whatever the Host header says (first in MIDDLEWARE, before host validation).

    Container and load-balancer health checks call the server by address (`http://127.0.0.1:8000/health`),
    which production `ALLOWED_HOSTS` rightly rejects everywhere else. The health answer is safe to give to
    any host: it builds no URL from the Host header, sets no cookie and reads no session; every other path
    (including `/health/`) still goes through host validation, HTTPS redirect and the rest of the stack.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info == "/health" and request.method in ("GET", "HEAD"):
            from trialsite.api.health import health

            return health(request)
        return self.get_response(request)
