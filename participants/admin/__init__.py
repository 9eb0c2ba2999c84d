"""Staff admin of participants (see participants/admin/participants.py); importing the package registers
every ModelAdmin."""

from .participants import STAFF_ROLES, OpenAlertsFilter, ParticipantAdmin, error_text, intermediate, qr_svg

__all__ = ["STAFF_ROLES", "OpenAlertsFilter", "ParticipantAdmin", "error_text", "intermediate", "qr_svg"]
