"""Shared pieces of the participants API: workflow refusals in the contract's error body. The API's shared
material (permissions, pagination, throttles, the error schema) lives in the spine (trialsite.api)."""

from __future__ import annotations

from rest_framework.views import APIView

from trialsite.api.errors import ApiError
from trialsite.api.schema import errors

from ..services.errors import WorkflowError

__all__ = ["ParticipantsApiView", "errors"]


class ParticipantsApiView(APIView):
    """Turns workflow refusals from services into the contract's error body (409 unless stated)."""

    def handle_exception(self, exc):
        if isinstance(exc, WorkflowError):
            api_exc = ApiError(exc.message, code=exc.code)
            api_exc.status_code = exc.status
            exc = api_exc
        return super().handle_exception(exc)
