"""The participant phone API of the surveys app (see surveys.py)."""

from .surveys import (
    DoseApi,
    FhirQuestionnaireApi,
    FhirQuestionnaireResponseApi,
    InstrumentDetailApi,
    PromptEventCreateApi,
    SideEffectCreateApi,
    SurveyListApi,
    SurveyResponseSubmitApi,
    SyncApi,
)

__all__ = [
    "DoseApi",
    "FhirQuestionnaireApi",
    "FhirQuestionnaireResponseApi",
    "InstrumentDetailApi",
    "PromptEventCreateApi",
    "SideEffectCreateApi",
    "SurveyListApi",
    "SurveyResponseSubmitApi",
    "SyncApi",
]
