"""The printable kit sheet of a self-blinding participant: the envelope labels (QR codes) in their label sets and
the step-by-step instructions. ARM-BEARING (it says which label set goes on which capsules): only for users who
may see arms (participants.blinding.may_see_arms); the admin view checks it before calling this."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.safestring import SafeString, mark_safe

from trialsite.protocol.services import protocol_current

from .enrolment_link import kit_qr_svg, kit_url
from .kit_models import KitEnvelope


@dataclass(frozen=True)
class Label:
    number: int
    qr: SafeString
    url: str


@dataclass(frozen=True)
class LabelSet:
    number: int
    contents: str  # the arm (condition) name: what the participant puts in these envelopes
    labels: list[Label]


def kit_sheet(*, participant) -> dict:
    protocol = protocol_current(participant.trial)
    sb = protocol.self_blinding
    envelopes = list(
        KitEnvelope.objects.filter(participant=participant).select_related("condition").order_by("label_set", "number")
    )
    sets: dict[int, LabelSet] = {}
    for e in envelopes:
        if e.label_set not in sets:
            sets[e.label_set] = LabelSet(number=e.label_set, contents=e.condition.name, labels=[])
        sets[e.label_set].labels.append(
            Label(number=e.number, qr=mark_safe(kit_qr_svg(e.code)), url=kit_url(e.code))  # noqa: S308 - segno SVG
        )
    total = len(envelopes)
    steps = [
        "Cut out the labels below along the lines. Do not scan them now.",
        *[
            f"Label set {s.number}: fill {len(s.labels)} envelopes with capsules of this kind — {s.contents} — and "
            f"stick one label of set {s.number} on each."
            for s in sets.values()
        ],
        f"Seal all {total} envelopes so that they look and feel the same, then shuffle them well and put them in a "
        "box without looking at the labels.",
        f"At the start of each of the {sb.periods if sb else 0} periods, take one envelope without looking, open it "
        "and scan its QR code with your phone's camera (or type the code the app shows). Take only that "
        "envelope's capsules during the period.",
        "Keep the envelopes you do not use sealed; the study team will tell you what to do with them at the end.",
    ]
    realised = [
        {"period": e.period, "label_set": e.label_set, "condition": e.condition.name, "recorded_at": e.recorded_at}
        for e in sorted((e for e in envelopes if e.period is not None), key=lambda e: e.period)
    ]
    return {
        "sets": list(sets.values()),
        "steps": steps,
        "periods": sb.periods if sb else 0,
        "total": total,
        "realised": realised,  # the conditions of the periods recorded so far (unblinded view)
    }
