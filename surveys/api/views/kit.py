"""`/api/v1/kit`: the participant's self-blinding envelopes (scan or type the code of the period's envelope).

GET lists the periods with "recorded: yes/no" (never a condition); POST records one code, idempotently
(Idempotency-Key: a replay answers 200 with the first body and records nothing).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from participants.selectors import kit_periods

from ...services.kits import kit_code_submit
from ..common import IDEMPOTENCY_HEADER, ParticipantApiView, errors, idempotency_key

TAGS = ["participant: self-blinding kit"]


class KitInput(serializers.Serializer):
    code = serializers.JSONField(
        help_text="the envelope's code as scanned or typed: 6 characters, dashes and spaces ignored (e.g. ABC-DEF)"
    )
    period = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=52,
        help_text="the period the envelope was opened for (default: the current period); an earlier, started "
        "period records a late code",
    )

    def validate_code(self, value):
        if not isinstance(value, str) or not value.strip():
            raise serializers.ValidationError("The envelope code is text, e.g. ABC-DEF.")
        if len(value) > 32:
            raise serializers.ValidationError("At most 32 characters.")
        return value


@extend_schema_serializer(component_name="KitEnvelopeRecorded")
class KitOutput(serializers.Serializer):
    id = serializers.UUIDField()
    code = serializers.CharField(help_text="the code, formatted ABC-DEF")
    period = serializers.IntegerField()
    recorded_at = serializers.DateTimeField()
    survey = serializers.UUIDField(
        allow_null=True, help_text="the period's envelope survey answered with this code, if it was open"
    )


class KitApi(ParticipantApiView):
    @extend_schema_serializer(component_name="KitStatus")
    class StatusOutput(serializers.Serializer):
        periods = inline_serializer(
            name="KitPeriod",
            many=True,
            fields={
                "period": serializers.IntegerField(),
                "recorded": serializers.BooleanField(help_text="an envelope code was recorded for this period"),
                "recorded_at": serializers.DateTimeField(allow_null=True),
            },
            help_text="one entry per period of the protocol (empty outside a self-blinding trial); never a condition",
        )
        current_period = serializers.IntegerField(help_text="0 before the first period starts")

    @extend_schema(tags=TAGS, operation_id="kit_status", responses={200: StatusOutput, **errors(401, 403)})
    def get(self, request):
        from django.utils import timezone

        from participants.services.kits import kit_period_of

        participant = request.participant
        periods = kit_periods(participant=participant)
        current = kit_period_of(participant=participant, at=timezone.now()) if periods else 0
        return Response(
            {
                "periods": [
                    {**p, "recorded_at": p["recorded_at"].isoformat() if p["recorded_at"] else None} for p in periods
                ],
                "current_period": current,
            }
        )

    @extend_schema(
        tags=TAGS,
        operation_id="kit_record",
        parameters=[IDEMPOTENCY_HEADER],
        request=KitInput,
        responses={
            201: KitOutput,
            200: OpenApiResponse(KitOutput, description="replay of the same key and body: the first answer"),
            400: errors(400)[400],
            **errors(401, 403, 409),
        },
        description=(
            "Record the code of the envelope opened for a period. 400 `validation_error` with `fields.code` says "
            "whether the code is wrong (not a code, a failed check character, or no such envelope), reused (already "
            "recorded for another period), another participant's, or whether the period already has its envelope; "
            "it never says anything about conditions. 409 `window_not_open` before the first period, `conflict` "
            "outside a self-blinding trial or before randomisation, `withdrawn`, `not_consented`, "
            "`idempotency_mismatch`."
        ),
    )
    def post(self, request):
        key = idempotency_key(request)
        serializer = KitInput(data=request.data if isinstance(request.data, dict) else {})
        serializer.is_valid(raise_exception=True)
        v = serializer.validated_data
        result = kit_code_submit(
            participant=request.participant, idempotency_key=key, code=v["code"], period=v.get("period")
        )
        return Response(result.body, status=result.status_code)
