"""Self-blinding kits (`blinding: self`): each participant's envelope codes and the periods they were used in.

ARM-BEARING: `condition` (the arm the envelope's capsules stand for) and `label_set` (the group of labels on the
kit sheet, whose order follows the allocation) are in participants.blinding.REGISTRY. Blinded interfaces show
only whether a period's envelope was recorded.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils.timezone import now

from trialsite.audit import tracked


@tracked()
class KitEnvelope(models.Model):
    """One envelope of a participant's kit. `period` is empty until the participant records its code; then it is
    the period whose capsules came from this envelope (its `condition` is the period's realised condition)."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    participant = models.ForeignKey("participants.Participant", on_delete=models.PROTECT, related_name="envelopes")
    code = models.CharField(max_length=8, unique=True, help_text="typeable code with a check character")
    condition = models.ForeignKey("participants.Arm", on_delete=models.PROTECT, related_name="+")
    label_set = models.PositiveSmallIntegerField(help_text="the group of labels on the kit sheet (1, 2, …)")
    number = models.PositiveSmallIntegerField(help_text="position within its label set, from 1")
    created_at = models.DateTimeField(default=now)
    period = models.PositiveSmallIntegerField(null=True, blank=True, help_text="period it was used in, from 1")
    recorded_at = models.DateTimeField(null=True, blank=True)
    recorded_study_day = models.IntegerField(null=True, blank=True)
    recorded_source = models.CharField(max_length=16, blank=True, help_text="api, response, sync or admin")

    class Meta:
        ordering = ["participant", "label_set", "number"]
        constraints = [
            models.UniqueConstraint(fields=["participant", "label_set", "number"], name="kitenvelope_unique_label"),
            # One envelope per period: a second code for the same period is refused, in the DB as well.
            models.UniqueConstraint(
                fields=["participant", "period"],
                condition=models.Q(period__isnull=False),
                name="kitenvelope_one_per_period",
            ),
            models.CheckConstraint(
                condition=models.Q(period__isnull=True) | models.Q(period__gte=1), name="kitenvelope_period_from_1"
            ),
            models.CheckConstraint(
                condition=models.Q(period__isnull=True, recorded_at__isnull=True)
                | models.Q(period__isnull=False, recorded_at__isnull=False),
                name="kitenvelope_recorded_has_time",
            ),
            models.CheckConstraint(condition=models.Q(code__regex=r"^[A-Z0-9]{6}$"), name="kitenvelope_code_format"),
        ]

    def __str__(self) -> str:
        return f"envelope {self.pk} of {self.participant_id}"  # never the condition
