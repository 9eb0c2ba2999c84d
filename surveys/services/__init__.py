"""Writes of survey data (one module per workflow, re-exported here)."""

from .responses import dose_log_create, prompt_event_record, side_effect_report, survey_response_submit
from .schedule import (
    survey_instances_cancel_future,
    survey_instances_plan,
    survey_instances_replan_trial,
)
from .side_effects import side_effect_correct, side_effect_safety_rules_run

__all__ = [
    "dose_log_create",
    "prompt_event_record",
    "side_effect_correct",
    "side_effect_report",
    "side_effect_safety_rules_run",
    "survey_instances_cancel_future",
    "survey_instances_plan",
    "survey_instances_replan_trial",
    "survey_response_submit",
]
