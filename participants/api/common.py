"""Shared pieces of the participants API: error mapping, throttles, pagination, schema helpers."""

from __future__ import annotations

import logging

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from trialsite.api.errors import ApiError

from ..services.errors import WorkflowError

log = logging.getLogger(__name__)


class ParticipantsApiView(APIView):
    """Turns workflow refusals from services into the contract's error body (409 unless stated)."""

    def handle_exception(self, exc):
        if isinstance(exc, WorkflowError):
            api_exc = ApiError(exc.message, code=exc.code)
            api_exc.status_code = exc.status
            exc = api_exc
        return super().handle_exception(exc)


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


class ResultsPagination(LimitOffsetPagination):
    """{"results": [...], "next": url|null} as in API.md."""

    default_limit = 50
    max_limit = 200

    def get_paginated_response(self, data):
        return Response({"results": data, "next": self.get_next_link()})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {"results": schema, "next": {"type": "string", "nullable": True, "format": "uri"}},
        }


ErrorBody = inline_serializer(
    name="ErrorBody",
    fields={
        "error": inline_serializer(
            name="ErrorDetail",
            fields={
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "fields": serializers.DictField(
                    child=serializers.ListField(child=serializers.CharField()), required=False
                ),
            },
        )
    },
)


def errors(*codes: int) -> dict:
    text = {
        400: "validation_error (or invalid_enrolment_code)",
        401: "not_authenticated",
        403: "permission_denied",
        404: "not_found",
        409: "conflict / not_consented / withdrawn",
        429: "throttled",
    }
    return {code: OpenApiResponse(ErrorBody, description=text.get(code, "")) for code in codes}
