"""The building blocks of the protocol schema: the strict base model, durations, keys and languages."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

SLUG = r"^[a-z0-9][a-z0-9_-]{0,63}$"
KEY = r"^[a-z][a-z0-9_]{0,63}$"
_DURATION = re.compile(r"^(-?)(\d+)\s*(d|h|m|s)$")


def parse_duration(value: str | int) -> timedelta:
    """'7d', '48h', '30m', '-30m', '0m' → timedelta. Integers are seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration like '48h', '30m' or '7d'")
    if isinstance(value, int):
        return timedelta(seconds=value)
    m = _DURATION.match(str(value).strip())
    if not m:
        raise ValueError(f"{value!r} is not a duration like '48h', '30m' or '7d'")
    sign, amount, unit = m.groups()
    seconds = int(amount) * {"d": 86400, "h": 3600, "m": 60, "s": 1}[unit]
    return timedelta(seconds=-seconds if sign else seconds)


def _duration_str(value: Any) -> str:
    parse_duration(value)
    return str(value)


Duration = Annotated[str, Field(description="e.g. '48h', '30m', '7d'")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


LANGUAGE = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$"
Language = Annotated[str, Field(pattern=LANGUAGE)]
# Participant-facing text: plain (in the protocol's `language`) or one text per language, {en: "...", es: "..."}.
LocalText = str | dict[Language, Annotated[str, Field(min_length=1)]]
