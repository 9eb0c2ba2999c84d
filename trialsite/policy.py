"""The one permission policy: may this actor do this action to that record? (README "Roles" is its prose.)

Every service that changes or reveals clinical data calls `require(actor, ACTION, obj)` before it writes or
reads; interfaces (admin, staff API, commands, tasks) call the service and never decide themselves. They may
ask `can(...)` (or `may_ever(...)` without a record) to hide a button they would otherwise show.

- `RULES` maps each action to the roles that may do it. Site-scoped roles (coordinator, safety physician)
  act only at their sites; every grant acts only in its trial (trialsite.roles). `obj` tells the trial and
  site: a participant, anything with a `participant` (alerts, events, responses, queries, requests), a trial
  (trial-level actions), or `Where(trial, site)` before the row exists (registration).
- Superusers (system admins) may do every action except those in `NEVER_SUPERUSER` (arms, unblinding, their
  own blinding guesses), which need a real grant: they are blinded like everyone else.
- `SYSTEM` is the actor of beat/worker tasks (escalations); it may do only the `SYSTEM_ACTIONS`.
- Record locks: `locked_reason(obj)` says why a participant's or a response's data cannot change;
  `require_unlocked(obj)` raises `RecordLocked` (a PermissionDenied that the API answers as 409 `conflict`).

The spine imports no app: records are read by their attributes only.
"""

from __future__ import annotations

from typing import NamedTuple

from django.core.exceptions import PermissionDenied

from . import roles as R

# --- actions ------------------------------------------------------------------------------------------------
PARTICIPANT_VIEW = "participant_view"
PARTICIPANT_REGISTER = "participant_register"  # registration and its eligibility screening
ENROLMENT_CODE_ISSUE = "enrolment_code_issue"
PARTICIPANT_RANDOMISE = "participant_randomise"
PARTICIPANT_WITHDRAW = "participant_withdraw"
CONSENT_RECORD = "consent_record"  # consent recorded on the participant's behalf (paper form)
SUBSTANCE_RECORD = "substance_record"  # what a participant's own units contain (self-blinding trials)
KIT_SHEET_VIEW = "kit_sheet_view"  # the printable self-blinding kit sheet: maps label sets to conditions
CONTACT_VIEW = "contact_view"
CONTACT_UPDATE = "contact_update"
TOKENS_REVOKE = "tokens_revoke"  # a lost phone
SAFETY_ALERT_ACKNOWLEDGE = "safety_alert_acknowledge"
SAFETY_ALERT_ESCALATE = "safety_alert_escalate"
COORDINATOR_TASK_RESOLVE = "coordinator_task_resolve"
ADVERSE_EVENT_REPORT = "adverse_event_report"
ADVERSE_EVENT_CORRECT = "adverse_event_correct"
UNBLINDING_REQUEST = "unblinding_request"
UNBLINDING_DECIDE = "unblinding_decide"
UNBLINDING_REVEAL = "unblinding_reveal"
BLINDING_GUESS_RECORD = "blinding_guess_record"
DATA_QUERY_RAISE = "data_query_raise"
DATA_QUERY_REPLY = "data_query_reply"
DATA_QUERY_CLOSE = "data_query_close"
RECORD_LOCK = "record_lock"
ANSWER_CORRECT = "answer_correct"
EXPORT_BLINDED = "export_blinded"
EXPORT_UNBLINDED = "export_unblinded"
EXPORT_DOWNLOAD = "export_download"
ANALYTICS_SUMMARY = "analytics_summary"
ARMS_VIEW = "arms_view"  # allocation lists, arms, unit contents, per-arm figures

CLINICAL = frozenset({R.COORDINATOR, R.TRIAL_MANAGER})  # "the PI can do everything a coordinator can"
SAFETY = frozenset({R.SAFETY_PHYSICIAN, R.TRIAL_MANAGER})

