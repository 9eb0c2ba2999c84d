"""Instruments, survey instances (the materialised schedule), responses, phone-reported data, reminders.

Times are stored in UTC. Each instance also keeps the IANA zone and the local wall-clock date and time
it was planned in, so a prompt's life can be read in the participant's own time.
"""

from __future__ import annotations

import uuid

import pgtrigger
from django.conf import settings
from django.db import models
from django.utils.timezone import now

from trialsite.audit import tracked


class Instrument(models.Model):
    """One version of an instrument, from the protocol. A new version never re-interprets old answers."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    trial = models.ForeignKey("trialsite.Trial", on_delete=models.PROTECT, related_name="instruments")
    slug = models.SlugField(max_length=64)
    version = models.PositiveIntegerField()
    title = models.CharField(max_length=255)
    definition = models.JSONField(help_text="items, choices and scoring as validated from the protocol")
    protocol_version = models.ForeignKey("trialsite.ProtocolVersion", on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["trial", "slug", "version"]
        constraints = [
            models.UniqueConstraint(fields=["trial", "slug", "version"], name="instrument_unique_version"),
        ]

    def __str__(self) -> str:
        return f"{self.slug} v{self.version}"


class InstanceStatus(models.TextChoices):
    SCHEDULED = "scheduled", "scheduled"  # upcoming or open, depending on now
    COMPLETED = "completed", "completed"
    MISSED = "missed", "missed"
    CANCELLED = "cancelled", "cancelled"


@tracked()
class SurveyInstance(models.Model):
    """One planned occurrence of a schedule event for one participant."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    participant = models.ForeignKey("participants.Participant", on_delete=models.PROTECT, related_name="instances")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="instances")
    schedule_key = models.CharField(max_length=64)
    study_day = models.IntegerField(help_text="day relative to the anchor (consent or randomisation)")
    timezone = models.CharField(max_length=64, help_text="IANA zone the instance was planned in")
    local_date = models.DateField()
    local_time = models.TimeField(null=True, blank=True, help_text="planned local wall-clock time")
    opens_at = models.DateTimeField()
    closes_at = models.DateTimeField()
    grace_until = models.DateTimeField(help_text="answers after closes_at and before this are accepted as late")
    status = models.CharField(max_length=16, choices=InstanceStatus.choices, default=InstanceStatus.SCHEDULED)
    protocol_version = models.ForeignKey("trialsite.ProtocolVersion", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=now)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=64, blank=True)
    dose = models.ForeignKey(
        "surveys.DoseLog",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="instances",
        help_text="the logged dose that opened it (an `after_dose` schedule entry)",
    )

    class Meta:
        ordering = ["opens_at", "id"]
        constraints = [
            # Re-planning cancels the old row and inserts a new one: one live instance per occurrence.
            models.UniqueConstraint(
                fields=["participant", "schedule_key", "study_day"],
                condition=~models.Q(status="cancelled") & models.Q(dose__isnull=True),
                name="surveyinstance_one_live_per_occurrence",
            ),
            # A dose-anchored entry opens one instance per logged dose, however often the dose is replayed/synced.
            models.UniqueConstraint(fields=["dose", "schedule_key"], name="surveyinstance_once_per_dose"),
            models.CheckConstraint(
                condition=models.Q(closes_at__gt=models.F("opens_at")), name="surveyinstance_window"
            ),
            models.CheckConstraint(
                condition=models.Q(grace_until__gte=models.F("closes_at")), name="surveyinstance_grace"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=InstanceStatus.values), name="surveyinstance_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "opens_at"]),
            models.Index(fields=["status", "closes_at"]),
            models.Index(fields=["participant", "status", "opens_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.participant_id}:{self.schedule_key}@{self.study_day}"


@tracked()
class Response(models.Model):
    """The answer to one survey instance (at most one). Keeps the client's authored time and our receive time."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    instance = models.OneToOneField(SurveyInstance, on_delete=models.PROTECT, related_name="response")
    participant = models.ForeignKey("participants.Participant", on_delete=models.PROTECT, related_name="responses")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="responses")
    idempotency_key = models.UUIDField()
    request_hash = models.CharField(max_length=64, help_text="SHA-256 of the canonical request body")
    answers = models.JSONField(help_text="item key → value, as validated")
    authored_at = models.DateTimeField(help_text="client's time, with its offset")
    authored_offset_minutes = models.IntegerField(default=0)
    received_at = models.DateTimeField(default=now)
    late = models.BooleanField(default=False)
    clock_skew = models.BooleanField(default=False, help_text="authored time too far from receive time")
    study_day = models.IntegerField(null=True, blank=True)
    source = models.CharField(max_length=16, default="api", help_text="api, fhir or sync")
    locked = models.BooleanField(default=False)

    class Meta:
        ordering = ["received_at"]
        constraints = [
            models.UniqueConstraint(fields=["participant", "idempotency_key"], name="response_unique_idempotency_key"),
        ]
        indexes = [
            # The blinding-guess answers (analytics: guess distributions and indices), a few per participant: read
            # through this index instead of a scan of every response of the trial.
            models.Index(
                fields=["participant"], condition=models.Q(answers__has_key="guess"), name="response_guess_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"response {self.uuid}"


@tracked()
class ItemAnswer(models.Model):
    # No index of its own: the unique (response, item_key) index serves every lookup by response, and a second
    # index would only cost each submission's inserts.
    response = models.ForeignKey(Response, on_delete=models.PROTECT, related_name="items", db_index=False)
    item_key = models.CharField(max_length=64)
    value = models.JSONField(null=True)
    value_numeric = models.FloatField(null=True, blank=True)
    value_text = models.TextField(blank=True)

    class Meta:
        ordering = ["response", "id"]
        constraints = [models.UniqueConstraint(fields=["response", "item_key"], name="itemanswer_unique_item")]

    def __str__(self) -> str:
        return f"{self.item_key}={self.value!r}"


class Score(models.Model):
    """A server-computed score of a response (never shown to participants)."""

    response = models.ForeignKey(Response, on_delete=models.PROTECT, related_name="scores", db_index=False)  # see above
    key = models.CharField(max_length=64)
    value = models.FloatField(null=True, blank=True, help_text="empty when not scored (missing items)")
    band = models.CharField(max_length=64, blank=True)
    scored = models.BooleanField(default=True)
    items_missing = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["response", "key"]
        constraints = [models.UniqueConstraint(fields=["response", "key"], name="score_unique_key")]

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class IdempotencyRecord(models.Model):
    """Every phone write is keyed: a retry returns the stored answer; the same key with another body is refused."""

    participant = models.ForeignKey("participants.Participant", on_delete=models.PROTECT, related_name="+")
    key = models.UUIDField()
    kind = models.CharField(max_length=32)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["participant", "key"], name="idempotencyrecord_unique_key"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.key}"


@tracked()
class DoseLog(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    participant = models.ForeignKey("participants.Participant", on_delete=models.PROTECT, related_name="doses")
    taken_at = models.DateTimeField()
    unit_code = models.CharField(max_length=64, blank=True)
    note = models.TextField(blank=True)
    study_day = models.IntegerField(null=True, blank=True)
    received_at = models.DateTimeField(default=now)
    idempotency_key = models.UUIDField()

    class Meta:
        ordering = ["taken_at"]
        constraints = [
            models.UniqueConstraint(fields=["participant", "idempotency_key"], name="doselog_unique_idempotency_key"),
        ]

    def __str__(self) -> str:
        return f"dose {self.participant_id} {self.taken_at:%Y-%m-%d}"


class Severity(models.TextChoices):
    MILD = "mild", "mild"
    MODERATE = "moderate", "moderate"
    SEVERE = "severe", "severe"


@tracked()
class SideEffect(models.Model):
    """A participant-reported adverse event (from the phone)."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    participant = models.ForeignKey("participants.Participant", on_delete=models.PROTECT, related_name="side_effects")
    started_on = models.DateField()
    description = models.TextField()
    severity = models.CharField(max_length=16, choices=Severity.choices)
    serious = models.BooleanField(default=False)
    ongoing = models.BooleanField(default=True)
    reported_at = models.DateTimeField(default=now)
    study_day = models.IntegerField(null=True, blank=True)
    idempotency_key = models.UUIDField()

    class Meta:
        ordering = ["reported_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "idempotency_key"], name="sideeffect_unique_idempotency_key"
            ),
            models.CheckConstraint(condition=models.Q(severity__in=Severity.values), name="sideeffect_severity_valid"),
        ]

    def __str__(self) -> str:
        return f"side effect {self.uuid}"


class PromptEvent(models.Model):
    """Phone telemetry for a prompt: delivered / opened (the first report of each kind counts)."""

    DELIVERED = "delivered"
    OPENED = "opened"

    instance = models.ForeignKey(SurveyInstance, on_delete=models.PROTECT, related_name="prompt_events")
    kind = models.CharField(max_length=16, choices=[(DELIVERED, DELIVERED), (OPENED, OPENED)])
    at = models.DateTimeField()
    received_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["instance", "kind"], name="promptevent_first_of_kind"),
            models.CheckConstraint(condition=models.Q(kind__in=["delivered", "opened"]), name="promptevent_kind_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.instance_id}"


class ReminderStatus(models.TextChoices):
    PENDING = "pending", "pending"
    QUEUED = "queued", "queued"
    SENT = "sent", "sent"
    SKIPPED = "skipped", "skipped"
    FAILED = "failed", "failed"
    CANCELLED = "cancelled", "cancelled"


class Reminder(models.Model):
    """One reminder stage of one instance: unique, so a retry, a redelivery or a second beat never sends twice."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    instance = models.ForeignKey(SurveyInstance, on_delete=models.PROTECT, related_name="reminders")
    stage = models.CharField(max_length=32)
    due_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=ReminderStatus.choices, default=ReminderStatus.PENDING)
    channel = models.CharField(max_length=16, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    queued_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    provider_id = models.CharField(max_length=128, blank=True)
    skip_reason = models.CharField(max_length=64, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["due_at"]
        constraints = [
            models.UniqueConstraint(fields=["instance", "stage"], name="reminder_once_per_stage"),
            models.CheckConstraint(condition=models.Q(status__in=ReminderStatus.values), name="reminder_status_valid"),
        ]
        indexes = [
            models.Index(fields=["status", "due_at"]),
            # The claim query's other arm (queued too long ago, to re-queue): only queued rows, by queued_at.
            models.Index(fields=["queued_at"], condition=models.Q(status="queued"), name="reminder_queued_requeue_idx"),
        ]

    def __str__(self) -> str:
        return f"reminder {self.stage} for {self.instance_id}"


# --- Data quality: queries raised by data managers on a response or one item (append-only threads) -------------


class DataQueryStatus(models.TextChoices):
    OPEN = "open", "open (awaiting the site)"
    ANSWERED = "answered", "answered by the site"
    CLOSED = "closed", "closed by data management"


@tracked()
class DataQuery(models.Model):
    """A data manager's question about a response (or one item of it). Site staff answer in the thread;
    only a data manager closes it. Messages are append-only (DataQueryMessage)."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    participant = models.ForeignKey("participants.Participant", on_delete=models.PROTECT, related_name="data_queries")
    response = models.ForeignKey(Response, on_delete=models.PROTECT, related_name="data_queries")
    item_key = models.CharField(max_length=64, blank=True, help_text="empty: the whole response")
    subject = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=DataQueryStatus.choices, default=DataQueryStatus.OPEN)
    raised_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    raised_at = models.DateTimeField(default=now)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-raised_at"]
        verbose_name_plural = "data queries"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=DataQueryStatus.values), name="dataquery_status_valid"
            ),
            models.CheckConstraint(
                condition=~models.Q(status="closed") | models.Q(closed_at__isnull=False, closed_by__isnull=False),
                name="dataquery_closed_has_closer",
            ),
        ]

    def __str__(self) -> str:
        return f"query {self.uuid}: {self.subject}"


