"""The survey submission's database work in two statements (the phone's hottest write, issue 14).

A submission reads, under the instance's row lock, everything it decides on (the instance, the trial's current
protocol version, an earlier use of the idempotency key, the consent documents with the participant's signatures)
in one SELECT ... FOR UPDATE, then writes the response, its item answers, its scores, the instance's new status and
the idempotency record in one INSERT/UPDATE statement (data-modifying CTEs) whose values are one JSON document.
Both SQL texts are built once, at import, from the models' own table and column names; no ORM query is compiled
per request, and PostgreSQL parses and plans each once per connection (trialsite.compiled_query.PreparedStatement).
The audit triggers fire for every row exactly as for ORM writes (they are row triggers on the tables), in the same
transaction, under the request's audit context.

Instrument versions are immutable (surveys.protocol_loader refuses a changed definition under an existing
version) and PostgreSQL never reuses a primary key, so an instrument's parsed definition is cached per process
by its pk, as the protocol is per version (trialsite.protocol.services.protocol_of_version).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection

from participants.models import ConsentDocument, ConsentSignature
from participants.token_join import ConsentDocumentRow, ConsentSignatureRow
from trialsite.compiled_query import PreparedStatement
from trialsite.models import Trial

from ..models import IdempotencyRecord, Instrument, ItemAnswer, Response, Score, SurveyInstance
from .kits import kit_items

# --- instruments, parsed once per version --------------------------------------------------------------------


@dataclass(frozen=True)
class InstrumentPlan:
    """What a submission needs of one instrument version. Shared: callers must not mutate it."""

    row: Instrument  # the row itself (kit_code answers and safety rules use it); its definition is parsed once
    kit_items: tuple[str, ...]

    @property
    def definition(self) -> dict:
        return self.row.definition


_instruments: dict[int, InstrumentPlan] = {}
_INSTRUMENTS_MAX = 256  # versions kept per process (a trial has tens; the bound only guards a runaway loop)


def instrument_plan(pk: int) -> InstrumentPlan:
    plan = _instruments.get(pk)
    if plan is None:
        row = Instrument.objects.get(pk=pk)
        plan = InstrumentPlan(row=row, kit_items=tuple(kit_items(row.definition)))
        if len(_instruments) >= _INSTRUMENTS_MAX:
            _instruments.pop(next(iter(_instruments)))
        _instruments[pk] = plan
    return plan


def instrument_cache_clear() -> None:
    _instruments.clear()


# --- the two statements ---------------------------------------------------------------------------------------

_PARAMETER = re.compile(r"%\((\w+)\)s")


class _Statement:
    """A fixed SQL text with `%(name)s` parameters (readable, and a value used twice is named once), run as a
    statement prepared once per connection (trialsite.compiled_query.PreparedStatement, positional parameters).
    `audited`: it writes audited tables (keeps the audit context's set_config() in front of it)."""

    def __init__(self, sql: str, *, audited: bool) -> None:
        self.names = tuple(_PARAMETER.findall(sql))
        self.statement = PreparedStatement(_PARAMETER.sub("%s", sql), audited=audited)

    def rows(self, params: dict[str, Any]) -> list[tuple]:
        return self.statement.rows(connection, [params[name] for name in self.names])


# --- the read under the lock ---------------------------------------------------------------------------------


def _t(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _c(model, name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


_LOCK_SQL = f"""
SELECT i.{_c(SurveyInstance, "id")}, i.{_c(SurveyInstance, "status")}, i.{_c(SurveyInstance, "opens_at")},
       i.{_c(SurveyInstance, "closes_at")}, i.{_c(SurveyInstance, "grace_until")},
       i.{_c(SurveyInstance, "instrument")}, i.{_c(SurveyInstance, "schedule_key")},
       i.{_c(SurveyInstance, "study_day")}, t.{_c(Trial, "current_version")},
       k.{_c(IdempotencyRecord, "kind")}, k.{_c(IdempotencyRecord, "request_hash")},
       k.{_c(IdempotencyRecord, "response_body")},
       c.document_ids, c.versions, c.valid_froms, c.valid_tos, c.reconsents, c.signature_ids, c.signed_ats
  FROM {_t(SurveyInstance)} i
  JOIN {_t(Trial)} t ON t.{_c(Trial, "id")} = %(trial)s
  LEFT JOIN {_t(IdempotencyRecord)} k
    ON k.{_c(IdempotencyRecord, "participant")} = %(participant)s AND k.{_c(IdempotencyRecord, "key")} = %(key)s
 CROSS JOIN LATERAL (
       SELECT array_agg(d.{_c(ConsentDocument, "id")}) AS document_ids,
              array_agg(d.{_c(ConsentDocument, "version")}) AS versions,
              array_agg(d.{_c(ConsentDocument, "valid_from")}) AS valid_froms,
              array_agg(d.{_c(ConsentDocument, "valid_to")}) AS valid_tos,
              array_agg(d.{_c(ConsentDocument, "requires_reconsent")}) AS reconsents,
              array_agg(s.{_c(ConsentSignature, "id")}) AS signature_ids,
              array_agg(s.{_c(ConsentSignature, "signed_at")}) AS signed_ats
         FROM {_t(ConsentDocument)} d
         LEFT JOIN {_t(ConsentSignature)} s
           ON s.{_c(ConsentSignature, "document")} = d.{_c(ConsentDocument, "id")}
          AND s.{_c(ConsentSignature, "participant")} = %(participant)s
        WHERE d.{_c(ConsentDocument, "trial")} = %(trial)s) c
 WHERE i.{_c(SurveyInstance, "participant")} = %(participant)s AND i.{_c(SurveyInstance, "uuid")} = %(instance)s
   FOR UPDATE OF i
"""  # noqa: S608 - the models' own table and column names, quoted; values are parameters
_LOCK = _Statement(_LOCK_SQL, audited=False)


@dataclass(frozen=True)
class Locked:
    """The locked instance and what was read with it."""

    pk: int
    uuid: UUID
    status: str
    opens_at: datetime
    closes_at: datetime
    grace_until: datetime
    instrument_id: int
    schedule_key: str
    study_day: int
    current_version_id: int | None
    replay: tuple[str, str, dict] | None  # (kind, request hash, body) of an earlier use of the key
    consent_documents: list[ConsentDocumentRow]  # participants.token_join's rows
    consent_signatures: list[ConsentSignatureRow]


def _consent_rows(document_ids, versions, valid_froms, valid_tos, reconsents, signature_ids, signed_ats):
    """The consent rows of participants.token_join (what consent_status_of decides on), from the arrays read."""
    documents, signatures = [], []
    for i, document_id in enumerate(document_ids or ()):
        document = ConsentDocumentRow(document_id, versions[i], valid_froms[i], valid_tos[i], reconsents[i])
        documents.append(document)
        if signature_ids[i] is not None:
            signatures.append(ConsentSignatureRow(signature_ids[i], document_id, signed_ats[i], document))
    return documents, signatures


def _json(value):
    """A json/jsonb column as read by a raw cursor (Django has psycopg hand jsonb over as text)."""
    return json.loads(value) if isinstance(value, str) else value


def submission_lock(*, participant, instance_id: UUID, key: UUID) -> Locked | None:
    """Lock the participant's instance (None when there is no such instance) and read what the submission needs.

    The key's record is read in the same statement, so with the statement's snapshot: a concurrent request that
    committed while this one waited for the lock is not in it (the caller asks again, see survey_response_submit).
    """
    params = {"participant": participant.pk, "trial": participant.trial_id, "key": key, "instance": instance_id}
    rows = _LOCK.rows(params)
    if not rows:
        return None
    (row,) = rows
    (pk, status, opens_at, closes_at, grace_until, instrument_id, schedule_key, study_day, version_id) = row[:9]
    kind, digest, body = row[9:12]
    documents, signatures = _consent_rows(*row[12:])
    return Locked(
        pk=pk,
        uuid=instance_id,
        status=status,
        opens_at=opens_at,
        closes_at=closes_at,
        grace_until=grace_until,
        instrument_id=instrument_id,
        schedule_key=schedule_key,
        study_day=study_day,
        current_version_id=version_id,
        replay=None if kind is None else (kind, digest, _json(body)),
        consent_documents=documents,
        consent_signatures=signatures,
    )


# --- the write: one statement ----------------------------------------------------------------------------------

_RESPONSE_FIELDS = (
    "uuid",
    "instance",
    "participant",
    "instrument",
    "idempotency_key",
    "request_hash",
    "answers",
    "authored_at",
    "authored_offset_minutes",
    "received_at",
    "late",
    "clock_skew",
    "study_day",
    "source",
    "locked",
)
# Every column is written: a field added to the model must be added here (checked at import).
assert {f.name for f in Response._meta.concrete_fields} == {"id", *_RESPONSE_FIELDS}, "Response changed"
assert {f.name for f in ItemAnswer._meta.concrete_fields} == {"id", "response", "item_key", "value"} | {
    "value_numeric",
    "value_text",
}, "ItemAnswer changed"
assert {f.name for f in Score._meta.concrete_fields} == {"id", "response", "key", "value", "band", "scored"} | {
    "items_missing"
}, "Score changed"
_IDEMPOTENCY_FIELDS = ("participant", "key", "kind", "request_hash", "status_code", "response_body", "created_at")
assert {f.name for f in IdempotencyRecord._meta.concrete_fields} == {"id", *_IDEMPOTENCY_FIELDS}, "record changed"
_RESPONSE_COLUMNS = {f: Response._meta.get_field(f).column for f in _RESPONSE_FIELDS}
_IDEMPOTENCY_COLUMNS = {f: IdempotencyRecord._meta.get_field(f).column for f in _IDEMPOTENCY_FIELDS}


def _columns(model, columns) -> str:
    return ", ".join(connection.ops.quote_name(c) for c in columns)


# The values travel as one JSON document (one parameter to adapt and send, not thirty): its rows are read back
# into the tables' own row types (jsonb_populate_record: each value converted by its column's type, as a literal
# would be) or into the declared columns of jsonb_to_recordset.
_WRITE_SQL = f"""
WITH d AS (SELECT %(doc)s::jsonb AS doc
), r AS (
  INSERT INTO {_t(Response)} ({_columns(Response, _RESPONSE_COLUMNS.values())})
  SELECT {_columns(Response, _RESPONSE_COLUMNS.values())}
    FROM d, jsonb_populate_record(NULL::{_t(Response)}, d.doc->'response')
  RETURNING {_c(Response, "id")} AS id
), a AS (
  INSERT INTO {_t(ItemAnswer)} ({_c(ItemAnswer, "response")}, {_c(ItemAnswer, "item_key")},
                               {_c(ItemAnswer, "value")}, {_c(ItemAnswer, "value_numeric")},
                               {_c(ItemAnswer, "value_text")})
  SELECT r.id, x.key, x.value, x.num, x.txt
    FROM r, d, jsonb_to_recordset(d.doc->'items') AS x(key text, value jsonb, num float8, txt text)
), s AS (
  INSERT INTO {_t(Score)} ({_c(Score, "response")}, {_c(Score, "key")}, {_c(Score, "value")}, {_c(Score, "band")},
                          {_c(Score, "scored")}, {_c(Score, "items_missing")})
  SELECT r.id, x.key, x.value, x.band, x.scored, x.missing
    FROM r, d, jsonb_to_recordset(d.doc->'scores') AS x(key text, value float8, band text, scored bool, missing int)
), u AS (
  UPDATE {_t(SurveyInstance)} SET {_c(SurveyInstance, "status")} = d.doc->>'status'
    FROM d
   WHERE {_c(SurveyInstance, "id")} = (d.doc->>'instance')::bigint
), k AS (
  INSERT INTO {_t(IdempotencyRecord)} ({_columns(IdempotencyRecord, _IDEMPOTENCY_COLUMNS.values())})
  SELECT {_columns(IdempotencyRecord, _IDEMPOTENCY_COLUMNS.values())}
    FROM d, jsonb_populate_record(NULL::{_t(IdempotencyRecord)}, d.doc->'record')
)
SELECT id FROM r
"""  # noqa: S608 - the models' own table and column names, quoted; the values are one parameter
_WRITE = _Statement(_WRITE_SQL, audited=True)


def _value(value):
    """A value as the JSON document carries it (jsonb_populate_record reads it with the column's type)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def submission_write(
    *, response: dict[str, Any], items: list[dict], scores: list[dict], status: str, body: dict, kind: str
) -> None:
    """Insert the response (a dict of its fields, foreign keys as pks), its item answers ({key, value, numeric,
    text}), its scores ({key, value, band, scored, missing}), set the instance's status and insert the idempotency
    record with `body`, all in one statement. A unique constraint's violation raises IntegrityError."""
    record = {
        "participant": response["participant"],
        "key": response["idempotency_key"],
        "kind": kind,
        "request_hash": response["request_hash"],
        "status_code": 201,
        "response_body": body,
        "created_at": response["received_at"],
    }
    doc = {
        "response": {column: _value(response[name]) for name, column in _RESPONSE_COLUMNS.items()},
        "items": items,
        "scores": scores,
        "status": status,
        "instance": response["instance"],
        "record": {column: _value(record[name]) for name, column in _IDEMPOTENCY_COLUMNS.items()},
    }
    _WRITE.rows({"doc": json.dumps(doc)})
