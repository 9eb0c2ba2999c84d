"""Staff admin of surveys; importing the package registers every ModelAdmin.

dashboard: the survey-derived columns, filters and sections of participants' dashboard (registered through
participants.dashboard in SurveysConfig.ready()); survey_data: instruments, instances, responses, corrections,
doses, side effects, reminders, coordinator tasks, prompt events and data queries.
"""

from . import survey_data
from .dashboard import DASHBOARD, dashboard_annotations

__all__ = ["DASHBOARD", "dashboard_annotations", "survey_data"]
