"""Materialises the participants part of a protocol version: consent document versions."""

from __future__ import annotations

import hashlib

from .models import Arm, ConsentDocument


def consent_text_sha256(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def load_participants_part(*, trial, version, protocol, previous, now=None) -> None:
    _load_arms(trial=trial, protocol=protocol)
    for doc in protocol.consent:
        existing = ConsentDocument.objects.filter(trial=trial, version=doc.version).first()
        digest = consent_text_sha256(doc.body)
        if existing is not None:
            if existing.sha256 != digest:
                from trialsite.protocol.services import ProtocolError

                raise ProtocolError(
                    [f"consent: version {doc.version!r} exists with a different text; give the new text a new version"]
                )
            # Amendments may change a version's validity (e.g. close it when a new version starts).
            changed = {
                "valid_from": doc.valid_from,
                "valid_to": doc.valid_to,
                "requires_reconsent": doc.requires_reconsent,
            }
            if any(getattr(existing, k) != v for k, v in changed.items()):
                for k, v in changed.items():
                    setattr(existing, k, v)
                existing.save(update_fields=list(changed))
            continue
        ConsentDocument.objects.create(
            trial=trial,
            version=doc.version,
            title=doc.title,
            body=doc.body,
            sha256=digest,
            valid_from=doc.valid_from,
            valid_to=doc.valid_to,
            requires_reconsent=doc.requires_reconsent,
            protocol_version=version,
        )


def _load_arms(*, trial, protocol) -> None:
    """Arms are created once; an amendment may not rename an arm or change its ratio after allocation began."""
    from trialsite.protocol.services import ProtocolError

    for arm in protocol.arms:
        existing = Arm.objects.filter(trial=trial, code=arm.code).first()
        if existing is None:
            Arm.objects.create(trial=trial, code=arm.code, name=arm.name, ratio=arm.ratio)
            continue
        if (existing.name, existing.ratio) != (arm.name, arm.ratio):
            if trial.allocation_lists.exists():
                raise ProtocolError([f"arms: arm {arm.code!r} cannot change once an allocation list exists"])
            existing.name, existing.ratio = arm.name, arm.ratio
            existing.save(update_fields=["name", "ratio"])