RULES: dict[str, frozenset[str]] = {
    PARTICIPANT_VIEW: frozenset(R.ALL_ROLES),
    PARTICIPANT_REGISTER: CLINICAL,
    ENROLMENT_CODE_ISSUE: CLINICAL,
    PARTICIPANT_RANDOMISE: CLINICAL,
    PARTICIPANT_WITHDRAW: CLINICAL,
    CONSENT_RECORD: CLINICAL,
    SUBSTANCE_RECORD: CLINICAL,
    CONTACT_VIEW: CLINICAL | {R.SAFETY_PHYSICIAN},
    CONTACT_UPDATE: CLINICAL,
    TOKENS_REVOKE: CLINICAL,
    SAFETY_ALERT_ACKNOWLEDGE: SAFETY,
    SAFETY_ALERT_ESCALATE: frozenset(),  # the system's (beat) action only
    COORDINATOR_TASK_RESOLVE: CLINICAL,
    ADVERSE_EVENT_REPORT: CLINICAL | {R.SAFETY_PHYSICIAN},
    ADVERSE_EVENT_CORRECT: frozenset({R.SAFETY_PHYSICIAN, R.DATA_MANAGER}),
    UNBLINDING_REQUEST: SAFETY,
    UNBLINDING_DECIDE: SAFETY,  # and not in the requester's role (can_unblinding_decide)
    UNBLINDING_REVEAL: SAFETY,  # and only the requester, still holding the requesting role (can_unblinding_reveal)
    BLINDING_GUESS_RECORD: CLINICAL,
    DATA_QUERY_RAISE: frozenset({R.DATA_MANAGER}),
    DATA_QUERY_REPLY: CLINICAL | {R.DATA_MANAGER},
    DATA_QUERY_CLOSE: frozenset({R.DATA_MANAGER}),
    RECORD_LOCK: frozenset({R.DATA_MANAGER}),
    ANSWER_CORRECT: frozenset({R.DATA_MANAGER}),
    EXPORT_BLINDED: R.STATISTICIAN_ROLES,
    EXPORT_UNBLINDED: R.UNBLINDED_ROLES,
    EXPORT_DOWNLOAD: R.STATISTICIAN_ROLES,  # and only the requester (can_export_download)
    ANALYTICS_SUMMARY: frozenset(R.ALL_ROLES),
    ARMS_VIEW: R.UNBLINDED_ROLES,
    KIT_SHEET_VIEW: R.UNBLINDED_ROLES,
}
# Superusers pass every other action; these need a real grant (a superuser holding the role passes).
NEVER_SUPERUSER = frozenset(
    {
        EXPORT_UNBLINDED,
        ARMS_VIEW,
        KIT_SHEET_VIEW,
        UNBLINDING_REQUEST,
        UNBLINDING_DECIDE,
        UNBLINDING_REVEAL,
        SAFETY_ALERT_ESCALATE,
        BLINDING_GUESS_RECORD,  # a rater's own judgement
    }
)
SYSTEM_ACTIONS = frozenset({SAFETY_ALERT_ESCALATE})

_MESSAGES = {
    PARTICIPANT_REGISTER: "Only a coordinator of the site or a trial manager of the trial may register participants.",
    EXPORT_UNBLINDED: "An unblinded export needs the unblinded_statistician role in this trial.",
    EXPORT_BLINDED: "Exports are for the statistician roles of this trial.",
    UNBLINDING_REVEAL: "Only the requester, still holding the role they requested in, sees the allocation.",
    UNBLINDING_DECIDE: "A safety physician or trial manager other than the requester's role must decide.",
}


class _System:
    """The actor of beat and worker tasks."""

    is_authenticated = True
    is_superuser = False
    pk = None

    def __repr__(self) -> str:
        return "SYSTEM"


SYSTEM = _System()


class Where(NamedTuple):
    """The trial and site of a record that does not exist yet (registration)."""

    trial: object
    site: object = None


class RecordLocked(PermissionDenied):
    """The record's data are locked by data management. The API answers 409 `conflict` with this message."""

    code = "conflict"
    status = 409

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _pk(obj):
    return obj if obj is None or isinstance(obj, int) else obj.pk


def where(obj) -> Where:
    """(trial id, site id) of a record; site None for trial-level records."""
    if isinstance(obj, Where):
        return Where(_pk(obj.trial), _pk(obj.site))
    if hasattr(obj, "study_id") and hasattr(obj, "site_id"):  # a participant
        return Where(obj.trial_id, obj.site_id)
    for attr in ("participant", "response", "query"):
        if hasattr(type(obj), attr) or attr in getattr(obj, "__dict__", {}):
            inner = getattr(obj, attr, None)
            if inner is not None:
                return where(inner)
    if hasattr(obj, "trial_id"):
        return Where(obj.trial_id, None)
    if getattr(getattr(obj, "_meta", None), "label", "") == "trialsite.Trial":
        return Where(obj.pk, None)
    raise TypeError(f"the policy cannot tell the trial of {obj!r}")


