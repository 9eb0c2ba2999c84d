"""Staff admin of surveys; importing the package registers every ModelAdmin.

dashboard: the participant dashboard (the participants changelist and change page with survey-derived
columns and sections); survey_data: instruments, instances, responses, corrections, doses, side effects,
reminders, coordinator tasks, prompt events and data queries.
"""

from . import survey_data
from .dashboard import ParticipantDashboardAdmin, dashboard_annotations

__all__ = ["ParticipantDashboardAdmin", "dashboard_annotations", "survey_data"]
