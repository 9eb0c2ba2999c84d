"""Throttles of the API (rates in settings: REST_FRAMEWORK's DEFAULT_THROTTLE_RATES)."""

from __future__ import annotations

import logging

from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

log = logging.getLogger(__name__)


class ClientAddressThrottle(ScopedRateThrottle):
    """Throttle per client address. X-Forwarded-For is client-controlled, so it is trusted only for the
    number of proxies the deployment declares (TRUSTED_PROXY_COUNT → DRF's NUM_PROXIES): then the address
    that the outermost trusted proxy saw counts. Without proxies, REMOTE_ADDR counts."""

    def get_ident(self, request):
        if api_settings.NUM_PROXIES:
            return super().get_ident(request)
        return request.META.get("REMOTE_ADDR") or "unknown"

    def allow_request(self, request, view):
        # The counters live in the Redis cache (short socket timeouts in settings). Redis down or hanging must
        # not turn enrolment or staff sign-in into a 500: the throttle lets the request through and says so in
        # the log. Staff passwords stay protected by axes' lock-out, kept in PostgreSQL; enrolment codes are
        # one-time, expiring and long enough that an outage's worth of unthrottled guesses is negligible.
        try:
            return super().allow_request(request, view)
        except Exception as exc:  # noqa: BLE001 - any cache failure: degrade open, never fail the request
            log.warning("throttle %s: cache unreachable (%s: %s); request allowed", self.scope, type(exc).__name__, exc)
            return True
