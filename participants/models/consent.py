"""Consent: document versions from the protocol and the participants' signatures."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.timezone import now

from trialsite.audit import tracked

from .participant import Participant


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
