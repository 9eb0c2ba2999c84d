"""Participants: enrolment, consent, randomisation, blinding, withdrawal, safety.

Arm-bearing data (arm names, allocations, dose-unit contents) are listed in participants.blinding.REGISTRY;
every interface that shows data consults it.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.timezone import now

from trialsite.audit import tracked


class ParticipantStatus(models.TextChoices):
    SCREEN_FAILED = "screen_failed", "screen failed"
    REGISTERED = "registered", "registered (code issued)"
    ENROLLED = "enrolled", "enrolled (phone linked)"
    RANDOMISED = "randomised", "randomised"
    COMPLETED = "completed", "completed"
    WITHDRAWN = "withdrawn", "withdrawn"


class WithdrawalScope(models.TextChoices):
    INTERVENTION = "intervention", "stop intervention only"
    ALL = "all", "stop all further contact and data collection"


@tracked()
class Participant(models.Model):
    """A person in a trial at one site. Identified outside the site by study id only.

    `user` is the Django user that the phone's bearer token authenticates as (unusable password);
    it carries no personal data.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    study_id = models.CharField(max_length=32, unique=True)
    trial = models.ForeignKey("trialsite.Trial", on_delete=models.PROTECT, related_name="participants")
    site = models.ForeignKey("trialsite.Site", on_delete=models.PROTECT, related_name="participants")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="participant", null=True, blank=True
    )
    status = models.CharField(max_length=16, choices=ParticipantStatus.choices, default=ParticipantStatus.REGISTERED)
    timezone = models.CharField(max_length=64, help_text="IANA zone; schedules are planned in it")
    quiet_hours_start = models.TimeField(null=True, blank=True, help_text="empty: the protocol's default")
    quiet_hours_end = models.TimeField(null=True, blank=True)
    channels = models.JSONField(default=list, blank=True, help_text="reminder channels: email, sms, push")
    push_token = models.TextField(blank=True, help_text="device push token; never exported")
    eligibility = models.JSONField(default=dict, help_text="criterion key → bool, as screened")
    eligible = models.BooleanField(default=False)
    stratum = models.CharField(max_length=128, blank=True, help_text="randomisation stratum, e.g. LDN|ge10")
    registered_at = models.DateTimeField(default=now)
    enrolled_at = models.DateTimeField(null=True, blank=True, help_text="phone linked with the enrolment code")
    randomised_at = models.DateTimeField(null=True, blank=True)
    day0 = models.DateField(null=True, blank=True, help_text="local date of randomisation (study day 0)")
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawal_scope = models.CharField(max_length=16, choices=WithdrawalScope.choices, blank=True)
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    locked = models.BooleanField(default=False, help_text="data locked by data management")

    class Meta:
        ordering = ["study_id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=ParticipantStatus.values), name="participant_status_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(status="randomised", randomised_at__isnull=False, day0__isnull=False)
                | ~models.Q(status="randomised"),
                name="participant_randomised_has_day0",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="screen_failed") | models.Q(eligible=False),
                name="participant_screen_failed_not_eligible",
            ),
            models.CheckConstraint(
                condition=models.Q(withdrawal_scope__in=["", *WithdrawalScope.values]),
                name="participant_withdrawal_scope_valid",
            ),
        ]
        indexes = [models.Index(fields=["trial", "site", "status"])]

    def __str__(self) -> str:
        return self.study_id

    @property
    def zone(self):
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.timezone)

    @property
    def is_withdrawn(self) -> bool:
        return self.status == ParticipantStatus.WITHDRAWN and self.withdrawal_scope == WithdrawalScope.ALL

    def study_day(self, at=None) -> int | None:
        """Study day of an instant (default now) from the participant's local date; None before day 0."""
        if self.day0 is None:
            return None
        at = at or now()
        return (at.astimezone(self.zone).date() - self.day0).days


@tracked()
class ConsentDocument(models.Model):
    """A consent document version from the protocol; its text is hashed so a signature binds to it."""

    trial = models.ForeignKey("trialsite.Trial", on_delete=models.PROTECT, related_name="consent_documents")
    version = models.CharField(max_length=32)
    title = models.CharField(max_length=255)
    body = models.TextField()
    sha256 = models.CharField(max_length=64)
    valid_from = models.DateField()
    valid_to = models.DateField(null=True, blank=True)
    requires_reconsent = models.BooleanField(default=False)
    protocol_version = models.ForeignKey("trialsite.ProtocolVersion", on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["trial", "valid_from", "version"]
        constraints = [
            models.UniqueConstraint(fields=["trial", "version"], name="consentdocument_unique_version"),
        ]

    def __str__(self) -> str:
        return f"{self.trial.slug} consent {self.version}"


@tracked()
class ConsentSignature(models.Model):
    """One signature (append-only): electronic from the phone, or paper recorded by staff."""

    ELECTRONIC = "electronic"
    PAPER = "paper"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="consents")
    document = models.ForeignKey(ConsentDocument, on_delete=models.PROTECT, related_name="signatures")
    method = models.CharField(max_length=16, choices=[(ELECTRONIC, ELECTRONIC), (PAPER, PAPER)])
    sha256 = models.CharField(max_length=64, help_text="hash of the exact text shown")
    typed_name = models.CharField(max_length=255, blank=True)
    signed_at = models.DateTimeField(default=now)
    device = models.JSONField(default=dict, blank=True)
    paper_reference = models.CharField(max_length=255, blank=True, help_text="scanned copy reference")
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["participant", "signed_at"]
        constraints = [
            models.UniqueConstraint(fields=["participant", "document"], name="consentsignature_once_per_version"),
            models.CheckConstraint(condition=models.Q(method__in=["electronic", "paper"]), name="consent_method_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.participant} signed {self.document.version}"


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
