"""Shared pieces of the surveys phone API: error mapping, aware timestamps, idempotency keys, schema helpers."""

from __future__ import annotations

import uuid

from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.views import APIView

from trialsite.api.errors import (
    ApiError,
    parse_key,  # noqa: F401 - re-exported for the surveys views
)
from trialsite.api.pagination import ResultsPagination
from trialsite.api.permissions import IsParticipant
from trialsite.api.schema import ErrorBody, error_responses

from ..errors import SurveyError
from ..validation import instant_in_range

__all__ = ["ErrorBody", "ResultsPagination"]

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.UUID,
    OpenApiParameter.HEADER,
    required=True,
    description="A client-generated UUID; a retry with the same key and body returns the first answer (200).",
)

_ERROR_TEXT = {
    400: "validation_error: `fields` names each problem (e.g. `answers.phq9_3`)",
    401: "not_authenticated",
    403: "permission_denied (not a participant's token)",
    404: "not_found",
    409: "conflict / idempotency_mismatch / window_not_open / window_closed / not_consented / withdrawn",
}


def errors(*codes: int) -> dict:
    return error_responses(_ERROR_TEXT, *codes)


def as_api_error(exc: SurveyError) -> ApiError:
    err = ApiError(exc.message, code=exc.code, fields=exc.fields)
    err.status_code = exc.status
    return err


class ParticipantApiView(APIView):
    """Phone endpoints: a participant's bearer token; surveys refusals become the contract's error body."""

    permission_classes = [IsParticipant]

    def handle_exception(self, exc):
        if isinstance(exc, SurveyError):
            exc = as_api_error(exc)
        return super().handle_exception(exc)


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 timestamp that must carry an offset (a naive one is a 400); the offset is kept."""

    default_error_messages = {
        "invalid": "An ISO 8601 timestamp with an offset is expected, e.g. 2026-03-01T20:15:00+00:00.",
        "naive": "The timestamp needs an offset (e.g. +01:00 or Z).",
        "range": "The timestamp is out of range.",
    }

    def to_internal_value(self, value):
        if not isinstance(value, str):
            self.fail("invalid")
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:
            parsed = None
        if parsed is None:
            self.fail("invalid")
        if parsed.tzinfo is None:
            self.fail("naive")
        try:
            parsed.utcoffset()
            parsed.timestamp()
        except (OverflowError, ValueError):
            self.fail("invalid")
        if not instant_in_range(parsed):
            self.fail("range")
        return parsed


def idempotency_key(request) -> uuid.UUID:
    raw = request.headers.get("Idempotency-Key")
    if not raw:
        raise ApiError("An Idempotency-Key header is required.", fields={"Idempotency-Key": ["A UUID is required."]})
    return parse_key(raw, field="Idempotency-Key")
