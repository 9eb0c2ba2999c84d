"""The unblinded summary's blinding figures, stored (issue 14, goal 4). ARM-BEARING throughout.

The summary API shows the trial's unblinded roles, besides what every role sees, the per-arm Bang and James indices
of the participants and of the coordinators and the per-session figures (correct-guess rates, outcome by arm x
guess, the CGRC with its seeded pseudo-trials: analytics.blinding_sessions). `blinding_figures` computes them (the
one definition: analytics.selectors and analytics.blinding_selectors); they read every guess and every score of the
outcome and run the CGRC's simulations, seconds at 10,000 participants, so the refresh of the trial's snapshot
(analytics.completion_snapshots) computes them at the same `now` as the blinded figures and stores them here, one
row per trial and outcome (analytics.BlindingSnapshot): the default outcome always, and every outcome a reader asked
for since. They are never in CompletionSnapshot, which every role reads: the blinded path never reads this table
(participants.blinding.REGISTRY lists it; analytics/tests/test_blinding_leaks.py checks both).

The figures are for every site: the unblinded statistician's role is trial-wide (trialsite.roles), and per-site
CGRC estimates do not add up. The CGRC is seeded with the trial's id, so the stored figures equal a live
computation over the same rows.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from trialsite.models import Trial
from trialsite.protocol.services import ProtocolError, protocol_current

from .blinding_selectors import blinding_session_figures, parse_outcome
from .models import BlindingSnapshot


def outcome_key(*, trial: Trial, outcome: str | None = None) -> str:
    """The outcome the per-session figures analyse, spelt in full ("phq9" → "phq9.total"; none asked: the
    protocol's default; "" when there is none, or no protocol, or other than two arms: no per-session figures).
    ValueError (naming the problem) for an outcome the protocol does not score."""
    try:
        protocol = protocol_current(trial)
    except ProtocolError:
        return ""
    if len(protocol.arms) != 2:
        return ""
    chosen = parse_outcome(outcome, protocol)
    return f"{chosen[0]}.{chosen[1]}" if chosen else ""


def blinding_figures(*, trial: Trial, site_ids=None, outcome: str | None = None) -> dict:
    """UNBLINDED, live: {"indices", "coordinator_indices", "sessions"} as the summary shows them."""
    from . import selectors

    return {
        "indices": selectors.blinding_indices(trial=trial, site_ids=site_ids),
        "coordinator_indices": selectors.coordinator_blinding_indices(trial=trial, site_ids=site_ids),
        "sessions": blinding_session_figures(trial=trial, site_ids=site_ids, outcome=outcome or None),
    }


def blinding_outcomes(*, trial: Trial) -> list[str]:
    """The outcomes a refresh computes: the default one and every stored one the protocol still scores (rows of
    outcomes it no longer scores are deleted)."""
    keys = {outcome_key(trial=trial)}
    gone = []
    for key in BlindingSnapshot.objects.filter(trial=trial).values_list("outcome", flat=True):
        try:
            keys.add(outcome_key(trial=trial, outcome=key or None))
        except ValueError:
            gone.append(key)
    if gone:
        BlindingSnapshot.objects.filter(trial=trial, outcome__in=gone).delete()
    return sorted(keys)


@transaction.atomic
def blinding_snapshot_store(*, trial: Trial, outcome: str, figures: dict, computed_at: datetime) -> BlindingSnapshot:
    """The trial's blinding figures for `outcome` replaced by `figures` computed at `computed_at`, unless the stored
    ones are for that moment or a later one; under the row lock. Returns the row now stored."""
    snapshot, created = BlindingSnapshot.objects.select_for_update().get_or_create(
        trial=trial, outcome=outcome, defaults={"figures": figures, "computed_at": computed_at}
    )
    if not created and snapshot.computed_at < computed_at:
        snapshot.figures, snapshot.computed_at = figures, computed_at
        snapshot.save(update_fields=["figures", "computed_at"])
    return snapshot


def blinding_snapshot_stored(*, trial: Trial, outcome: str, computed_at: datetime) -> dict | None:
    """The stored figures for `outcome` if they were computed at `computed_at` (with the blinded snapshot the
    reader holds), else None. One query."""
    row = BlindingSnapshot.objects.filter(trial=trial, outcome=outcome, computed_at=computed_at).first()
    return None if row is None else row.figures
