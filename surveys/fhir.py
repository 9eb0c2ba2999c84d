"""FHIR R4 mapping of instruments (Questionnaire) and of submissions (QuestionnaireResponse).

Questionnaire: choice items are `choice` with answerOption codings (the protocol's code, e.g. LOINC LA6568-5,
else the value itself) carrying the numeric value in the `ordinalValue` extension; multi_choice is a
repeating `choice`; sliders are `integer` (or `decimal`) items with the `itemControl` slider extension,
`minValue`/`maxValue` and `sliderStepValue`; enable_when becomes enableWhen.

QuestionnaireResponse (POST): items by `linkId` (= item key), flat; `id` (or `identifier.value`) is the
idempotency key (a UUID); `basedOn[0].reference` names the survey instance (`ServiceRequest/<instance id>`,
any resource type is accepted); `status` must be `completed`; `authored` needs an offset; the subject is
always the token's participant.
"""

from __future__ import annotations

import uuid
from typing import Any

from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from pydantic import ValidationError as PydanticValidationError

from .errors import InvalidInput
from .validation import instant_in_range, item_choices

EXT = "http://hl7.org/fhir/StructureDefinition/"
ITEM_CONTROL = "http://hl7.org/fhir/questionnaire-item-control"
VALUE_SYSTEM = "urn:trialsite:answer-value"
_OPS = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _number(v: float | None, kind: str) -> dict:
    return {"valueInteger": int(v)} if kind == "integer" else {"valueDecimal": v}


def _coding(choice: dict) -> dict:
    coding: dict[str, Any] = (
        {"system": "http://loinc.org", "code": choice["code"]}
        if choice.get("code")
        else {"system": VALUE_SYSTEM, "code": str(choice["value"])}
    )
    coding["display"] = choice["label"]
    value = choice["value"]
    if isinstance(value, int | float) and not isinstance(value, bool):
        coding["extension"] = [{"url": EXT + "ordinalValue", "valueDecimal": value}]
    return coding


def _answer_for_condition(definition: dict, items: dict, cond: dict) -> dict:
    target = items[cond["item"]]
    value = cond["value"]
    if target["type"] in ("choice", "multi_choice"):
        choice = next((c for c in item_choices(definition, target) if c["value"] == value), None)
        if choice is not None:
            coding = _coding(choice)
            coding.pop("extension", None)
            return {"answerCoding": coding}
    if isinstance(value, bool):
        return {"answerBoolean": value}
    if isinstance(value, int):
        return {"answerInteger": value}
    if isinstance(value, float):
        return {"answerDecimal": value}
    return {"answerString": str(value)}


def questionnaire(*, instrument, trial_slug: str) -> dict:
    definition = instrument.definition
    items_by_key = {i["key"]: i for i in definition["items"]}
    out_items: list[dict] = []
    if definition.get("stem"):
        out_items.append({"linkId": "stem", "type": "display", "text": definition["stem"]})
    for item in definition["items"]:
        kind = item["type"]
        entry: dict[str, Any] = {"linkId": item["key"], "text": item["text"], "required": bool(item.get("required"))}
        extensions: list[dict] = []
        if item.get("code"):
            entry["code"] = [{"system": "http://loinc.org", "code": item["code"]}]
        if kind in ("choice", "multi_choice"):
            entry["type"] = "choice"
            entry["repeats"] = kind == "multi_choice"
            entry["answerOption"] = [{"valueCoding": _coding(c)} for c in item_choices(definition, item)]
        elif kind in ("integer", "decimal", "slider"):
            step = item.get("step")
            whole = all(float(v).is_integer() for v in (item.get("min") or 0, item.get("max") or 0, step or 1))
            fhir_kind = "decimal" if kind == "decimal" or (kind == "slider" and not whole) else "integer"
            entry["type"] = fhir_kind
            if item.get("min") is not None:
                extensions.append({"url": EXT + "minValue", **_number(item["min"], fhir_kind)})
            if item.get("max") is not None:
                extensions.append({"url": EXT + "maxValue", **_number(item["max"], fhir_kind)})
            if kind == "slider":
                extensions.append(
                    {
                        "url": EXT + "questionnaire-itemControl",
                        "valueCodeableConcept": {
                            "coding": [{"system": ITEM_CONTROL, "code": "slider", "display": "Slider"}]
                        },
                    }
                )
                if step:
                    extensions.append({"url": EXT + "questionnaire-sliderStepValue", **_number(step, fhir_kind)})
        elif kind == "kit_code":
            entry["type"] = "string"  # an envelope code, e.g. ABC-DEF
            entry["maxLength"] = 7
        elif kind == "text":
            entry["type"] = "text"
            if item.get("max_length"):
                entry["maxLength"] = item["max_length"]
        else:
            entry["type"] = kind  # boolean, date, time: the same names in FHIR
        if extensions:
            entry["extension"] = extensions
        cond = item.get("enable_when")
        if cond:
            values = cond["value"] if cond["op"] == "in" and isinstance(cond["value"], list) else [cond["value"]]
            op = "=" if cond["op"] == "in" else _OPS[cond["op"]]
            entry["enableWhen"] = [
                {"question": cond["item"], "operator": op}
                | _answer_for_condition(definition, items_by_key, {**cond, "value": v})
                for v in values
            ]
            if len(values) > 1:
                entry["enableBehavior"] = "any"
        out_items.append(entry)
    resource: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "id": instrument.slug.replace("_", "-"),
        "url": f"urn:trialsite:{trial_slug}:questionnaire:{instrument.slug}",
        "version": str(instrument.version),
        "name": instrument.slug.replace("-", "_").upper(),
        "title": instrument.title,
        "status": "active",
        "subjectType": ["Patient"],
        "item": out_items,
    }
    if definition.get("coding"):
        resource["code"] = [{"system": definition["coding"]["system"], "code": definition["coding"]["code"]}]
    return resource


