"""The participant phone API of the surveys app: surveys.py (surveys, instruments, responses, doses, side
effects, events), sync.py (offline sync), fhir.py (FHIR views)."""

from .fhir import FhirQuestionnaireApi, FhirQuestionnaireResponseApi
from .kit import KitApi
from .surveys import (
    DoseApi,
    InstrumentDetailApi,
    PromptEventCreateApi,
    SideEffectCreateApi,
    SurveyListApi,
    SurveyResponseSubmitApi,
)
from .sync import SyncApi

__all__ = [
    "DoseApi",
    "FhirQuestionnaireApi",
    "FhirQuestionnaireResponseApi",
    "InstrumentDetailApi",
    "KitApi",
    "PromptEventCreateApi",
    "SideEffectCreateApi",
    "SurveyListApi",
    "SurveyResponseSubmitApi",
    "SyncApi",
]
