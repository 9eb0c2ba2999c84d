"""Staff admin of participants, one module per area; importing the package registers every ModelAdmin.

participants: registration, enrolment code, the participant list and change page, consent;
safety: the safety queue; adverse_events; unblinding: emergency unblinding; allocation: withdrawals and
the (unblinded-only) allocation tables; contact_access: who viewed contact details; blinding_guesses:
coordinators' blinding guesses; substance: what participants' own active units contain.
"""

from trialsite.admin_scoping import STAFF_ROLES

from . import adverse_events, allocation, blinding_guesses, contact_access, safety, substance, unblinding
from .participants import OpenAlertsFilter, ParticipantAdmin, error_text, intermediate, qr_svg

__all__ = [
    "STAFF_ROLES",
    "OpenAlertsFilter",
    "ParticipantAdmin",
    "adverse_events",
    "allocation",
    "blinding_guesses",
    "contact_access",
    "error_text",
    "intermediate",
    "qr_svg",
    "safety",
    "substance",
    "unblinding",
]
