"""Audit context shared by every app.

Changes are recorded by database triggers (django-pghistory), so bulk updates and raw SQL are captured.
This module attaches *who* and *why* to those rows: the acting user, the request id and a reason.

    with audit_context(user=request.user, reason="participant called to correct the date"):
        adverse_event_update(...)

Services that edit submitted clinical data call ``require_reason(reason)`` first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pghistory
from django.core.exceptions import ValidationError


def _user_id(user) -> int | None:
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user.pk


@contextlib.contextmanager
def audit_context(*, user=None, reason: str | None = None, **extra) -> Iterator[None]:
    """Group the enclosed changes under one audit context carrying user, reason and extra metadata."""
    metadata = {k: v for k, v in extra.items() if v is not None}
    if user is not None:
        metadata["user"] = _user_id(user)
    if reason:
        metadata["reason"] = reason
    with pghistory.context(**metadata):
        yield


def annotate(**metadata) -> None:
    """Add metadata (e.g. the user resolved by token authentication) to the active audit context."""
    clean = {k: v for k, v in metadata.items() if v is not None}
    if "user" in clean and not isinstance(clean["user"], int):
        clean["user"] = _user_id(clean["user"])
    if clean:
        pghistory.context(**clean)


def require_reason(reason: str | None, *, field: str = "reason") -> str:
    """Edits of submitted clinical data must say why; returns the stripped reason."""
    reason = (reason or "").strip()
    if len(reason) < 3:
        raise ValidationError({field: ["A reason for the change is required."]})
    return reason


# The audit subject (trialsite.admin_audit.register_audit_subject checks the registered one is this model): its
# copied foreign keys stay indexed in every event table (settings: PGHISTORY_FOREIGN_KEY_FIELD indexes no other).
SUBJECT = "participants.participant"


def tracked():
    """Decorator for clinical models: every insert, update and delete is recorded by triggers. The event model's
    copies of foreign keys to the audit subject stay indexed (the audit trail finds a participant's events by them:
    pghistory's `references()`); the other copied keys are not (no page looks events up by them)."""

    def track(model):
        indexed = {
            field.name: _indexed_event_field(model, field.name)
            for field in model._meta.local_fields
            if field.is_relation and _label(model, field.remote_field.model) == SUBJECT
        }
        events = (pghistory.InsertEvent(), pghistory.UpdateEvent(), pghistory.DeleteEvent())
        return pghistory.track(*events, attrs=indexed or None)(model)

    return track


def _label(model, target) -> str:
    """The lower-case `app_label.model` of a foreign key's target, which may still be a lazy reference."""
    if not isinstance(target, str):
        return target._meta.label_lower
    return (target if "." in target else f"{model._meta.app_label}.{target}").lower()


def _indexed_event_field(model, name: str):
    """The event model's copy of `model.name` as pghistory makes it (pghistory.core._generate_history_field, private
    API: the field construction the settings configure), with its index."""
    from pghistory.core import _generate_history_field

    field = _generate_history_field(model, name)
    field.db_index = True
    return field


# pgtrigger's `_pgtrigger_should_ignore(trigger_name)`, which every audit trigger calls first on every row, reads
# the `pgtrigger.ignore` setting inside an EXCEPTION block: a subtransaction on every audited row (issue 14: about
# a fifth of the audit triggers' cost on a survey submission). This one decides the same (the setting unset or
# empty: FALSE; otherwise whether the trigger's name is in the array it holds, NULL when the array does) and reads
# the setting with current_setting(..., missing_ok), entering its EXCEPTION block only to cast a set value.
# pgtrigger writes its own version again with every trigger a migration installs, so this one is written after
# every `migrate` (post_migrate, see trialsite.apps), as pghistory installs its context function.
SHOULD_IGNORE_SQL = """
CREATE OR REPLACE FUNCTION "public"._pgtrigger_should_ignore(trigger_name NAME)
RETURNS BOOLEAN AS $$
    DECLARE
        _setting TEXT := current_setting('pgtrigger.ignore', true);
        _pgtrigger_ignore TEXT[];
    BEGIN
        IF _setting IS NULL OR _setting = '' THEN
            RETURN FALSE;
        END IF;
        BEGIN
            _pgtrigger_ignore := _setting::TEXT[];
        EXCEPTION WHEN OTHERS THEN
            RETURN FALSE;
        END;
        RETURN trigger_name = ANY(_pgtrigger_ignore);
    END;
$$ LANGUAGE plpgsql;
"""


def should_ignore_install(*, using: str = "default", **kwargs) -> None:
    """(post_migrate receiver) Write the cheaper `_pgtrigger_should_ignore` (above) into the migrated database."""
    from django.db import connections

    with connections[using].cursor() as cursor:
        cursor.execute(SHOULD_IGNORE_SQL)