def _pydantic_fields(exc: PydanticValidationError) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "resource"
        fields.setdefault(loc, []).append(err["msg"])
    return fields


def _choice_from_coding(definition: dict, item: dict, coding: Any) -> Any:
    for choice in item_choices(definition, item):
        if coding.code is not None and coding.code in (choice.get("code"), str(choice["value"])):
            return choice["value"]
    return coding.code


def _answer_value(definition: dict, item: dict | None, answer: Any) -> Any:
    if answer.valueCoding is not None:
        return _choice_from_coding(definition, item, answer.valueCoding) if item else answer.valueCoding.code
    for name in ("valueBoolean", "valueInteger", "valueString"):
        v = getattr(answer, name, None)
        if v is not None:
            return v
    if answer.valueDecimal is not None:
        v = answer.valueDecimal
        return int(v) if float(v).is_integer() else float(v)
    if answer.valueDate is not None:
        return answer.valueDate.isoformat()
    if answer.valueTime is not None:
        return answer.valueTime.isoformat(timespec="minutes")
    return None


def parse_questionnaire_response(data: Any) -> dict:
    """A QuestionnaireResponse → {"key", "instance", "authored", "items": [(linkId, [answers])]}.

    Structural problems are 400s with `fields`; answer values are checked later against the instrument.
    """
    if not isinstance(data, dict) or data.get("resourceType") != "QuestionnaireResponse":
        raise InvalidInput(
            "A FHIR QuestionnaireResponse is expected.", fields={"resourceType": ["Must be QuestionnaireResponse."]}
        )
    try:
        qr = QuestionnaireResponse.model_validate(data)
    except PydanticValidationError as exc:
        raise InvalidInput("Not a valid FHIR R4 QuestionnaireResponse.", fields=_pydantic_fields(exc))
    except (ValueError, TypeError) as exc:
        raise InvalidInput("Not a valid FHIR R4 QuestionnaireResponse.", fields={"resource": [str(exc)[:200]]})
    fields: dict[str, list[str]] = {}
    if qr.status != "completed":
        fields["status"] = ["Only a completed QuestionnaireResponse can be submitted."]
    raw_key = qr.id or (qr.identifier.value if qr.identifier is not None else None)
    key = None
    try:
        key = uuid.UUID(str(raw_key))
    except (ValueError, TypeError):
        fields["id"] = ["`id` (or `identifier.value`) must be a UUID: it is the idempotency key."]
    instance = None
    reference = qr.basedOn[0].reference if qr.basedOn else None
    try:
        instance = uuid.UUID(str(reference).rsplit("/", 1)[-1])
    except (ValueError, TypeError):
        fields["basedOn"] = ["basedOn[0].reference must name the survey instance, e.g. ServiceRequest/<id>."]
    authored = qr.authored
    if authored is None or not hasattr(authored, "tzinfo") or getattr(authored, "tzinfo", None) is None:
        fields["authored"] = ["A timestamp with an offset is needed."]
    elif not instant_in_range(authored):
        fields["authored"] = ["The timestamp is out of range."]
    if fields:
        raise InvalidInput("The QuestionnaireResponse cannot be submitted.", fields=fields)
    items = []
    for item in qr.item or []:
        if item.item:
            raise InvalidInput("Items must be flat.", fields={f"item.{item.linkId}": ["Nested items are not used."]})
        items.append((item.linkId, list(item.answer or [])))
    return {"key": key, "instance": instance, "authored": authored, "items": items}


def answers_from_items(definition: dict, items: list[tuple[str, list]]) -> dict[str, Any]:
    by_key = {i["key"]: i for i in definition["items"]}
    answers: dict[str, Any] = {}
    for link_id, raw in items:
        item = by_key.get(link_id)
        if item is None and not raw:
            continue  # e.g. the display item carrying the stem
        values = [_answer_value(definition, item, a) for a in raw]
        if item is not None and item["type"] == "multi_choice":
            answers[link_id] = values
        elif not values:
            answers[link_id] = None
        else:
            answers[link_id] = values[0] if len(values) == 1 else values
    return answers
