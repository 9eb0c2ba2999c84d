"""Data queries: data managers question a response (or one item); site staff answer; data managers close.

The thread is append-only (DataQueryMessage has a trigger refusing updates and deletes).
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from trialsite import policy
from trialsite import roles as R
from trialsite.audit import audit_context

from .models import DataQuery, DataQueryMessage, DataQueryStatus, Response


def data_query_can_reply(*, query: DataQuery, actor) -> bool:
    """Data managers follow up; the site's coordinators and the trial managers answer (trialsite.policy).
    Nobody writes to a closed one."""
    if query.status == DataQueryStatus.CLOSED:
        return False
    return policy.can(actor, policy.DATA_QUERY_REPLY, query)


def _body(text: str, field: str = "body") -> str:
    text = (text or "").strip()
    if not text:
        raise ValidationError({field: ["Write a message."]})
    return text


@transaction.atomic
def data_query_raise(*, response: Response, actor, subject: str, message: str, item_key: str = "") -> DataQuery:
    policy.require(actor, policy.DATA_QUERY_RAISE, response, "Only data managers raise data queries.")
    if item_key and not response.items.filter(item_key=item_key).exists():
        raise ValidationError({"item_key": [f"The response has no item {item_key!r}."]})
    query = DataQuery(
        participant_id=response.participant_id,
        response=response,
        item_key=item_key,
        subject=(subject or "").strip(),
        raised_by=actor,
    )
    query.full_clean()
    query.save()
    DataQueryMessage.objects.create(query=query, author=actor, body=_body(message, "message"))
    return query


@transaction.atomic
def data_query_reply(*, query: DataQuery, actor, body: str) -> DataQueryMessage:
    """Site staff answer (status → answered); a data manager's follow-up re-opens the question."""
    query = DataQuery.objects.select_for_update().select_related("participant").get(pk=query.pk)
    if query.status == DataQueryStatus.CLOSED:
        raise ValidationError({"body": ["The query is closed."]})
    if not data_query_can_reply(query=query, actor=actor):
        raise PermissionDenied("Only the site's coordinators, trial managers and data managers answer data queries.")
    data_manager = R.has_role(actor, R.DATA_MANAGER, trial=query.participant.trial_id)
    message = DataQueryMessage(query=query, author=actor, body=_body(body))
    message.full_clean()
    message.save()
    query.status = DataQueryStatus.OPEN if data_manager else DataQueryStatus.ANSWERED
    query.save(update_fields=["status"])
    return message


@transaction.atomic
def data_query_close(*, query: DataQuery, actor, note: str = "") -> DataQuery:
    query = DataQuery.objects.select_for_update().select_related("participant").get(pk=query.pk)
    policy.require(actor, policy.DATA_QUERY_CLOSE, query, "Only data managers close data queries.")
    if query.status == DataQueryStatus.CLOSED:
        return query
    if (note or "").strip():
        DataQueryMessage.objects.create(query=query, author=actor, body=note.strip())
    query.status = DataQueryStatus.CLOSED
    query.closed_by = actor
    query.closed_at = timezone.now()
    query.full_clean()
    query.save(update_fields=["status", "closed_by", "closed_at"])
    return query


@transaction.atomic
def response_lock(*, response: Response, actor, reason: str = "data lock") -> Response:
    """Data management locks a response: no path changes it afterwards (trialsite.policy.require_unlocked)."""
    response = Response.objects.select_for_update(of=("self",)).select_related("participant").get(pk=response.pk)
    policy.require(actor, policy.RECORD_LOCK, response, "Only data managers lock data.")
    if not response.locked:
        with audit_context(user=actor, reason=reason):
            response.locked = True
            response.save(update_fields=["locked"])
    return response
