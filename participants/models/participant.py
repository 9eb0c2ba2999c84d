"""Participants: status, study day, study ids, contact details (and who read them), enrolment codes,
withdrawal."""

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
    completed_on = models.DateField(
        null=True, blank=True, help_text="end of study: the participant's local date their schedule was complete"
    )
    withdrawal_scope = models.CharField(max_length=16, choices=WithdrawalScope.choices, blank=True)
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    locked = models.BooleanField(default=False, help_text="data locked by data management")
    tokens_revoked_at = models.DateTimeField(
        null=True, blank=True, help_text="when staff last revoked the phone's tokens (a lost phone); audited"
    )

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
                condition=~models.Q(status="completed") | models.Q(completed_on__isnull=False, day0__isnull=False),
                name="participant_completed_has_date",
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
        return study_day_of(day0=self.day0, zone=self.zone, at=at or now())

    def local_date(self, at=None):
        """The participant's own calendar date at an instant (default now): consent, day 0, end of study."""
        return (at or now()).astimezone(self.zone).date()


def study_day_of(*, day0, zone, at) -> int | None:
    """THE study day of an instant for a participant: their local date in `zone` minus day 0 (None without a
    day 0). Services store it when a row is recorded; the simulator uses it too; the export shows it as stored."""
    if day0 is None:
        return None
    return (at.astimezone(zone).date() - day0).days


class StudyIdSequence(models.Model):
    """The last study-id number used at a site. Numbers are taken under a row lock and never reused."""

    site = models.OneToOneField("trialsite.Site", on_delete=models.PROTECT, related_name="+")
    last_number = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(last_number__gte=0), name="studyidseq_nonnegative")]

    def __str__(self) -> str:
        return f"{self.site_id}: {self.last_number}"


@tracked()
class ContactDetails(models.Model):
    """A participant's name, e-mail and phone, Fernet-encrypted (participants.crypto). Never exported;
    read only through participants.services.contact_view (which records every view)."""

    participant = models.OneToOneField(Participant, on_delete=models.PROTECT, related_name="contact")
    name_encrypted = models.TextField(blank=True)
    email_encrypted = models.TextField(blank=True)
    phone_encrypted = models.TextField(blank=True)
    has_email = models.BooleanField(default=False)
    has_phone = models.BooleanField(default=False)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        verbose_name_plural = "contact details"

    def __str__(self) -> str:
        return f"contact details of {self.participant_id}"


class ContactAccess(models.Model):
    """One view of a participant's contact details by a staff user (append-only audit)."""

    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    purpose = models.CharField(max_length=255)
    accessed_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-accessed_at"]
        verbose_name = "contact details view"
        verbose_name_plural = "contact details views"

    def __str__(self) -> str:
        return f"{self.user_id} viewed contact of {self.participant_id}"


@tracked()
class EnrolmentCode(models.Model):
    """A one-time, expiring code that links a phone to a participant. Only its keyed hash is searchable;
    the code itself is kept encrypted while it is live (to draw the QR code) and wiped when it dies."""

    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="enrolment_codes")
    code_hash = models.CharField(max_length=64, unique=True)
    code_encrypted = models.TextField(blank=True)
    issued_at = models.DateTimeField(default=now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-issued_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(expires_at__gt=models.F("issued_at")), name="enrolcode_expiry"),
            # At most one live code per participant: re-issuing revokes the previous one.
            models.UniqueConstraint(
                fields=["participant"],
                condition=models.Q(used_at__isnull=True, revoked_at__isnull=True),
                name="enrolcode_one_live_per_participant",
            ),
        ]

    def __str__(self) -> str:
        return f"enrolment code of {self.participant_id}"


@tracked()
class Withdrawal(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="withdrawals")
    scope = models.CharField(max_length=16, choices=WithdrawalScope.choices)
    reason = models.TextField(blank=True)
    withdrawn_at = models.DateTimeField(default=now)
    study_day = models.IntegerField(
        null=True, blank=True, help_text="study day (participant's local date) when recorded; none before day 0"
    )
    by_participant = models.BooleanField(default=False)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["participant", "withdrawn_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(scope__in=WithdrawalScope.values), name="withdrawal_scope_valid"),
            models.UniqueConstraint(fields=["participant", "scope"], name="withdrawal_once_per_scope"),
        ]

    def __str__(self) -> str:
        return f"{self.participant_id} withdrew ({self.scope})"
