"""Randomisation: arms, the allocation list and its slots, allocations and dose units. ARM-BEARING (see
participants.blinding.REGISTRY)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.timezone import now

from trialsite.audit import tracked

from .participant import Participant


@tracked()
class Arm(models.Model):
    """An arm of a trial. ARM-BEARING: only unblinded roles may read it."""

    trial = models.ForeignKey("trialsite.Trial", on_delete=models.PROTECT, related_name="arms")
    code = models.CharField(max_length=8)
    name = models.CharField(max_length=128)
    ratio = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ["trial", "code"]
        constraints = [
            models.UniqueConstraint(fields=["trial", "code"], name="arm_unique_code"),
            models.CheckConstraint(condition=models.Q(ratio__gte=1), name="arm_ratio_positive"),
        ]

    def __str__(self) -> str:
        return f"arm {self.pk}"  # never the name: __str__ ends up in logs and admin pages


@tracked()
class AllocationList(models.Model):
    """A concealed allocation list (generated from a seed or imported). Its SHA-256 is printed when made."""

    GENERATED = "generated"
    IMPORTED = "imported"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    trial = models.ForeignKey("trialsite.Trial", on_delete=models.PROTECT, related_name="allocation_lists")
    source = models.CharField(max_length=16, choices=[(GENERATED, GENERATED), (IMPORTED, IMPORTED)])
    seed = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["trial", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["trial"], name="allocationlist_one_per_trial"),
            models.CheckConstraint(
                condition=models.Q(source__in=["generated", "imported"]), name="allocationlist_source_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"allocation list {self.uuid}"


@tracked()
class AllocationSlot(models.Model):
    """One position of the list in a stratum. ARM-BEARING (`arm`). `taken` is set in the transaction that
    allocates it, so a concurrent `select_for_update(skip_locked=True)` re-checks it on the locked row."""

    allocation_list = models.ForeignKey(AllocationList, on_delete=models.PROTECT, related_name="slots")
    stratum = models.CharField(max_length=128)
    sequence = models.PositiveIntegerField(help_text="position within the stratum, from 1")
    block_number = models.PositiveIntegerField()
    block_size = models.PositiveSmallIntegerField()
    arm = models.ForeignKey(Arm, on_delete=models.PROTECT, related_name="+")
    # Crossover designs: the arm sequence (protocol `crossover.sequences[].code`, e.g. "AB"); `arm` is then the
    # first period's arm. Empty for parallel-group trials. ARM-BEARING.
    arm_sequence = models.CharField(max_length=16, blank=True, default="")
    taken = models.BooleanField(default=False)

    class Meta:
        ordering = ["allocation_list", "stratum", "sequence"]
        constraints = [
            models.UniqueConstraint(
                fields=["allocation_list", "stratum", "sequence"], name="allocationslot_unique_position"
            ),
        ]
        indexes = [models.Index(fields=["allocation_list", "stratum", "taken", "sequence"])]

    def __str__(self) -> str:
        return f"slot {self.stratum}#{self.sequence}"


@tracked()
class Allocation(models.Model):
    """Participant ↔ slot. Carries no arm itself (the arm is on the slot)."""

    participant = models.OneToOneField(Participant, on_delete=models.PROTECT, related_name="allocation")
    slot = models.OneToOneField(AllocationSlot, on_delete=models.PROTECT, related_name="allocation")
    allocated_at = models.DateTimeField(default=now)
    allocated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["participant"], name="allocation_one_per_participant"),
            models.UniqueConstraint(fields=["slot"], name="allocation_one_participant_per_slot"),
        ]

    def __str__(self) -> str:
        return f"allocation of {self.participant_id}"


@tracked()
class DoseUnit(models.Model):
    """A labelled dose unit (e.g. envelope MD-7KQ2XD). The code is a label that reveals nothing; its
    contents are the slot's arm (ARM-BEARING through `slot`)."""

    slot = models.ForeignKey(AllocationSlot, on_delete=models.PROTECT, related_name="dose_units")
    code = models.CharField(max_length=32, unique=True)
    number = models.PositiveSmallIntegerField(help_text="1..per_allocation, the order of use")

    class Meta:
        ordering = ["slot", "number"]
        constraints = [models.UniqueConstraint(fields=["slot", "number"], name="doseunit_unique_number")]

    def __str__(self) -> str:
        return self.code
