"""Output serializers rendered without DRF's per-call set-up.

`Serializer(obj).data` binds a fresh copy of the serializer's fields on every instantiation (a deep copy of the
declared fields, nested serializers included): on GET /api/v1/me that set-up cost more than the rendering
itself (issue 14). `render(SerializerClass, obj)` gives the same dict from one bound instance per class,
made once per process: the serializer stays the one definition of the output (fields, formats, the OpenAPI
schema drf-spectacular reads from it); only the per-call copying is gone.

The bound instance's fields are walked by a plan made once per class (`_plan`): each readable field's name, its
source path and its own `to_representation` (nested serializers planned the same way), so a call does what
`Serializer.to_representation` does (each field's value, None kept as None, the field's representation of the
rest) without DRF's per-field machinery. Any value the plan's plain lookup cannot give as DRF would (a missing key
or attribute, a callable, a missing related object) is asked of the field itself (`field.get_attribute`, with its
defaults and SkipField), and a serializer that overrides `to_representation` is called as it is.

For output serializers whose fields need no per-call context: fields that read `self.context` (a
SerializerMethodField, hyperlinked fields) would read the shared instance's, so `render` refuses them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from rest_framework import serializers
from rest_framework.fields import Field, SkipField

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


@cache
def _renderer(serializer_class: type[serializers.Serializer]) -> Callable[[Any], dict]:
    return _plan(_bound(serializer_class))


def _plan(serializer: serializers.Serializer) -> Callable[[Any], dict]:
    if type(serializer).to_representation is not serializers.Serializer.to_representation:
        return serializer.to_representation
    steps = []
    for field in serializer._readable_fields:
        if isinstance(field, serializers.Serializer):
            represent = _plan(field)
        else:
            represent = field.to_representation
        plain = field.source != "*" and type(field).get_attribute is Field.get_attribute
        steps.append((field.field_name, tuple(field.source_attrs) if plain else None, represent, field))
    steps = tuple(steps)

    def run(instance) -> dict:
        ret = {}
        for name, attrs, represent, field in steps:
            value = instance
            try:
                if attrs is None:
                    raise LookupError
                for attr in attrs:
                    value = value[attr] if type(value) is dict or isinstance(value, Mapping) else getattr(value, attr)
                if callable(value):
                    raise LookupError
            except (LookupError, AttributeError, ObjectDoesNotExist):
                try:
                    value = field.get_attribute(instance)  # DRF's own answer: defaults, SkipField, errors
                except SkipField:
                    continue
            ret[name] = None if value is None else represent(value)
        return ret

    return run


def render(serializer_class: type[serializers.Serializer], instance) -> dict:
    """`serializer_class(instance).data`, rendered by the class's one bound instance (no per-call field copy)."""
    return _renderer(serializer_class)(instance)


def validated(serializer_class: type[serializers.Serializer], data) -> dict:
    """`serializer_class(data=data)` validated (raising ValidationError as `is_valid(raise_exception=True)` does),
    its `validated_data`, by the class's one bound instance: for input serializers of plain fields, whose
    validation keeps no per-call state (a query string's filters)."""
    return _bound(serializer_class).run_validation(data)
