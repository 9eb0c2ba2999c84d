"""What the participants app reads with every bearer token, in the token lookup's one statement
(trialsite.api.auth.token_lookup, registered in ParticipantsConfig.ready): the phone's participant with its trial
and site, and the trial's consent documents with the participant's signatures of them, as plain rows. The
consent decision on those rows is still participants.selectors.consent_status_of (GET /api/v1/me reads it from
here instead of a query of its own). A staff token finds no participant: the join leaves it None, and the user's
`participant` is cached as missing, so the permission classes ask no further query either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from django.db import connection

from trialsite.models import Site, Trial
from trialsite.principals import TokenJoin

from .models import ConsentDocument, ConsentSignature, Participant
from .selectors import ConsentStatus, consent_status_of

NAME = "phone"


@dataclass(frozen=True, slots=True)
class ConsentDocumentRow:
    """The columns of a consent document that consent_status_of decides on and /me shows."""

    pk: int
    version: str
    valid_from: date
    valid_to: date | None
    requires_reconsent: bool


@dataclass(frozen=True, slots=True)
class ConsentSignatureRow:
    """The columns of a signature that consent_status_of decides on and /me shows."""

    pk: int
    document_id: int
    signed_at: datetime
    document: ConsentDocumentRow


@dataclass(frozen=True)
class Phone:
    """The participant behind a token (None: a staff token) and the rows their consent is decided on."""

    participant: Participant | None
    consent_documents: tuple[ConsentDocumentRow, ...]
    consent_signatures: tuple[ConsentSignatureRow, ...]

    def consent_status(self, *, on: date | None = None) -> ConsentStatus:
        """participants.selectors.consent_status, decided on the rows read with the token (the participant's own
        date by default, as there)."""
        on = on or self.participant.local_date()
        return consent_status_of(documents=self.consent_documents, signatures=self.consent_signatures, on=on)


def _t(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _c(model, name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


_CONSENT_COLUMNS = (
    (ConsentDocument, "d", "id"),
    (ConsentDocument, "d", "version"),
    (ConsentDocument, "d", "valid_from"),
    (ConsentDocument, "d", "valid_to"),
    (ConsentDocument, "d", "requires_reconsent"),
    (ConsentSignature, "s", "id"),
    (ConsentSignature, "s", "signed_at"),
)

_SQL = f"""
  LEFT JOIN {_t(Participant)} p ON p.{_c(Participant, "user")} = {{user_id}}
  LEFT JOIN {_t(Trial)} tr ON tr.{_c(Trial, "id")} = p.{_c(Participant, "trial")}
  LEFT JOIN {_t(Site)} si ON si.{_c(Site, "id")} = p.{_c(Participant, "site")}
 CROSS JOIN LATERAL (
       SELECT {", ".join(f"array_agg({a}.{_c(m, n)}) AS a{i}" for i, (m, a, n) in enumerate(_CONSENT_COLUMNS))}
         FROM {_t(ConsentDocument)} d
         LEFT JOIN {_t(ConsentSignature)} s
           ON s.{_c(ConsentSignature, "document")} = d.{_c(ConsentDocument, "id")}
          AND s.{_c(ConsentSignature, "participant")} = p.{_c(Participant, "id")}
        WHERE d.{_c(ConsentDocument, "trial")} = p.{_c(Participant, "trial")}) consent
"""  # noqa: S608 - the models' own table and column names, quoted; values are parameters


def _load(user, instances: list, arrays: tuple) -> Phone:
    participant, trial, site = instances
    if participant is None:
        Participant.user.field.remote_field.set_cached_value(user, None)  # user.participant: DoesNotExist
        return Phone(participant=None, consent_documents=(), consent_signatures=())
    # Cached as select_related caches them: participant.trial, .site and .user, and user.participant.
    Participant.trial.field.set_cached_value(participant, trial)
    Participant.site.field.set_cached_value(participant, site)
    Participant.user.field.set_cached_value(participant, user)
    Participant.user.field.remote_field.set_cached_value(user, participant)
    documents, signatures = [], []
    ids, versions, valid_froms, valid_tos, reconsents, signature_ids, signed_ats = arrays
    for i, document_id in enumerate(ids or ()):
        document = ConsentDocumentRow(document_id, versions[i], valid_froms[i], valid_tos[i], reconsents[i])
        documents.append(document)
        if signature_ids[i] is not None:
            signatures.append(ConsentSignatureRow(signature_ids[i], document_id, signed_ats[i], document))
    return Phone(participant=participant, consent_documents=tuple(documents), consent_signatures=tuple(signatures))


PHONE_JOIN = TokenJoin(
    name=NAME,
    models=((Participant, "p"), (Trial, "tr"), (Site, "si")),
    sql=_SQL,
    extra=tuple(f"consent.a{i}" for i in range(len(_CONSENT_COLUMNS))),
    load=_load,
)


def phone_of(request) -> Phone | None:
    """What the token lookup read for this request's phone (None: not authenticated by a bearer token)."""
    return (getattr(request, "token_joined", None) or {}).get(NAME)
