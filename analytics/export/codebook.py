"""The codebook: one row per variable of every bundle table, then one per item and score of every instrument."""

from __future__ import annotations

from surveys.models import Instrument
from trialsite.models import Trial
from trialsite.protocol.schema import Protocol

from .catalogue import bundle_tables

CODEBOOK_COLUMNS = [
    "table",
    "variable",
    "item",
    "label",
    "type",
    "allowed_values",
    "value_labels",
    "unit",
    "instrument",
    "instrument_version",
    "missing",
]


def codebook_rows(*, trial: Trial, protocol: Protocol | None, blinded: bool) -> list[dict]:
    rows = []
    for table in bundle_tables(protocol=protocol, blinded=blinded):
        for c in table.visible_columns(blinded):
            rows.append(
                {
                    "table": table.name,
                    "variable": c.name,
                    "item": "",
                    "label": c.label,
                    "type": c.type,
                    "allowed_values": ";".join(c.values) if c.values else "",
                    "value_labels": ";".join(f"{k}={v}" for k, v in c.values.items()) if c.values else "",
                    "unit": c.unit,
                    "instrument": "",
                    "instrument_version": "",
                    "missing": c.missing,
                }
            )
    # Every item of every instrument version: what `responses.value` means for that item.
    for ins in Instrument.objects.filter(trial=trial).order_by("slug", "version"):
        d = ins.definition or {}
        choice_sets = d.get("choice_sets") or {}
        for item in d.get("items", []):
            choices = item.get("choices")
            if isinstance(choices, str):
                choices = choice_sets.get(choices, [])
            choices = choices or []
            if item.get("type") == "boolean":
                allowed, labels = "true;false", "true=yes;false=no"
            else:
                allowed = ";".join(str(c["value"]) for c in choices)
                labels = ";".join(f"{c['value']}={c['label']}" for c in choices)
            unit = ""
            if item.get("min") is not None or item.get("max") is not None:
                unit = f"{_num(item.get('min'))}-{_num(item.get('max'))}"
            rows.append(
                {
                    "table": "responses",
                    "variable": "value",
                    "item": item["key"],
                    "label": item.get("text", ""),
                    "type": {"choice": "choice", "slider": "integer", "boolean": "boolean"}.get(
                        item.get("type"), item.get("type", "")
                    ),
                    "allowed_values": allowed,
                    "value_labels": labels,
                    "unit": unit,
                    "instrument": ins.slug,
                    "instrument_version": str(ins.version),
                    "missing": "no row: not answered" + ("" if item.get("required", True) else " (optional item)"),
                }
            )
        for score in (d.get("scoring") or {}).get("scores", []):
            bands = score.get("bands") or []
            rows.append(
                {
                    "table": "scores",
                    "variable": "value",
                    "item": score["key"],
                    "label": f"{ins.title}: {score['method']} of {', '.join(score.get('items', []))}",
                    "type": "float",
                    "allowed_values": "",
                    "value_labels": ";".join(f"{_num(b['min'])}-{_num(b['max'])}={b['label']}" for b in bands),
                    "unit": "",
                    "instrument": ins.slug,
                    "instrument_version": str(ins.version),
                    "missing": f"empty: not scored ({score.get('missing', 'not_scored')})",
                }
            )
    return rows


def _num(v) -> str:
    if v is None:
        return ""
    return str(int(v)) if float(v).is_integer() else str(v)
