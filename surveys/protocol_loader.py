"""Materialises the surveys part of a protocol version: one Instrument row per (trial, slug, version).

An instrument version is immutable: changing its items or scoring needs a new version number in the
protocol, so answers already stored keep the definition they were given under. On an amendment the
future survey instances of every active participant are re-planned (same transaction as the load).
"""

from __future__ import annotations

from trialsite.protocol.services import ProtocolError

from .models import Instrument


def load_surveys_part(*, trial, version, protocol, previous, now=None) -> None:
    for inst in protocol.instruments:
        definition = inst.model_dump(mode="json")
        if not definition.get("translations"):
            # An instrument without translations keeps the definition it had before the format knew them.
            definition.pop("translations", None)
        existing = Instrument.objects.filter(trial=trial, slug=inst.slug, version=inst.version).first()
        if existing is not None:
            if existing.definition != definition:
                raise ProtocolError(
                    [
                        f"instruments: {inst.slug} version {inst.version} exists with a different definition; "
                        "give the changed instrument a new version"
                    ]
                )
            continue
        row = Instrument(
            trial=trial,
            slug=inst.slug,
            version=inst.version,
            title=inst.title,
            definition=definition,
            protocol_version=version,
        )
        row.full_clean()
        row.save()
    if previous is not None:
        from .services.schedule import survey_instances_replan_trial

        survey_instances_replan_trial(trial=trial, reason="amendment", now=now)