class DataQueryMessage(models.Model):
    """One message of a data query thread. Append-only: a database trigger refuses updates and deletes."""

    query = models.ForeignKey(DataQuery, on_delete=models.PROTECT, related_name="messages")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    body = models.TextField()
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["query", "created_at", "id"]
        triggers = [
            pgtrigger.Protect(name="dataquerymessage_append_only", operation=pgtrigger.Update | pgtrigger.Delete),
        ]

    def __str__(self) -> str:
        return f"message {self.pk} on {self.query_id}"


# --- Reminder delivery claims and coordinator tasks (surveys.reminders) ----------------------------------


class ReminderDeliveryState(models.TextChoices):
    SENDING = "sending", "sending (claimed; the provider may or may not have it)"
    ERROR = "error", "error (the last attempt raised; will be retried)"
    SENT = "sent", "sent"
    FAILED = "failed", "failed (retries exhausted or a permanent error)"


class ReminderDelivery(models.Model):
    """The claim a worker commits BEFORE it calls the channel, one per reminder.

    A redelivered or retried task finds this row and knows a send may already have happened: it then re-sends
    only through a channel that de-duplicates on `idempotency_key` (the reminder's uuid), never otherwise.
    """

    reminder = models.ForeignKey(Reminder, on_delete=models.PROTECT, related_name="deliveries")
    channel = models.CharField(max_length=16)
    idempotency_key = models.UUIDField(help_text="given to the provider; equals the reminder's uuid")
    state = models.CharField(
        max_length=16, choices=ReminderDeliveryState.choices, default=ReminderDeliveryState.SENDING
    )
    attempts = models.PositiveSmallIntegerField(default=1)
    claimed_at = models.DateTimeField(default=now)
    finished_at = models.DateTimeField(null=True, blank=True)
    provider_id = models.CharField(max_length=128, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["reminder"], name="reminderdelivery_one_claim_per_reminder"),
            models.CheckConstraint(
                condition=models.Q(state__in=ReminderDeliveryState.values), name="reminderdelivery_state_valid"
            ),
            models.CheckConstraint(
                condition=~models.Q(state__in=["sent", "failed"]) | models.Q(finished_at__isnull=False),
                name="reminderdelivery_finished_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"delivery of reminder {self.reminder_id} ({self.state})"


class CoordinatorTaskKind(models.TextChoices):
    MISSED_IN_A_ROW = "missed_in_a_row", "surveys missed in a row"
    KIT_CODE_MISSING = "kit_code_missing", "self-blinding envelope code missing"


class CoordinatorTaskStatus(models.TextChoices):
    OPEN = "open", "open"
    DONE = "done", "done"


@tracked()
class CoordinatorTask(models.Model):
    """Work for the site coordinator (e.g. call a participant who missed several surveys in a row).

    Raised once per participant, kind and triggering instance, so a second sweep never raises it twice.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    participant = models.ForeignKey(
        "participants.Participant", on_delete=models.PROTECT, related_name="coordinator_tasks"
    )
    kind = models.CharField(max_length=32, choices=CoordinatorTaskKind.choices)
    trigger_instance = models.ForeignKey(SurveyInstance, on_delete=models.PROTECT, related_name="coordinator_tasks")
    title = models.CharField(max_length=255)
    details = models.JSONField(default=dict, blank=True, help_text="what raised it; never an arm or a score")
    status = models.CharField(max_length=16, choices=CoordinatorTaskStatus.choices, default=CoordinatorTaskStatus.OPEN)
    created_at = models.DateTimeField(default=now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey("auth.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    resolution_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "kind", "trigger_instance"], name="coordinatortask_once_per_trigger"
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=CoordinatorTaskKind.values), name="coordinatortask_kind_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=CoordinatorTaskStatus.values), name="coordinatortask_status_valid"
            ),
            models.CheckConstraint(
                condition=~models.Q(status="done") | models.Q(resolved_at__isnull=False),
                name="coordinatortask_done_has_time",
            ),
        ]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} for {self.participant_id} ({self.status})"
