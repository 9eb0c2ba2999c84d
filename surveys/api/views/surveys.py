"""The participant phone API of the surveys app (API.md): surveys, instruments, responses, doses, side
effects, prompt telemetry (offline sync: sync.py, FHIR: fhir.py). One view per operation; business rules live in
surveys.services and surveys.selectors."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.http import Http404
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.fields import empty
from rest_framework.response import Response

from trialsite.api.lean import LeanGet
from trialsite.api.rendering import render, validated
from trialsite.protocol.schema import ITEM_TYPES

from ...errors import SurveyError
from ...models import Severity
from ...selectors import PHONE_STATUSES, InstancePages, dose_list, instance_phone_status, instrument_current
from ...services import dose_log_create, prompt_event_record, side_effect_report, survey_response_submit
from ..common import (
    IDEMPOTENCY_HEADER,
    AwareDateTimeField,
    ParticipantApiView,
    ResultsPagination,
    as_api_error,
    errors,
    idempotency_key,
)

TAGS = ["participant: surveys"]


class SubmitOutput(serializers.Serializer):
    id = serializers.UUIDField()
    instance = serializers.UUIDField()
    received_at = serializers.DateTimeField()
    late = serializers.BooleanField()


class SurveyListApi(LeanGet, ParticipantApiView):
    @extend_schema_serializer(component_name="SurveyListFilter")
    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=PHONE_STATUSES, required=False)

    @extend_schema_serializer(component_name="SurveyInstance")
    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField(source="uuid")
        instrument = inline_serializer(
            name="SurveyInstrumentRef",
            fields={
                "slug": serializers.CharField(),
                "version": serializers.IntegerField(),
                "title": serializers.CharField(),
            },
        )
        scheduled_local = serializers.CharField(read_only=True, help_text="the opening time in the instance's zone")
        timezone = serializers.CharField()
        study_day = serializers.IntegerField()
        opens_at = serializers.DateTimeField()
        closes_at = serializers.DateTimeField()
        late_until = serializers.DateTimeField(source="grace_until")
        status = serializers.CharField(read_only=True, help_text="open, upcoming, completed, missed")

    @extend_schema(
        tags=TAGS,
        operation_id="surveys_list",
        parameters=[FilterSerializer],
        responses={200: OutputSerializer(many=True), **errors(400, 401, 403)},
    )
    def get(self, request):
        filters = validated(self.FilterSerializer, request.query_params)
        now = timezone.now()
        pages = InstancePages(participant=request.participant, status=filters.get("status"), now=now)
        paginator = ResultsPagination()
        page = paginator.paginate_queryset(pages, request, view=self)
        return paginator.get_paginated_response([render(self.OutputSerializer, _listed(i, now)) for i in page])

    # drf-spectacular reads the paginated shape from here.
    pagination_class = ResultsPagination


def _listed(instance, now) -> dict:
    """What SurveyListApi.OutputSerializer renders for one instance (by its one bound instance: no per-request
    copy of its fields, trialsite.api.rendering)."""
    return {
        "uuid": instance.uuid,
        "instrument": instance.instrument,
        "scheduled_local": instance.opens_at.astimezone(ZoneInfo(instance.timezone)).isoformat(),
        "timezone": instance.timezone,
        "study_day": instance.study_day,
        "opens_at": instance.opens_at,
        "closes_at": instance.closes_at,
        "grace_until": instance.grace_until,
        "status": instance_phone_status(instance, now),
    }


class InstrumentDetailApi(ParticipantApiView):
    @extend_schema_serializer(component_name="InstrumentDefinition")
    class OutputSerializer(serializers.Serializer):
        slug = serializers.CharField()
        version = serializers.IntegerField()
        language = serializers.CharField(help_text="the language of the texts below (BCP 47, e.g. en, es)")
        title = serializers.CharField()
        stem = serializers.CharField(allow_null=True)
        items = inline_serializer(
            name="InstrumentItem",
            many=True,
            fields={
                "key": serializers.CharField(),
                "text": serializers.CharField(),
                "type": serializers.ChoiceField(choices=list(ITEM_TYPES)),
                "required": serializers.BooleanField(),
                "options": inline_serializer(
                    name="InstrumentOption",
                    many=True,
                    fields={"value": serializers.JSONField(), "label": serializers.CharField()},
                ),
                "min": serializers.FloatField(allow_null=True),
                "max": serializers.FloatField(allow_null=True),
                "step": serializers.FloatField(allow_null=True),
                "max_length": serializers.IntegerField(allow_null=True),
                "enable_when": serializers.JSONField(allow_null=True),
            },
        )

    @extend_schema(
        tags=TAGS,
        operation_id="instruments_retrieve",
        parameters=[
            OpenApiParameter(
                "lang",
                str,
                required=False,
                description="wanted language (e.g. es); else Accept-Language; else the protocol's default",
            )
        ],
        responses={200: OutputSerializer, **errors(401, 403, 404)},
    )
    def get(self, request, slug: str):
        from trialsite.protocol.i18n import negotiate
        from trialsite.protocol.services import protocol_current

        instrument = instrument_current(trial_id=request.participant.trial_id, slug=slug)
        if instrument is None:
            raise Http404
        d = instrument.definition
        from ...validation import item_choices

        default = protocol_current(request.participant.trial_id).language
        translations = d.get("translations") or {}
        language = negotiate(
            available=list(translations),
            default=default,
            lang=request.query_params.get("lang"),
            accept_language=request.headers.get("Accept-Language"),
        )
        tr = translations.get(language) or {}
        texts, labels = tr.get("items") or {}, tr.get("choices") or {}

        def label(item: dict, choice: dict) -> str:
            name = item["choices"] if isinstance(item.get("choices"), str) else item["key"]
            return (labels.get(name) or {}).get(str(choice["value"])) or choice["label"]

        items = [
            {
                "key": i["key"],
                "text": texts.get(i["key"]) or i["text"],
                "type": i["type"],
                "required": bool(i.get("required", True)),
                "options": [{"value": c["value"], "label": label(i, c)} for c in item_choices(d, i)],
                "min": i.get("min"),
                "max": i.get("max"),
                "step": i.get("step"),
                "max_length": i.get("max_length"),
                "enable_when": i.get("enable_when"),
            }
            for i in d["items"]
        ]
        # Scoring rules are never sent to the phone.
        body = {
            "slug": instrument.slug,
            "version": instrument.version,
            "language": language,
            "title": tr.get("title") or instrument.title,
            "stem": tr.get("stem") or d.get("stem"),
            "items": items,
        }
        response = Response(body)
        response["Content-Language"] = language
        patch_vary_headers(response, ["Accept-Language"])
        return response


class ResponseInput(serializers.Serializer):
    """The body of a survey response: the request's schema, and the fields response_input checks with."""

    answers = serializers.DictField(child=serializers.JSONField(allow_null=True), allow_empty=True)
    authored = AwareDateTimeField()


