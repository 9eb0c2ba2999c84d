"""Offline sync of the participant phone API (API.md): a batch of phone writes, each applied as its single
endpoint would."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from trialsite.api.errors import ApiError, flatten_fields

from ..common import ParticipantApiView, errors, parse_key
from .surveys import TAGS, _validated, perform_item


class SyncApi(ParticipantApiView):
    @extend_schema_serializer(component_name="SyncBatch")
    class InputSerializer(serializers.Serializer):
        items = serializers.ListField(
            child=serializers.DictField(child=serializers.JSONField(allow_null=True)),
            max_length=500,
            help_text=(
                'Each item: {"kind": "response"|"dose"|"side_effect"|"event"|"kit", "idempotency_key": uuid, ...}. '
                "response: instance, answers, authored. dose: taken_at, unit_code?, note?. side_effect: "
                "started_on, description, severity, serious, ongoing. event: instance, event (delivered|opened), at. "
                "kit: code, period? (a self-blinding envelope code, as POST /api/v1/kit)."
            ),
        )

    @extend_schema_serializer(component_name="SyncResults")
    class OutputSerializer(serializers.Serializer):
        results = inline_serializer(
            name="SyncResult",
            many=True,
            fields={
                "idempotency_key": serializers.CharField(allow_null=True),
                "status": serializers.IntegerField(),
                "id": serializers.UUIDField(required=False),
                "error": serializers.DictField(required=False),
            },
        )

    @extend_schema(
        tags=TAGS,
        operation_id="sync_create",
        request=InputSerializer,
        responses={200: OutputSerializer, **errors(400, 401, 403)},
    )
    def post(self, request):
        items = _validated(self.InputSerializer, request.data)["items"]
        participant = request.participant
        results = []
        # Each item is judged alone, in order: one failure does not undo or block the others.
        for item in items:
            raw_key = item.get("idempotency_key")
            result: dict[str, Any] = {"idempotency_key": None if raw_key is None else str(raw_key)}
            try:
                key = parse_key(raw_key)
                kind = item.get("kind")
                data = {k: v for k, v in item.items() if k not in ("kind", "idempotency_key")}
                instance_id = None
                if kind == "response":
                    instance_id = parse_key(data.pop("instance", None), field="instance")
                if kind == "event":
                    data["kind"] = data.pop("event", None)
                status_code, body = perform_item(
                    participant, kind, data, key=key, instance_id=instance_id, source="sync"
                )
                result["status"] = status_code
                if "id" in body:
                    result["id"] = body["id"]
            except ApiError as exc:
                result["status"] = exc.status_code
                result["error"] = {"code": exc.error_code, "message": str(exc.detail), "fields": exc.fields}
            except ValidationError as exc:
                result["status"] = 400
                result["error"] = {
                    "code": "validation_error",
                    "message": "The item is not valid.",
                    "fields": flatten_fields(exc.detail),
                }
            results.append(result)
        return Response({"results": results})
