"""Workflow refusals raised by participants services; the API turns them into 4xx answers by `code`."""

from __future__ import annotations


class WorkflowError(Exception):
    """A request that conflicts with the participant's state (HTTP 409 unless stated otherwise)."""

    code = "conflict"
    status = 409

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class NotConsented(WorkflowError):
    code = "not_consented"


class Withdrawn(WorkflowError):
    code = "withdrawn"


class StratumExhausted(WorkflowError):
    code = "conflict"

    def __init__(self, message: str, *, stratum: str):
        super().__init__(message)
        self.stratum = stratum


class InvalidEnrolmentCode(WorkflowError):
    """Unknown, used, expired or malformed: one answer for all, so it tells nothing about which codes exist."""

    code = "invalid_enrolment_code"
    status = 400
    MESSAGE = "This enrolment code is not valid. Ask the study team for a new one."

    def __init__(self, message: str | None = None):
        super().__init__(message or self.MESSAGE)
