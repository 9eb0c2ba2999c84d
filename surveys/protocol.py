"""The trial's current protocol, parsed once per immutable protocol version (a hot path of every submission)."""

from __future__ import annotations

from functools import lru_cache

from trialsite.models import ProtocolVersion
from trialsite.protocol.schema import Protocol
from trialsite.protocol.services import ProtocolError


@lru_cache(maxsize=32)
def _parsed(pk: int, sha256: str) -> Protocol:
    # Keyed by content hash too: protocol versions are immutable, so a cached parse is never stale.
    return Protocol.model_validate(ProtocolVersion.objects.get(pk=pk).definition)


def protocol_version_current(trial_id: int) -> tuple[ProtocolVersion | None, Protocol]:
    row = ProtocolVersion.objects.filter(trial_id=trial_id).order_by("-version").only("pk", "sha256", "version").first()
    if row is None:
        raise ProtocolError([f"trial {trial_id} has no protocol loaded"])
    return row, _parsed(row.pk, row.sha256)


def protocol_of_trial(trial_id: int) -> Protocol:
    return protocol_version_current(trial_id)[1]
