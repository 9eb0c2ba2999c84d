"""Kept only so branches in flight still import: the one definition is trialsite.protocol.services.

New code calls `protocol_current(trial)`, `protocol_version_current(trial)` and `protocol_of_version(version)`.
"""

from __future__ import annotations

from trialsite.models import ProtocolVersion
from trialsite.protocol.schema import Protocol
from trialsite.protocol.services import protocol_current, protocol_of_version
from trialsite.protocol.services import protocol_version_current as _row


def protocol_version_current(trial_id: int) -> tuple[ProtocolVersion, Protocol]:
    row = _row(trial_id)
    return row, protocol_of_version(row)


def protocol_of_trial(trial_id: int) -> Protocol:
    return protocol_current(trial_id)
