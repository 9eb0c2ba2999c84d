"""Staff admin of survey data, and the participant dashboard; importing the package registers every
ModelAdmin."""

from .survey_data import ParticipantDashboardAdmin, dashboard_annotations

__all__ = ["ParticipantDashboardAdmin", "dashboard_annotations"]
