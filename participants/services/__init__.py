"""Writes of participant data (one module per workflow, re-exported here)."""

from .adverse_events import adverse_event_correct, adverse_event_create, adverse_event_safety_rules_run
from .allocation import (
    allocation_list_generate,
    allocation_list_import,
    allocation_simulate,
    participant_stratum,
)
from .blinding_guesses import blinding_time_points, staff_blinding_guess_record
from .consent import consent_record_paper, consent_sign
from .errors import InvalidEnrolmentCode, NotConsented, StratumExhausted, Withdrawn, WorkflowError
from .randomisation import allocation_exhausted_alert, participant_randomise, unit_codes_of
from .records import participant_lock, participant_tokens_revoke
from .registration import (
    contact_for_delivery,
    contact_rotate_keys,
    contact_update,
    contact_view,
    enrolment_code_issuable,
    enrolment_code_issue,
    enrolment_code_live,
    participant_enrol,
    participant_register,
    participant_settings_update,
)
from .safety import safety_alert_acknowledge, safety_alert_raise
from .unblinding import unblinding_decide, unblinding_request, unblinding_reveal
from .withdrawal import participant_withdraw

__all__ = [
    "InvalidEnrolmentCode",
    "NotConsented",
    "StratumExhausted",
    "WorkflowError",
    "Withdrawn",
    "adverse_event_correct",
    "adverse_event_create",
    "adverse_event_safety_rules_run",
    "allocation_exhausted_alert",
    "allocation_list_generate",
    "allocation_list_import",
    "allocation_simulate",
    "blinding_time_points",
    "consent_record_paper",
    "consent_sign",
    "contact_for_delivery",
    "contact_rotate_keys",
    "contact_update",
    "contact_view",
    "enrolment_code_issuable",
    "enrolment_code_issue",
    "enrolment_code_live",
    "participant_enrol",
    "participant_lock",
    "participant_randomise",
    "participant_register",
    "participant_settings_update",
    "participant_stratum",
    "participant_tokens_revoke",
    "participant_withdraw",
    "safety_alert_acknowledge",
    "safety_alert_raise",
    "staff_blinding_guess_record",
    "unblinding_decide",
    "unblinding_request",
    "unblinding_reveal",
    "unit_codes_of",
]