def response_input(data: dict) -> tuple[dict, datetime]:
    """(answers, authored) of a response body (a JSON object), or a 400 naming each field at fault.

    ResponseInput's checks and messages, field by field in its order, run by its own field instances (made once
    with the class, shared, never bound): a serializer instance would deep-copy its fields on every request
    (issue 14: the submission's hottest Python after authentication). What the answers must be is decided by
    the instrument's definition (surveys.validation), not here."""
    problems, values = {}, []
    for name, field in ResponseInput._declared_fields.items():
        try:
            values.append(field.run_validation(data.get(name, empty)))
        except ValidationError as exc:
            problems[name] = exc.detail
    if problems:
        raise ValidationError(problems)
    answers, authored = values
    return answers, authored


class SurveyResponseSubmitApi(ParticipantApiView):
    InputSerializer = ResponseInput

    @extend_schema(
        tags=TAGS,
        operation_id="surveys_response_create",
        parameters=[IDEMPOTENCY_HEADER],
        request=InputSerializer,
        responses={
            201: SubmitOutput,
            200: OpenApiResponse(SubmitOutput, description="a replay of an earlier identical request"),
            **errors(400, 401, 403, 404, 409),
        },
    )
    def post(self, request, instance_id):
        key = idempotency_key(request)
        status_code, body = perform_item(
            request.participant, "response", request.data, key=key, instance_id=instance_id
        )
        return Response(body, status=status_code)


class DoseInput(serializers.Serializer):
    taken_at = AwareDateTimeField()
    unit_code = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    note = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class DoseOutput(serializers.Serializer):
    id = serializers.UUIDField()
    taken_at = serializers.DateTimeField()
    unit_code = serializers.CharField()
    note = serializers.CharField()
    study_day = serializers.IntegerField(allow_null=True)
    received_at = serializers.DateTimeField()


