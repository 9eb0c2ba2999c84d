"""What every app shares: trials, their protocol versions, sites, role grants, API tokens."""

from __future__ import annotations

import hashlib
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from .audit import tracked
from .roles import ROLE_CHOICES, SITE_SCOPED_ROLES


@tracked()
class Trial(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    slug = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=255)
    sites = models.ManyToManyField("Site", related_name="trials", blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # The latest ProtocolVersion, set by protocol_load in the transaction that creates it (under the trial's row
    # lock), so a request that has the trial row (e.g. with its bearer token) knows the current version without a
    # query per request. Null only before the first version is loaded.
    current_version = models.ForeignKey(
        "ProtocolVersion", null=True, blank=True, editable=False, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def current_protocol(self) -> ProtocolVersion:
        """The latest version's row (not the parsed protocol: that is protocol.services.protocol_current)."""
        from .protocol.services import ProtocolError, protocol_version_current

        try:
            return protocol_version_current(self)  # deferred fields (definition, source) load on first access
        except ProtocolError:
            return None


@tracked()
class ProtocolVersion(models.Model):
    """One immutable version of a trial's protocol (the validated YAML). A changed file is an amendment."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="protocol_versions")
    version = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    source = models.TextField(help_text="The YAML exactly as loaded.")
    definition = models.JSONField(help_text="The validated protocol, normalised.")
    source_path = models.CharField(max_length=500, blank=True)
    loaded_at = models.DateTimeField(default=timezone.now, editable=False)
    loaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["trial", "version"]
        constraints = [
            models.UniqueConstraint(fields=["trial", "version"], name="protocolversion_unique_version"),
            models.UniqueConstraint(fields=["trial", "sha256"], name="protocolversion_unique_content"),
            models.CheckConstraint(condition=models.Q(version__gte=1), name="protocolversion_version_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.trial.slug} v{self.version}"


@tracked()
class Site(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    code = models.CharField(max_length=16, unique=True)
    name = models.CharField(max_length=255)
    timezone = models.CharField(max_length=64, help_text="IANA zone of the site, e.g. Europe/London")

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


@tracked()
class RoleGrant(models.Model):
    """A role given to a staff user in one trial: at one site (site-scoped roles) or at all its sites (site empty).

    The only record of roles (trialsite.roles reads it). A grant whose trial is empty (left by the migration
    that introduced trials on grants, when it could not tell the trial) grants nothing until re-issued.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="role_grants")
    role = models.CharField(max_length=32, choices=ROLE_CHOICES)
    trial = models.ForeignKey(
        Trial,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="role_grants",
        help_text="the trial the role is held in; empty: an unassigned legacy grant, which grants nothing",
    )
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.PROTECT, related_name="role_grants")
    granted_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "role", "trial", "site"], name="rolegrant_unique_in_trial", nulls_distinct=False
            ),
            models.CheckConstraint(
                condition=models.Q(role__in=[r for r, _ in ROLE_CHOICES]), name="rolegrant_role_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(site__isnull=True) | models.Q(role__in=sorted(SITE_SCOPED_ROLES)),
                name="rolegrant_site_only_for_site_roles",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.role} in {self.trial or 'no trial'} @ {self.site or 'all sites'}"


class ApiToken(models.Model):
    """A bearer token for the API. Only the SHA-256 of the secret is stored; tokens expire and can be revoked."""

    PARTICIPANT = "participant"
    STAFF = "staff"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    kind = models.CharField(max_length=16, choices=[(PARTICIPANT, PARTICIPANT), (STAFF, STAFF)])
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    device = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(kind__in=["participant", "staff"]), name="apitoken_kind_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} token {self.uuid}"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()


class Heartbeat(models.Model):
    """Last time a Celery worker ran the heartbeat task, per source (beat or a test)."""

    source = models.CharField(max_length=64, unique=True)
    count = models.PositiveIntegerField(default=0)
    last_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.source}: {self.count}"

    @classmethod
    def beat(cls, *, source: str) -> int:
        obj, _ = cls.objects.get_or_create(source=source)
        cls.objects.filter(pk=obj.pk).update(count=models.F("count") + 1, last_at=timezone.now())
        obj.refresh_from_db()
        return obj.count


class StaffLoginEvent(models.Model):
    """Append-only record of staff sign-ins, sign-outs, failures and lock-outs (admin and staff API)."""

    LOGIN = "login"
    LOGOUT = "logout"
    FAILED = "failed"
    LOCKED_OUT = "locked_out"
    KINDS = [(LOGIN, LOGIN), (LOGOUT, LOGOUT), (FAILED, "failed login"), (LOCKED_OUT, "locked out")]

    kind = models.CharField(max_length=16, choices=KINDS)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="login_events"
    )
    username = models.CharField(max_length=150, blank=True, help_text="as typed (failures may name no user)")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=255, blank=True)
    path = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=["login", "logout", "failed", "locked_out"]),
                name="staffloginevent_kind_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.username} {self.at:%Y-%m-%d %H:%M}"


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "pending"
    SENT = "sent", "sent"
    FAILED = "failed", "failed"


class OutboxMessage(models.Model):
    """An effect outside PostgreSQL (an e-mail, a task) recorded in the transaction of the change that needs it.

    Published best effort on commit, re-published by the beat sweep until a worker delivered it (trialsite.outbox).
    `dedupe_key` is unique: recording the same effect twice is a no-op. `claimed_at` is set while a worker runs the
    handler (outside any lock); a claim older than OUTBOX_CLAIM_STALE_AFTER belongs to a dead worker and is retried.
    """

    kind = models.CharField(max_length=64)
    dedupe_key = models.CharField(max_length=200, unique=True)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=OutboxStatus.choices, default=OutboxStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # The trial the effect is about (a notice of its alert, its managers' e-mail): the admin shows a message to the
    # staff of that trial; a message of no trial (system housekeeping) only to system admins.
    trial = models.ForeignKey(Trial, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        indexes = [
            models.Index(fields=["next_attempt_at"], name="outbox_pending_due", condition=models.Q(status="pending")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "sent", "failed"]), name="outboxmessage_status_valid"
            ),
            models.CheckConstraint(
                condition=~models.Q(status="sent") | models.Q(sent_at__isnull=False),
                name="outboxmessage_sent_has_sent_at",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.dedupe_key} ({self.status})"
