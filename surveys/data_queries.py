"""Data queries: data managers question a response (or one item); site staff answer; data managers close.

The thread is append-only (DataQueryMessage has a trigger refusing updates and deletes).
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from trialsite import roles as R

from .models import DataQuery, DataQueryMessage, DataQueryStatus, Response

# "Site staff answer": the clinical staff of the participant's site (PRODUCT.md), not the read-only roles.
SITE_ANSWER_ROLES = (R.COORDINATOR, R.TRIAL_MANAGER)


def data_query_can_reply(*, query: DataQuery, user) -> bool:
    """Data managers follow up; the site's coordinators and trial managers answer. Nobody writes to a closed one."""
    if query.status == DataQueryStatus.CLOSED:
        return False
    return R.has_role(user, R.DATA_MANAGER) or R.can_reach_site(
        user, query.participant.site_id, roles=SITE_ANSWER_ROLES
    )


def _body(text: str, field: str = "body") -> str:
    text = (text or "").strip()
    if not text:
        raise ValidationError({field: ["Write a message."]})
    return text


@transaction.atomic
def data_query_raise(*, response: Response, user, subject: str, message: str, item_key: str = "") -> DataQuery:
    if not (R.has_role(user, R.DATA_MANAGER) or user.is_superuser):
        raise PermissionDenied("Only data managers raise data queries.")
    if item_key and not response.items.filter(item_key=item_key).exists():
        raise ValidationError({"item_key": [f"The response has no item {item_key!r}."]})
    query = DataQuery(
        participant_id=response.participant_id,
        response=response,
        item_key=item_key,
        subject=(subject or "").strip(),
        raised_by=user,
    )
    query.full_clean()
    query.save()
    DataQueryMessage.objects.create(query=query, author=user, body=_body(message, "message"))
    return query


@transaction.atomic
def data_query_reply(*, query: DataQuery, user, body: str) -> DataQueryMessage:
    """Site staff answer (status → answered); a data manager's follow-up re-opens the question."""
    query = DataQuery.objects.select_for_update().select_related("participant").get(pk=query.pk)
    if query.status == DataQueryStatus.CLOSED:
        raise ValidationError({"body": ["The query is closed."]})
    if not data_query_can_reply(query=query, user=user):
        raise PermissionDenied("Only the site's coordinators, trial managers and data managers answer data queries.")
    data_manager = R.has_role(user, R.DATA_MANAGER)
    message = DataQueryMessage(query=query, author=user, body=_body(body))
    message.full_clean()
    message.save()
    query.status = DataQueryStatus.OPEN if data_manager else DataQueryStatus.ANSWERED
    query.save(update_fields=["status"])
    return message


@transaction.atomic
def data_query_close(*, query: DataQuery, user, note: str = "") -> DataQuery:
    if not R.has_role(user, R.DATA_MANAGER):
        raise PermissionDenied("Only data managers close data queries.")
    query = DataQuery.objects.select_for_update().get(pk=query.pk)
    if query.status == DataQueryStatus.CLOSED:
        return query
    if (note or "").strip():
        DataQueryMessage.objects.create(query=query, author=user, body=note.strip())
    query.status = DataQueryStatus.CLOSED
    query.closed_by = user
    query.closed_at = timezone.now()
    query.full_clean()
    query.save(update_fields=["status", "closed_by", "closed_at"])
    return query


@transaction.atomic
def response_lock(*, response: Response, user) -> Response:
    """Data management locks a response: it can no longer be edited (the admin refuses changes)."""
    if not R.has_role(user, R.DATA_MANAGER):
        raise PermissionDenied("Only data managers lock data.")
    response = Response.objects.select_for_update().get(pk=response.pk)
    if not response.locked:
        response.locked = True
        response.save(update_fields=["locked"])
    return response
