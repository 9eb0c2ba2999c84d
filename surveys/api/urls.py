"""/api/v1/ routes of the surveys app (participant phone API)."""

from django.urls import path

from . import views

urlpatterns = [
    path("surveys", views.SurveyListApi.as_view(), name="surveys-list"),
    path("surveys/<uuid:instance_id>/response", views.SurveyResponseSubmitApi.as_view(), name="surveys-response"),
    path("instruments/<slug:slug>", views.InstrumentDetailApi.as_view(), name="instruments-detail"),
    path("doses", views.DoseApi.as_view(), name="doses"),
    path("side-effects", views.SideEffectCreateApi.as_view(), name="side-effects"),
    path("events", views.PromptEventCreateApi.as_view(), name="events"),
    path("sync", views.SyncApi.as_view(), name="sync"),
    path("kit", views.KitApi.as_view(), name="kit"),
    path("fhir/Questionnaire/<slug:slug>", views.FhirQuestionnaireApi.as_view(), name="fhir-questionnaire"),
    path(
        "fhir/QuestionnaireResponse", views.FhirQuestionnaireResponseApi.as_view(), name="fhir-questionnaire-response"
    ),
]
