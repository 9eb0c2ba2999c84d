"""The ONE registry of arm-bearing data. Admin, serializers, exports and message templates consult it.

Arm names, arm codes, slot arms and dose-unit contents of a trial may only reach users for whom
`trialsite.policy.can(user, ARMS_VIEW, trial)` is true (the unblinded statistician of that trial), or the
requester of an approved emergency unblinding (participants.services.unblinding_reveal). Superusers are blinded too.
"""

from __future__ import annotations

import re

# "app_label.Model" → fields that carry or lead to the arm. A model listed with "*" is arm-bearing as a
# whole: no blinded interface shows any of its rows.
REGISTRY: dict[str, tuple[str, ...]] = {
    "participants.Arm": ("*",),
    "participants.AllocationSlot": ("arm", "arm_sequence"),
    "participants.Allocation": ("slot",),
    "participants.DoseUnit": ("slot",),
    # Self-blinding envelopes: the condition of each envelope (and so of the period it was used in), and the
    # kit-sheet label set whose order follows the allocation.
    "participants.KitEnvelope": ("condition", "label_set"),
    # The audit trail (pghistory event tables) copies the rows above: just as arm-bearing.
    "participants.ArmEvent": ("*",),
    "participants.AllocationSlotEvent": ("arm", "arm_sequence"),
    "participants.AllocationEvent": ("slot",),
    "participants.DoseUnitEvent": ("slot",),
    "participants.KitEnvelopeEvent": ("condition", "label_set"),
    # The unblinded summary's stored blinding figures (per-arm indices, per-session figures): read only by the
    # trial's unblinded roles (analytics.blinding_snapshots); no admin, no audit trail, not exported.
    "analytics.BlindingSnapshot": ("*",),
}

# "app_label.Model" → lookup path from a row to its trial: how a page mixing trials (the audit trail) asks the policy
# about each row's trial. An arm-bearing model missing here is shown on such a page to nobody.
TRIAL_PATHS: dict[str, str] = {
    "participants.Arm": "trial",
    "participants.AllocationSlot": "allocation_list__trial",
    "participants.Allocation": "participant__trial",
    "participants.DoseUnit": "slot__allocation_list__trial",
    "participants.KitEnvelope": "participant__trial",
    "analytics.BlindingSnapshot": "trial",
}

# Models whose every row is arm-bearing (never shown to blinded users at all).
ARM_MODELS: frozenset[str] = frozenset(label for label, fields in REGISTRY.items() if "*" in fields)


def model_label(model) -> str:
    meta = model._meta
    return f"{meta.app_label}.{meta.object_name}"


def is_arm_bearing(model, field: str | None = None) -> bool:
    """True if the model (or, when given, that field of it) carries the arm."""
    fields = REGISTRY.get(model_label(model))
    if fields is None:
        return False
    return field is None or "*" in fields or field in fields


def blinded_fields(model) -> tuple[str, ...]:
    """Fields a blinded interface must leave out of this model ("*" means: the whole model)."""
    return REGISTRY.get(model_label(model), ())


def may_see_arms(user, trial) -> bool:
    """The one question, asked of the policy with the trial: arms of trial A are never shown for a grant in B."""
    from trialsite import policy

    return policy.can(user, policy.ARMS_VIEW, trial)


def arm_names(trial) -> list[str]:
    """Every arm name and code of the trial, as stored and as in the current protocol."""
    from trialsite.protocol.services import ProtocolError, protocol_current

    from .models import Arm

    names = set(Arm.objects.filter(trial=trial).values_list("name", flat=True))
    try:
        names.update(protocol_current(trial).arm_names())
    except ProtocolError:  # no protocol loaded: only the stored arms
        names.update(())
    return sorted(names)


def find_arm(text: str, trial) -> list[str]:
    """Arm names that occur in `text` (case-insensitive, as whole words)."""
    found = []
    for name in arm_names(trial):
        if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, flags=re.IGNORECASE):
            found.append(name)
    return found


def assert_no_arm(text: str, trial) -> None:
    """For leak tests and for message templates: raise AssertionError if text names an arm."""
    found = find_arm(text, trial)
    if found:
        raise AssertionError(f"arm-bearing text leaked: {found!r}")
