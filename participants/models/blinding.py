"""Blinding: emergency unblinding requests, staff blinding guesses and each participant's substance
record (self-blinding)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.timezone import now

from trialsite.audit import tracked

from .participant import Participant


class UnblindingStatus(models.TextChoices):
    REQUESTED = "requested", "requested"
    APPROVED = "approved", "approved"
    REJECTED = "rejected", "rejected"
    REVEALED = "revealed", "revealed"


@tracked()
class UnblindingRequest(models.Model):
    """Emergency unblinding of one participant: requested with a reason by a safety physician or trial
    manager, approved by the other role, then revealed to the requester only."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="unblinding_requests")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requester_role = models.CharField(max_length=32)
    reason = models.TextField()
    requested_at = models.DateTimeField(default=now)
    status = models.CharField(max_length=16, choices=UnblindingStatus.choices, default=UnblindingStatus.REQUESTED)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    revealed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=UnblindingStatus.values), name="unblinding_status_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(requester_role__in=["safety_physician", "trial_manager"]),
                name="unblinding_requester_role_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(decided_by__isnull=True) | ~models.Q(decided_by=models.F("requested_by")),
                name="unblinding_four_eyes",
            ),
        ]

    def __str__(self) -> str:
        return f"unblinding request {self.uuid} ({self.status})"


class BlindingGuess(models.TextChoices):
    # Stored values match the participants' blinding-guess answers. The label says "inactive": a guess is
    # not an allocation, and the admin pages must never show an arm's name next to a participant.
    ACTIVE = "active", "active"
    PLACEBO = "placebo", "inactive"
    DONT_KNOW = "dont_know", "don't know"


@tracked()
class StaffBlindingGuess(models.Model):
    """A coordinator's guess of a randomised participant's arm at one of the protocol's blinding-guess time
    points (`day_<study day>`, the days of the schedule event of the blinding-guess instrument). It holds a
    guess and a confidence, never the arm; the indices compare it with the allocation for unblinded users only."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="staff_blinding_guesses")
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    time_point = models.CharField(max_length=16, help_text="day_<n>: a day of the blinding-guess schedule")
    guess = models.CharField(max_length=16, choices=BlindingGuess.choices)
    confidence = models.PositiveSmallIntegerField(help_text="0 (pure guess) to 100 (certain)")
    recorded_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["participant", "time_point", "recorded_at"]
        verbose_name = "coordinator blinding guess"
        verbose_name_plural = "coordinator blinding guesses"
        constraints = [
            models.CheckConstraint(condition=models.Q(guess__in=BlindingGuess.values), name="staffguess_guess_valid"),
            models.CheckConstraint(
                condition=models.Q(confidence__gte=0, confidence__lte=100), name="staffguess_confidence_0_100"
            ),
            models.CheckConstraint(
                condition=models.Q(time_point__regex=r"^day_-?[0-9]+$"), name="staffguess_time_point_format"
            ),
            models.UniqueConstraint(
                fields=["participant", "rater", "time_point"], name="staffguess_once_per_rater_time_point"
            ),
        ]

    def __str__(self) -> str:
        return f"guess of {self.participant_id} at {self.time_point}"  # never the value: it is data

    @property
    def study_day(self) -> int:
        return int(self.time_point.removeprefix("day_"))


@tracked()
class SubstanceRecord(models.Model):
    """The substance and amount per active unit a participant uses, when participants bring their own
    (self-blinding: protocol `substance.provided_by: participant`). The same whatever the arm (a placebo unit
    is empty), so it reveals no arm. Site-dispensed trials take these from the protocol instead."""

    class Unit(models.TextChoices):
        G = "g", "g"
        MG = "mg", "mg"
        UG = "ug", "µg"

    participant = models.OneToOneField(Participant, on_delete=models.PROTECT, related_name="substance")
    name = models.CharField(max_length=128, help_text="e.g. LSD, 1P-LSD, psilocybin mushrooms, truffles")
    amount_per_unit = models.DecimalField(max_digits=10, decimal_places=4, help_text="amount in one active unit")
    unit = models.CharField(max_length=4, choices=Unit.choices)
    recorded_at = models.DateTimeField(default=now)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(amount_per_unit__gt=0), name="substance_amount_positive"),
            models.CheckConstraint(condition=models.Q(unit__in=["g", "mg", "ug"]), name="substance_unit_known"),
        ]

    def __str__(self) -> str:
        return f"substance of {self.participant_id}"
