"""Refusals raised by surveys services; the API turns them into the contract's error body by `code`."""

from __future__ import annotations


class SurveyError(Exception):
    code = "conflict"
    status = 409

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None, fields=None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        if code:
            self.code = code
        if status:
            self.status = status


class InvalidInput(SurveyError):
    code = "validation_error"
    status = 400


class NotFound(SurveyError):
    code = "not_found"
    status = 404


class IdempotencyMismatch(SurveyError):
    code = "idempotency_mismatch"

    def __init__(self, message: str = "This Idempotency-Key was used with a different request.", **kw):
        super().__init__(message, **kw)
