"""FHIR views of the participant phone API (API.md): Questionnaire and QuestionnaireResponse."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response

from ... import fhir
from ...errors import SurveyError
from ...selectors import instrument_current, survey_instance_get
from ...services import survey_response_submit
from ..common import ParticipantApiView, as_api_error, errors
from .surveys import SubmitOutput


class FhirQuestionnaireApi(ParticipantApiView):
    @extend_schema(
        tags=["participant: FHIR"],
        operation_id="fhir_questionnaire_retrieve",
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="FHIR R4 Questionnaire"),
            **errors(401, 403, 404),
        },
    )
    def get(self, request, slug: str):
        instrument = instrument_current(trial_id=request.participant.trial_id, slug=slug)
        if instrument is None:
            raise Http404
        return Response(fhir.questionnaire(instrument=instrument, trial_slug=request.participant.trial.slug))


class FhirQuestionnaireResponseApi(ParticipantApiView):
    @extend_schema(
        tags=["participant: FHIR"],
        operation_id="fhir_questionnaire_response_create",
        request=OpenApiTypes.OBJECT,
        responses={
            201: SubmitOutput,
            200: OpenApiResponse(SubmitOutput, description="replay"),
            **errors(400, 401, 403, 404, 409),
        },
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.UUID,
                OpenApiParameter.HEADER,
                required=False,
                description="Ignored: the resource's id is the idempotency key.",
            )
        ],
    )
    def post(self, request):
        participant = request.participant
        try:
            parsed = fhir.parse_questionnaire_response(request.data)
            instance = survey_instance_get(participant=participant, uuid=parsed["instance"])
            if instance is None:
                raise Http404
            answers = fhir.answers_from_items(instance.instrument.definition, parsed["items"])
            result = survey_response_submit(
                participant=participant,
                instance_id=instance.uuid,
                idempotency_key=parsed["key"],
                answers=answers,
                authored=parsed["authored"],
                source="fhir",
            )
        except SurveyError as exc:
            raise as_api_error(exc)
        return Response(result.body, status=result.status_code)
