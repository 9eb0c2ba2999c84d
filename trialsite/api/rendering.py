"""Output serializers rendered without DRF's per-call set-up.

`Serializer(obj).data` binds a fresh copy of the serializer's fields on every instantiation (a deep copy of the
declared fields, nested serializers included): on GET /api/v1/me that set-up cost more than the rendering
itself (issue 14). `render(SerializerClass, obj)` gives the same dict from one bound instance per class,
made once per process: the serializer stays the one definition of the output (fields, formats, the OpenAPI
schema drf-spectacular reads from it); only the per-call copying is gone.

For output serializers whose fields need no per-call context: fields that read `self.context` (a
SerializerMethodField, hyperlinked fields) would read the shared instance's, so `render` refuses them.
"""

from __future__ import annotations

from functools import cache

from rest_framework import serializers

_CONTEXT_FIELDS = (serializers.SerializerMethodField, serializers.HyperlinkedRelatedField)


@cache
def _bound(serializer_class: type[serializers.Serializer]) -> serializers.Serializer:
    bound = serializer_class()
    _refuse_context_fields(bound, serializer_class.__name__)
    return bound


def _refuse_context_fields(serializer: serializers.Serializer, path: str) -> None:
    for name, field in serializer.fields.items():
        child = getattr(field, "child", None)
        for f in (field, child):
            if isinstance(f, _CONTEXT_FIELDS):
                raise TypeError(f"{path}.{name} reads the serializer's context: render() cannot share it")
            if isinstance(f, serializers.Serializer):
                _refuse_context_fields(f, f"{path}.{name}")


def render(serializer_class: type[serializers.Serializer], instance) -> dict:
    """`serializer_class(instance).data`, rendered by the class's one bound instance (no per-call field copy)."""
    return _bound(serializer_class).to_representation(instance)
