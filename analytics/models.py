"""Exports: every bundle that leaves the system is recorded (who, what, when, why, and its checksum)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.timezone import now

from trialsite.audit import tracked

EXPORT_FORMATS = ("csv", "parquet", "spss", "stata")


class ExportStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    DONE = "done", "done"
    FAILED = "failed", "failed"


class ExportOrigin(models.TextChoices):
    API = "api", "requested through the API (run by a worker)"
    COMMAND = "command", "export_trial on the shell (run by the command itself)"


@tracked()
class ExportJob(models.Model):
    """One export bundle request. Runs as a background job; the file is kept under EXPORT_ROOT."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    trial = models.ForeignKey("trialsite.Trial", on_delete=models.PROTECT, related_name="export_jobs")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    blinded = models.BooleanField(default=True)
    formats = models.JSONField(default=list, help_text="csv always; parquet, spss, stata on request")
    reason = models.TextField(blank=True, help_text="why the export was pulled; required when unblinded")
    status = models.CharField(max_length=16, choices=ExportStatus.choices, default=ExportStatus.QUEUED)
    progress = models.FloatField(default=0.0, help_text="0..1")
    created_at = models.DateTimeField(default=now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    file_path = models.CharField(max_length=500, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the zip bundle")
    manifest = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    # Finishing under faults: a run claims the job (attempts + 1, the attempt number is its lease) and beats
    # `heartbeat_at` while it writes; the beat sweep re-queues a running job whose heartbeat went stale (worker
    # killed) and re-publishes a queued job whose message was lost (`queued_at` too old).
    origin = models.CharField(max_length=16, choices=ExportOrigin.choices, default=ExportOrigin.API)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="runs claimed so far")
    queued_at = models.DateTimeField(default=now, help_text="when it was (re-)queued or last re-published")
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="last sign of life of the running attempt")
    # The requester's Idempotency-Key (optional header of POST /api/v1/staff/exports): one job per key, so a
    # double click or a retry on another web process never starts a second bundle.
    idempotency_key = models.UUIDField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=ExportStatus.values), name="exportjob_status_valid"),
            models.CheckConstraint(
                condition=models.Q(progress__gte=0) & models.Q(progress__lte=1), name="exportjob_progress_range"
            ),
            models.CheckConstraint(
                condition=models.Q(blinded=True) | ~models.Q(reason=""), name="exportjob_unblinded_has_reason"
            ),
            models.CheckConstraint(
                condition=~models.Q(status="done") | (~models.Q(sha256="") & ~models.Q(file_path="")),
                name="exportjob_done_has_file",
            ),
            models.CheckConstraint(condition=models.Q(origin__in=ExportOrigin.values), name="exportjob_origin_valid"),
            models.CheckConstraint(
                condition=~models.Q(status="running") | models.Q(heartbeat_at__isnull=False, attempts__gt=0),
                name="exportjob_running_has_heartbeat",
            ),
            models.UniqueConstraint(
                fields=["requested_by", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="exportjob_unique_idempotency_key",
            ),
        ]
        indexes = [models.Index(fields=["status", "queued_at"]), models.Index(fields=["status", "heartbeat_at"])]

    def __str__(self) -> str:
        return f"export {self.uuid} of {self.trial_id} ({self.status})"


class CompletionSnapshot(models.Model):
    """Completion by site and study week of one trial, as computed at `computed_at` by
    analytics.selectors.completion_site_week_rows (the one definition, surveys.definitions): rows of (site_id,
    site, week, planned, answered, on_time); and the summary API's other slow figures in `figures`
    (analytics.summary). Written by the beat task (analytics.completion_snapshots) and read by the admin dashboard
    and the summary API, narrowed to the viewer's sites on read. Blinded: counts and latencies per site, no arm."""

    trial = models.OneToOneField("trialsite.Trial", on_delete=models.CASCADE, related_name="completion_snapshot")
    computed_at = models.DateTimeField(help_text="the moment the figures are for (due and answered by then)")
    rows = models.JSONField(default=list, help_text="[{site_id, site, week, planned, answered, on_time}, …]")
    figures = models.JSONField(
        default=dict,
        help_text="the summary API's other per-site figures (analytics.summary.summary_site_figures): adherence by "
        "site and week, response latency overall and per site; empty in a row stored before they were kept",
    )

    def __str__(self) -> str:
        return f"completion of {self.trial_id} as of {self.computed_at:%Y-%m-%d %H:%M}"


class BlindingSnapshot(models.Model):
    """ARM-BEARING (participants.blinding.REGISTRY, whole model): the unblinded summary's blinding figures of one
    trial and outcome, for every site, as computed at `computed_at` by analytics.blinding_snapshots.blinding_figures
    (per-arm Bang and James indices of the participants and of the coordinators, and the per-session figures with
    the seeded CGRC). Written with the trial's CompletionSnapshot, at the same `computed_at`, by the same refresh
    (analytics.completion_snapshots); read only by the summary of the trial's unblinded roles. Kept apart from
    CompletionSnapshot, which every role reads and which holds no arm. No admin, no audit trail, not exported."""

    trial = models.ForeignKey("trialsite.Trial", on_delete=models.CASCADE, related_name="+")
    outcome = models.CharField(
        max_length=200, help_text='the per-session figures\' outcome, "instrument.score" ("" when the trial has none)'
    )
    computed_at = models.DateTimeField(help_text="the moment the figures are for (= its CompletionSnapshot's)")
    figures = models.JSONField(default=dict, help_text="{indices, coordinator_indices, sessions}: arm-bearing")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trial", "outcome"], name="blindingsnapshot_one_per_trial_outcome")
        ]

    def __str__(self) -> str:
        return f"blinding figures of {self.trial_id} ({self.outcome or 'no outcome'})"
