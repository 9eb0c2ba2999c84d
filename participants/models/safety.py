"""Safety: alerts raised by the protocol's rules and adverse events."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.timezone import now

from trialsite.audit import tracked

from .participant import Participant


class AlertStatus(models.TextChoices):
    OPEN = "open", "open"
    ESCALATED = "escalated", "escalated"
    ACKNOWLEDGED = "acknowledged", "acknowledged"


@tracked()
class SafetyAlert(models.Model):
    """A safety signal (from an answer, a reported side effect or an adverse event) that a clinician must
    acknowledge before `due_at`; unacknowledged alerts are escalated to the trial manager."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="safety_alerts")
    rule = models.CharField(max_length=64, help_text="protocol safety rule key")
    title = models.CharField(max_length=255)
    severity = models.CharField(max_length=16)
    source_kind = models.CharField(max_length=32, help_text="response, side_effect or adverse_event")
    source_id = models.CharField(max_length=64, help_text="uuid of the triggering record")
    details = models.JSONField(default=dict, blank=True, help_text="values that fired the rule; no arm")
    status = models.CharField(max_length=16, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    raised_at = models.DateTimeField(default=now)
    study_day = models.IntegerField(
        null=True, blank=True, help_text="study day (participant's local date) when recorded; none before day 0"
    )
    due_at = models.DateTimeField()
    notified_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    acknowledgement_note = models.TextField(blank=True)

    class Meta:
        ordering = ["due_at"]
        constraints = [
            # One alert per rule per triggering record: a retried submission never raises it twice.
            models.UniqueConstraint(fields=["rule", "source_kind", "source_id"], name="safetyalert_once_per_source"),
            models.CheckConstraint(condition=models.Q(status__in=AlertStatus.values), name="safetyalert_status_valid"),
            models.CheckConstraint(
                condition=~models.Q(status="acknowledged") | models.Q(acknowledged_at__isnull=False),
                name="safetyalert_ack_has_time",
            ),
        ]
        indexes = [models.Index(fields=["status", "due_at"])]

    def __str__(self) -> str:
        return f"{self.participant} {self.rule} ({self.status})"


class Relatedness(models.TextChoices):
    NOT_RELATED = "not_related", "not related"
    UNLIKELY = "unlikely", "unlikely"
    POSSIBLE = "possible", "possible"
    PROBABLE = "probable", "probable"
    DEFINITE = "definite", "definite"


class AeOutcome(models.TextChoices):
    RECOVERED = "recovered", "recovered/resolved"
    RECOVERING = "recovering", "recovering/resolving"
    NOT_RECOVERED = "not_recovered", "not recovered/not resolved"
    RECOVERED_WITH_SEQUELAE = "recovered_with_sequelae", "recovered with sequelae"
    FATAL = "fatal", "fatal"
    UNKNOWN = "unknown", "unknown"


class AeAction(models.TextChoices):
    NONE = "none", "dose not changed"
    INTERRUPTED = "interrupted", "drug interrupted"
    WITHDRAWN = "withdrawn", "drug withdrawn"
    NOT_APPLICABLE = "not_applicable", "not applicable"
    UNKNOWN = "unknown", "unknown"


SERIOUSNESS_CRITERIA = (
    "death",
    "life_threatening",
    "hospitalisation",
    "disability",
    "congenital_anomaly",
    "other_medically_important",
)


@tracked()
class AdverseEvent(models.Model):
    """A staff-entered adverse event report; follow-up reports point at the report they update."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="adverse_events")
    previous = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="follow_up", help_text="report updated"
    )
    onset = models.DateField()
    description = models.TextField()
    severity_grade = models.PositiveSmallIntegerField(help_text="CTCAE-style grade 1-5")
    serious = models.BooleanField(default=False)
    seriousness_criteria = models.JSONField(default=list, blank=True)
    relatedness = models.CharField(max_length=16, choices=Relatedness.choices)
    action_taken = models.CharField(max_length=16, choices=AeAction.choices)
    outcome = models.CharField(max_length=32, choices=AeOutcome.choices)
    reported_at = models.DateTimeField(default=now)
    study_day = models.IntegerField(
        null=True, blank=True, help_text="study day (participant's local date) when recorded; none before day 0"
    )
    reported_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["participant", "reported_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(severity_grade__gte=1, severity_grade__lte=5), name="adverseevent_grade_1_5"
            ),
            models.CheckConstraint(
                condition=models.Q(relatedness__in=Relatedness.values), name="adverseevent_relatedness_valid"
            ),
            models.CheckConstraint(condition=models.Q(outcome__in=AeOutcome.values), name="adverseevent_outcome_valid"),
            models.CheckConstraint(
                condition=models.Q(action_taken__in=AeAction.values), name="adverseevent_action_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(serious=False, seriousness_criteria=[])
                | (models.Q(serious=True) & ~models.Q(seriousness_criteria=[])),
                name="adverseevent_serious_has_criteria",
            ),
        ]

    def __str__(self) -> str:
        return f"AE {self.uuid} of {self.participant_id}"
