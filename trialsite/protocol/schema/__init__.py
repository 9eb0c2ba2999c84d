"""The protocol file format (protocols/*.yaml), validated before anything is stored.

Every error names its place in the file (`schedule[2].instrument`) and the problem. The format is
documented in docs/protocol-format.md; keep the two together.

The models live by area: `base` (strict model, durations, keys, languages), `design` (arms, randomisation,
consent, dosing, sites, self-blinding), `instruments`, `schedule` (schedule and reminders), `safety`, and
`protocol` (the whole file and its cross-field checks). Import them from here.
"""

from .base import KEY, LANGUAGE, SLUG, Duration, Language, LocalText, Strict, _duration_str, parse_duration
from .design import (
    Arm,
    ConsentDoc,
    Criterion,
    DoseUnits,
    Dosing,
    Enrolment,
    Randomisation,
    SelfBlinding,
    Site,
    Stratum,
    Substance,
    TrialInfo,
)
from .instruments import (
    ITEM_TYPES,
    Band,
    Choice,
    Coding,
    Instrument,
    InstrumentTranslation,
    Item,
    Score,
    Scoring,
    SkipCondition,
)
from .protocol import Protocol
from .safety import Condition, Safety, SafetyContact, SafetyRule
from .schedule import AfterDose, Message, MissedRule, QuietHours, Recurrence, Reminders, ReminderStage, ScheduleEvent

__all__ = [
    "ITEM_TYPES",
    "KEY",
    "LANGUAGE",
    "SLUG",
    "AfterDose",
    "Arm",
    "Band",
    "Choice",
    "Coding",
    "Condition",
    "ConsentDoc",
    "Criterion",
    "DoseUnits",
    "Dosing",
    "Duration",
    "Enrolment",
    "Instrument",
    "InstrumentTranslation",
    "Item",
    "Language",
    "LocalText",
    "Message",
    "MissedRule",
    "Protocol",
    "QuietHours",
    "Randomisation",
    "Recurrence",
    "ReminderStage",
    "Reminders",
    "Safety",
    "SafetyContact",
    "SafetyRule",
    "ScheduleEvent",
    "Score",
    "Scoring",
    "SelfBlinding",
    "Site",
    "SkipCondition",
    "Stratum",
    "Strict",
    "Substance",
    "TrialInfo",
    "_duration_str",
    "parse_duration",
]
