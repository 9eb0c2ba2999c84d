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
    completed_on = models.DateField(
        null=True, blank=True, help_text="end of study: the participant's local date their schedule was complete"
    )
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


# --- Registration: study ids, contact details (PII), enrolment codes ---------------------------------------


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


# --- Randomisation (arm-bearing: see participants.blinding.REGISTRY) ----------------------------------------


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


# --- Withdrawal, adverse events, emergency unblinding -------------------------------------------------------


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


# --- Coordinators' blinding guesses -----------------------------------------------------------------------


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


# --- Web Push subscriptions (the participant app) ------------------------------------------------------------


class PushSubscription(models.Model):
    """One browser's Web Push subscription for a participant (one row per device). Not clinical data and not
    arm-bearing: deleted when the participant's browser or the push service says it is gone. Never exported."""

    # CASCADE: a subscription means nothing without its participant (participants themselves are never deleted).
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="push_subscriptions")
    endpoint = models.TextField(help_text="the push service URL the browser gave; a capability, never logged")
    p256dh = models.CharField(max_length=128, help_text="the browser's P-256 public key, base64url")
    auth = models.CharField(max_length=64, help_text="the browser's 16-byte auth secret, base64url")
    created_at = models.DateTimeField(default=now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["participant", "endpoint"], name="pushsub_endpoint_once_per_participant"),
            models.CheckConstraint(
                condition=models.Q(endpoint__startswith="https://")
                | models.Q(endpoint__startswith="http://127.0.0.1")
                | models.Q(endpoint__startswith="http://localhost"),
                name="pushsub_endpoint_is_url",
            ),
        ]

    def __str__(self) -> str:
        return f"push subscription {self.pk} of {self.participant_id}"


# --- What an active dose unit contains, per participant ----------------------------------------------------


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


# Self-blinding kits live in their own module (ARM-BEARING: see participants.blinding.REGISTRY).
from .kit_models import KitEnvelope  # noqa: E402, F401
