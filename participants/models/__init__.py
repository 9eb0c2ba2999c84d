"""Participants: enrolment, consent, randomisation, blinding, withdrawal, safety.

Arm-bearing data (arm names, allocations, dose-unit contents) are listed in participants.blinding.REGISTRY;
every interface that shows data consults it.

The models live by area: participant, consent, randomisation, safety, blinding, push (and the self-blinding
kits in participants.kit_models); every model is imported here so Django finds them and
`from participants.models import X` works."""

# Self-blinding kits live in their own module (ARM-BEARING: see participants.blinding.REGISTRY).
from ..kit_models import KitEnvelope
from .blinding import BlindingGuess, StaffBlindingGuess, SubstanceRecord, UnblindingRequest, UnblindingStatus
from .consent import ConsentDocument, ConsentSignature
from .participant import (
    ContactAccess,
    ContactDetails,
    EnrolmentCode,
    Participant,
    ParticipantStatus,
    StudyIdSequence,
    Withdrawal,
    WithdrawalScope,
    study_day_of,
)
from .push import PushSubscription
from .randomisation import Allocation, AllocationList, AllocationSlot, Arm, DoseUnit
from .safety import SERIOUSNESS_CRITERIA, AdverseEvent, AeAction, AeOutcome, AlertStatus, Relatedness, SafetyAlert

__all__ = [
    "AdverseEvent",
    "AeAction",
    "AeOutcome",
    "AlertStatus",
    "Allocation",
    "AllocationList",
    "AllocationSlot",
    "Arm",
    "BlindingGuess",
    "ConsentDocument",
    "ConsentSignature",
    "ContactAccess",
    "ContactDetails",
    "DoseUnit",
    "EnrolmentCode",
    "KitEnvelope",
    "Participant",
    "ParticipantStatus",
    "PushSubscription",
    "Relatedness",
    "SERIOUSNESS_CRITERIA",
    "SafetyAlert",
    "StaffBlindingGuess",
    "StudyIdSequence",
    "SubstanceRecord",
    "UnblindingRequest",
    "UnblindingStatus",
    "Withdrawal",
    "WithdrawalScope",
    "study_day_of",
]
