"""One error shape for the whole API: {"error": {"code", "message", "fields"}}.

Views raise ApiError subclasses (or DRF/Django exceptions); this handler turns every one of them into the
contract's body with a stable machine code. Bad input never becomes a 500.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from trialsite.policy import RecordLocked


class ApiError(exceptions.APIException):
    status_code = 400
    default_code = "validation_error"
    default_detail = "Invalid request."

    def __init__(self, message: str | None = None, *, fields: dict | None = None, code: str | None = None):
        super().__init__(detail=message or self.default_detail, code=code or self.default_code)
        self.error_code = code or self.default_code
        self.fields = fields or {}


class ValidationFailed(ApiError):
    status_code = 400
    default_code = "validation_error"
    default_detail = "The request is not valid."


class Conflict(ApiError):
    status_code = 409
    default_code = "conflict"
    default_detail = "The request conflicts with the current state."


class NotFound(ApiError):
    status_code = 404
    default_code = "not_found"
    default_detail = "Not found."


class Forbidden(ApiError):
    status_code = 403
    default_code = "permission_denied"
    default_detail = "You do not have permission to do this."


def flatten_fields(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail → {"answers.phq9_3": ["..."]}."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = str(key)
            if name in ("non_field_errors", "__all__"):
                name = ""
            path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            out.update(flatten_fields(value, path))
    elif isinstance(detail, list):
        if all(not isinstance(v, (dict, list)) for v in detail):
            out.setdefault(prefix or "non_field_errors", []).extend(str(v) for v in detail)
        else:
            for i, value in enumerate(detail):
                out.update(flatten_fields(value, f"{prefix}[{i}]" if prefix else f"[{i}]"))
    else:
        out.setdefault(prefix or "non_field_errors", []).append(str(detail))
    return out


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return {"error": body}


_STATUS_CODES = {
    400: "validation_error",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "throttled",
}


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        fields = flatten_fields(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
        return Response(error_body("validation_error", "The request is not valid.", fields), status=400)
    if isinstance(exc, RecordLocked):  # before PermissionDenied: a lock is a 409 that says why
        return Response(error_body("conflict", exc.message), status=409)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)

    if isinstance(exc, ApiError):
        response = Response(error_body(exc.error_code, str(exc.detail), exc.fields), status=exc.status_code)
        return response

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a real server error: let Django log it and answer 500
    code = _STATUS_CODES.get(response.status_code, "error")
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body("validation_error", "The request is not valid.", flatten_fields(exc.detail))
    else:
        detail = getattr(exc, "detail", "")
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            code = "not_authenticated"
            response.status_code = 401
        elif isinstance(exc, exceptions.Throttled):
            code = "throttled"
        elif isinstance(exc, exceptions.ParseError):
            code = "validation_error"
        response.data = error_body(code, str(detail) if not isinstance(detail, (dict, list)) else "Error.")
    if response.status_code == 401 and "WWW-Authenticate" not in response:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def json_error(request, code: str, message: str, status_code: int) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status_code)


def handler404(request, exception=None):
    if request.path.startswith("/api/"):
        return json_error(request, "not_found", "Not found.", status.HTTP_404_NOT_FOUND)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    if request.path.startswith("/api/"):
        return json_error(request, "server_error", "Internal server error.", 500)
    from django.views.defaults import server_error

    return server_error(request)


def parse_key(raw, *, field: str = "idempotency_key") -> uuid.UUID:
    try:
        return uuid.UUID(str(raw).strip())
    except (ValueError, AttributeError, TypeError):
        raise ApiError("The idempotency key must be a UUID.", fields={field: ["Must be a UUID."]})
