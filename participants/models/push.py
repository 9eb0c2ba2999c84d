"""Web Push subscriptions of the participants' phones."""

from __future__ import annotations

from django.db import models
from django.utils.timezone import now

from .participant import Participant


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