class DoseApi(ParticipantApiView):
    pagination_class = ResultsPagination

    @extend_schema_serializer(component_name="DoseListItem")
    class ListOutput(serializers.Serializer):
        id = serializers.UUIDField(source="uuid")
        taken_at = serializers.DateTimeField()
        unit_code = serializers.CharField()
        note = serializers.CharField()
        study_day = serializers.IntegerField(allow_null=True)
        received_at = serializers.DateTimeField()

    @extend_schema(
        tags=TAGS, operation_id="doses_list", responses={200: ListOutput(many=True), **errors(400, 401, 403)}
    )
    def get(self, request):
        paginator = ResultsPagination()
        page = paginator.paginate_queryset(dose_list(participant=request.participant), request, view=self)
        return paginator.get_paginated_response(self.ListOutput(page, many=True).data)

    @extend_schema(
        tags=TAGS,
        operation_id="doses_create",
        parameters=[IDEMPOTENCY_HEADER],
        request=DoseInput,
        responses={
            201: DoseOutput,
            200: OpenApiResponse(DoseOutput, description="replay"),
            **errors(400, 401, 403, 409),
        },
    )
    def post(self, request):
        key = idempotency_key(request)
        status_code, body = perform_item(request.participant, "dose", request.data, key=key)
        return Response(body, status=status_code)


class SideEffectInput(serializers.Serializer):
    started_on = serializers.DateField()
    description = serializers.CharField(max_length=5000)
    severity = serializers.ChoiceField(choices=Severity.values)
    serious = serializers.BooleanField()
    ongoing = serializers.BooleanField()


class SideEffectOutput(serializers.Serializer):
    id = serializers.UUIDField()
    started_on = serializers.DateField()
    description = serializers.CharField()
    severity = serializers.ChoiceField(choices=Severity.values)
    serious = serializers.BooleanField()
    ongoing = serializers.BooleanField()
    reported_at = serializers.DateTimeField()


class SideEffectCreateApi(ParticipantApiView):
    @extend_schema(
        tags=TAGS,
        operation_id="side_effects_create",
        parameters=[IDEMPOTENCY_HEADER],
        request=SideEffectInput,
        responses={
            201: SideEffectOutput,
            200: OpenApiResponse(SideEffectOutput, description="replay"),
            **errors(400, 401, 403, 409),
        },
    )
    def post(self, request):
        key = idempotency_key(request)
        status_code, body = perform_item(request.participant, "side_effect", request.data, key=key)
        return Response(body, status=status_code)


class EventInput(serializers.Serializer):
    instance = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=["delivered", "opened"])
    at = AwareDateTimeField()


class AcceptedOutput(serializers.Serializer):
    status = serializers.CharField()


class PromptEventCreateApi(ParticipantApiView):
    @extend_schema(
        tags=TAGS,
        operation_id="events_create",
        request=EventInput,
        responses={202: AcceptedOutput, **errors(400, 401, 403, 404)},
    )
    def post(self, request):
        status_code, body = perform_item(request.participant, "event", request.data, key=None)
        return Response(body, status=status_code)


def _validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def perform_item(participant, kind: str, data: Any, *, key, instance_id=None, source: str = "api") -> tuple[int, dict]:
    """One phone write (used by the single endpoints and by each sync item). Raises on refusal."""
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["A JSON object is expected."]})
    try:
        if kind == "response":
            answers, authored = response_input(data)  # ResponseInput's checks, without building a serializer
            r = survey_response_submit(
                participant=participant,
                instance_id=instance_id,
                idempotency_key=key,
                answers=answers,
                authored=authored,
                source=source,
            )
            return r.status_code, r.body
        if kind == "dose":
            v = _validated(DoseInput, data)
            r = dose_log_create(participant=participant, idempotency_key=key, **v)
            return r.status_code, r.body
        if kind == "side_effect":
            v = _validated(SideEffectInput, data)
            r = side_effect_report(participant=participant, idempotency_key=key, **v)
            return r.status_code, r.body
        if kind == "kit":  # a self-blinding envelope code (views/kit.py)
            from .kit import KitInput, kit_code_submit

            v = _validated(KitInput, data)
            r = kit_code_submit(participant=participant, idempotency_key=key, code=v["code"], period=v.get("period"))
            return r.status_code, r.body
        if kind == "event":
            v = _validated(EventInput, data)
            prompt_event_record(participant=participant, instance_id=v["instance"], kind=v["kind"], at=v["at"])
            return 202, {"status": "accepted"}
    except SurveyError as exc:
        raise as_api_error(exc)
    raise ValidationError({"kind": [f"Unknown kind {kind!r}."]})