def _holds(actor, roles, place: Where) -> bool:
    """The actor holds one of `roles` in the place's trial, at its site for site-scoped grants (no superuser
    shortcut: that is decided in `can`). A trial-level place (site None) is reached by any grant in the trial;
    what such a read shows is narrowed to the actor's sites by the selectors (trialsite.roles.site_ids)."""
    for g in R.grants_of(actor):
        if g.role in roles and g.trial_id == place.trial:
            if place.site is None or g.role not in R.SITE_SCOPED_ROLES or g.site_id is None or g.site_id == place.site:
                return True
    return False


def can(actor, action: str, obj) -> bool:
    """May `actor` do `action` to `obj`? Unknown actions are refused (fail closed)."""
    if action not in RULES:
        return False
    if actor is SYSTEM:
        return action in SYSTEM_ACTIONS
    if actor is None or not getattr(actor, "is_authenticated", False) or not getattr(actor, "is_active", True):
        return False
    special = _SPECIAL.get(action)
    if special is not None:
        return special(actor, obj)
    if getattr(actor, "is_superuser", False) and action not in NEVER_SUPERUSER:
        return True
    return _holds(actor, RULES[action], where(obj))


def may_ever(actor, action: str) -> bool:
    """Could `actor` do `action` anywhere (any trial, any site)? Only for showing or hiding a button or an admin
    action; the service still asks `can` about the record itself."""
    if action not in RULES or actor is None or not getattr(actor, "is_authenticated", False):
        return False
    if getattr(actor, "is_superuser", False) and action not in NEVER_SUPERUSER:
        return True
    return R.has_role(actor, *RULES[action])


def require(actor, action: str, obj, message: str | None = None) -> None:
    """Raise PermissionDenied unless `can(actor, action, obj)`."""
    if not can(actor, action, obj):
        raise PermissionDenied(message or _MESSAGES.get(action) or f"You may not {action.replace('_', ' ')} here.")


def role_in(actor, obj, roles) -> str | None:
    """The first of `roles` (in order) the actor holds over `obj`'s trial and site, else None."""
    place = where(obj)
    for role in roles:
        if _holds(actor, [role], place):
            return role
    return None


# --- actions with more than a role check --------------------------------------------------------------------
def can_unblinding_decide(actor, request) -> bool:
    """The other role than the requester's decides (a trial manager approves a physician's request and back)."""
    other = R.TRIAL_MANAGER if request.requester_role == R.SAFETY_PHYSICIAN else R.SAFETY_PHYSICIAN
    return getattr(actor, "pk", None) != request.requested_by_id and _holds(actor, [other], where(request))


def can_unblinding_reveal(actor, request) -> bool:
    """Only the requester, and only while they still hold the role they requested in (re-checked at reveal)."""
    return getattr(actor, "pk", None) == request.requested_by_id and _holds(
        actor, [request.requester_role], where(request)
    )


def can_export_download(actor, job) -> bool:
    """The requester, still holding a role that may make such an export in the job's trial."""
    if getattr(actor, "pk", None) != job.requested_by_id:
        return False
    action = EXPORT_BLINDED if job.blinded else EXPORT_UNBLINDED
    if getattr(actor, "is_superuser", False) and action not in NEVER_SUPERUSER:
        return True
    return _holds(actor, RULES[action], where(job))


_SPECIAL = {
    UNBLINDING_DECIDE: can_unblinding_decide,
    UNBLINDING_REVEAL: can_unblinding_reveal,
    EXPORT_DOWNLOAD: can_export_download,
}


# --- record locks -------------------------------------------------------------------------------------------
def locked_reason(obj) -> str | None:
    """Why `obj`'s data (a participant, or a response, or anything of a participant) cannot change, or None."""
    if getattr(obj, "locked", False) and not hasattr(obj, "study_id"):
        return "This response is locked by data management; it can no longer be changed."
    participant = obj if hasattr(obj, "study_id") else getattr(obj, "participant", None)
    if participant is not None and getattr(participant, "locked", False):
        return (
            f"The data of {participant.study_id} are locked by data management; they can no longer be changed. "
            "Contact the study team."
        )
    return None


def require_unlocked(obj) -> None:
    reason = locked_reason(obj)
    if reason:
        raise RecordLocked(reason)
