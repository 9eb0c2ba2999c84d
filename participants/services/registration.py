"""Registration and screening, study ids, contact details (encrypted), enrolment codes, phone settings."""

from __future__ import annotations

import re
import secrets
import uuid as uuid_mod
import zoneinfo
from datetime import time, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from trialsite import policy
from trialsite.api.auth import token_issue
from trialsite.models import Site, Trial
from trialsite.protocol.services import protocol_current

from .. import crypto, providers
from ..models import (
    ContactAccess,
    ContactDetails,
    EnrolmentCode,
    Participant,
    ParticipantStatus,
    StudyIdSequence,
)
from .errors import InvalidEnrolmentCode, WorkflowError

# No 0/O, 1/I/L, 5/S, 8/B, 2/Z: nothing a participant can misread from a letter or a screen.
CODE_ALPHABET = "ACDEFGHJKMNPQRTUVWXY345679"
CODE_LENGTH = 8
CHANNELS = ("email", "sms", "push")
_UNSET = object()


def _validate_zone(value: str, field: str = "timezone") -> str:
    try:
        if not value or not isinstance(value, str):
            raise ValueError
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValidationError({field: [f"{value!r} is not an IANA time zone name (e.g. Europe/London)."]}) from exc
    return value


@transaction.atomic
def study_ids_reserve(*, site: Site, count: int) -> list[str]:
    """The next `count` study ids of the site (LDN-0001, LDN-0002, ...), taken under a row lock so that
    concurrent registrations (and bulk simulation) never share or reuse one."""
    seq, _ = StudyIdSequence.objects.get_or_create(site=site)
    seq = StudyIdSequence.objects.select_for_update().get(pk=seq.pk)
    first = seq.last_number + 1
    seq.last_number += count
    seq.save(update_fields=["last_number"])
    return [f"{site.code}-{n:04d}" for n in range(first, first + count)]


def study_id_next(*, site: Site) -> str:
    return study_ids_reserve(site=site, count=1)[0]


def _default_channels(*, email: str, phone: str, push_token: str = "") -> list[str]:
    out = []
    if email:
        out.append("email")
    if phone:
        out.append("sms")
    if push_token:
        out.append("push")
    return out


@transaction.atomic
def participant_register(
    *,
    trial: Trial,
    site: Site,
    tz: str,
    eligibility: dict,
    contact: dict | None = None,
    actor,
    now=None,
) -> tuple[Participant, str | None]:
    """Screen and register. Returns the participant and the enrolment code (None when screening failed).

    Eligibility must answer exactly the protocol's criteria with booleans. Any false → screen_failed (kept
    for CONSORT, never randomisable, no code). The actor must be allowed to register at that trial and site.
    """
    now = now or timezone.now()
    policy.require(actor, policy.PARTICIPANT_REGISTER, policy.Where(trial, site))
    protocol = protocol_current(trial)
    if not trial.sites.filter(pk=site.pk).exists():
        raise ValidationError({"site": [f"Site {site.code} does not take part in {trial.slug}."]})
    _validate_zone(tz)
    expected = [c.key for c in protocol.eligibility]
    errors: dict[str, list[str]] = {}
    if not isinstance(eligibility, dict):
        raise ValidationError({"eligibility": ["A mapping of criterion key to true/false."]})
    for key in expected:
        if key not in eligibility:
            errors[f"eligibility.{key}"] = ["Answer every criterion of the checklist."]
        elif not isinstance(eligibility[key], bool):
            errors[f"eligibility.{key}"] = ["true or false."]
    for key in eligibility:
        if key not in expected:
            errors[f"eligibility.{key}"] = ["Not a criterion of this protocol."]
    contact = contact or {}
    name = (contact.get("name") or "").strip()
    email = (contact.get("email") or "").strip()
    phone = (contact.get("phone") or "").strip()
    if email:
        from django.core.validators import validate_email

        try:
            validate_email(email)
        except ValidationError:
            errors["contact.email"] = ["Not an e-mail address."]
    if phone and not re.fullmatch(r"\+?[0-9 ()-]{6,20}", phone):
        errors["contact.phone"] = ["Not a phone number."]
    if errors:
        raise ValidationError(errors)

    eligible = all(eligibility[k] for k in expected)
    User = get_user_model()
    participant_uuid = uuid_mod.uuid4()
    account = User(username=f"participant-{participant_uuid}", is_staff=False)
    account.set_unusable_password()
    account.save()
    participant = Participant(
        uuid=participant_uuid,
        study_id=study_id_next(site=site),
        trial=trial,
        site=site,
        user=account,
        status=ParticipantStatus.REGISTERED if eligible else ParticipantStatus.SCREEN_FAILED,
        timezone=tz,
        eligibility={k: eligibility[k] for k in expected},
        eligible=eligible,
        channels=_default_channels(email=email, phone=phone),
        registered_at=now,
        registered_by=actor,
    )
    participant.full_clean()
    participant.save()
    if name or email or phone:
        ContactDetails.objects.create(
            participant=participant,
            name_encrypted=crypto.encrypt(name),
            email_encrypted=crypto.encrypt(email),
            phone_encrypted=crypto.encrypt(phone),
            has_email=bool(email),
            has_phone=bool(phone),
            updated_at=now,
        )
    code = enrolment_code_issue(participant=participant, actor=actor, now=now) if eligible else None
    return participant, code


# --- contact details ---------------------------------------------------------------------------------------


def _contact_plain(participant: Participant) -> dict:
    details = ContactDetails.objects.filter(participant=participant).first()
    if details is None:
        return {"name": "", "email": "", "phone": ""}
    return {
        "name": crypto.decrypt(details.name_encrypted),
        "email": crypto.decrypt(details.email_encrypted),
        "phone": crypto.decrypt(details.phone_encrypted),
    }


@transaction.atomic
def contact_view(*, participant: Participant, actor, purpose: str) -> dict:
    """Decrypted contact details for the clinical staff of the participant's site; every view is recorded."""
    policy.require(
        actor,
        policy.CONTACT_VIEW,
        participant,
        "Only the site's coordinators and safety physicians, and the trial managers, see contact details.",
    )
    purpose = (purpose or "").strip()
    if len(purpose) < 3:
        raise ValidationError({"purpose": ["Say why you need the contact details."]})
    ContactAccess.objects.create(participant=participant, user=actor, purpose=purpose)
    return _contact_plain(participant)


def contact_for_delivery(*, participant: Participant) -> dict:
    """For the reminder/alert senders only (system use, not shown to anyone): {"name", "email", "phone"}."""
    return _contact_plain(participant)


@transaction.atomic
def contact_update(*, participant: Participant, actor, name=None, email=None, phone=None) -> ContactDetails:
    policy.require(actor, policy.CONTACT_UPDATE, participant)
    details, _ = ContactDetails.objects.select_for_update().get_or_create(participant=participant)
    if name is not None:
        details.name_encrypted = crypto.encrypt(name.strip())
    if email is not None:
        details.email_encrypted = crypto.encrypt(email.strip())
        details.has_email = bool(email.strip())
    if phone is not None:
        details.phone_encrypted = crypto.encrypt(phone.strip())
        details.has_phone = bool(phone.strip())
    details.updated_at = timezone.now()
    details.save()
    return details


@transaction.atomic
def contact_rotate_keys() -> int:
    """Re-encrypt every stored contact with the current (first) key; returns rows rewritten."""
    n = 0
    for details in ContactDetails.objects.select_for_update().order_by("pk"):
        details.name_encrypted = crypto.rotate(details.name_encrypted)
        details.email_encrypted = crypto.rotate(details.email_encrypted)
        details.phone_encrypted = crypto.rotate(details.phone_encrypted)
        details.save(update_fields=["name_encrypted", "email_encrypted", "phone_encrypted"])
        n += 1
    return n


# --- enrolment codes ----------------------------------------------------------------------------------------


def enrolment_code_format(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def enrolment_code_normalise(raw: str) -> str | None:
    """'k7qf-m2xd' / 'K7QF M2XD' → 'K7QFM2XD'; None if it cannot be a code."""
    if not isinstance(raw, str):
        return None
    code = re.sub(r"[\s-]", "", raw).upper()
    if len(code) != CODE_LENGTH or any(c not in CODE_ALPHABET for c in code):
        return None
    return code


# A code links a phone: the first one (registered), or a new one for a participant already in the trial (a lost
# or replaced phone; revoke the old phone's tokens separately, participants.services.records). Participants who
# withdrew from the intervention only still answer surveys, so they may link a new phone too.
RELINKABLE = (ParticipantStatus.ENROLLED, ParticipantStatus.RANDOMISED)


def enrolment_code_issuable(participant: Participant) -> bool:
    """May this participant be given an enrolment code (first phone or a new one)?"""
    if participant.status == ParticipantStatus.REGISTERED or participant.status in RELINKABLE:
        return True
    return participant.status == ParticipantStatus.WITHDRAWN and not participant.is_withdrawn


@transaction.atomic
def enrolment_code_issue(*, participant: Participant, actor, now=None) -> str:
    """Issue a new code (the previous live one dies). Returns it formatted XXXX-XXXX; only its hash is kept
    for lookup (plus an encrypted copy while it is live, to draw the QR code)."""
    now = now or timezone.now()
    participant = Participant.objects.select_for_update().get(pk=participant.pk)
    policy.require(actor, policy.ENROLMENT_CODE_ISSUE, participant)
    if not enrolment_code_issuable(participant):
        raise WorkflowError(
            "Enrolment codes are issued to registered participants, and to enrolled or randomised participants "
            "who need to link a new phone (not after completion or full withdrawal)."
        )
    EnrolmentCode.objects.filter(participant=participant, used_at__isnull=True, revoked_at__isnull=True).update(
        revoked_at=now, code_encrypted=""
    )
    days = protocol_current(participant.trial).enrolment.code_valid_days
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        digest = crypto.keyed_hash(code)
        if not EnrolmentCode.objects.filter(code_hash=digest).exists():
            break
    row = EnrolmentCode(
        participant=participant,
        code_hash=digest,
        code_encrypted=crypto.encrypt(code),
        issued_at=now,
        expires_at=now + timedelta(days=days),
        issued_by=actor,
    )
    row.full_clean()
    row.save()
    return enrolment_code_format(code)


def enrolment_code_live(*, participant: Participant, now=None) -> str | None:
    """The live code (formatted) for drawing its QR code, or None."""
    now = now or timezone.now()
    row = (
        EnrolmentCode.objects.filter(
            participant=participant, used_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now
        )
        .exclude(code_encrypted="")
        .first()
    )
    return enrolment_code_format(crypto.decrypt(row.code_encrypted)) if row else None


@transaction.atomic
def participant_enrol(*, code: str, device: dict | None = None, now=None) -> tuple[Participant, str]:
    """Exchange a code for a participant token. Unknown, used, expired (or otherwise dead) codes all get the
    same refusal, so the answer says nothing about which codes exist."""
    now = now or timezone.now()
    refusal = InvalidEnrolmentCode()
    normalised = enrolment_code_normalise(code)
    if normalised is None:
        raise refusal
    row = (
        EnrolmentCode.objects.select_for_update()
        .select_related("participant")
        .filter(code_hash=crypto.keyed_hash(normalised))
        .first()
    )
    if row is None or row.used_at is not None or row.revoked_at is not None or row.expires_at <= now:
        raise refusal
    participant = Participant.objects.select_for_update().get(pk=row.participant_id)
    if not enrolment_code_issuable(participant):
        raise refusal
    row.used_at = now
    row.code_encrypted = ""
    row.save(update_fields=["used_at", "code_encrypted"])
    if participant.status == ParticipantStatus.REGISTERED:
        participant.status = ParticipantStatus.ENROLLED
        participant.enrolled_at = now
        participant.save(update_fields=["status", "enrolled_at"])
    # else: a new phone linked; the participant's status, consent and schedule are as they were.
    device = device if isinstance(device, dict) else {}
    key, _token = token_issue(
        user=participant.user, kind="participant", ttl=settings.API_TOKEN_TTL_PARTICIPANT, device=device
    )
    return participant, key


# --- the participant's own settings (PATCH /me) -------------------------------------------------------------


def _parse_time(value, field: str) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{2}:\d{2}(:\d{2})?", value):
        try:
            return time.fromisoformat(value)
        except ValueError:
            pass
    raise ValidationError({field: ["A local time like 22:00."]})


@transaction.atomic
def participant_settings_update(
    *,
    participant: Participant,
    tz=_UNSET,
    quiet_hours=_UNSET,
    channels=_UNSET,
    push_token=_UNSET,
) -> Participant:
    """Change the phone-side settings. A zone change emits `timezone_changed` (surveys re-plan)."""
    participant = Participant.objects.select_for_update().get(pk=participant.pk)
    old_zone = participant.timezone
    fields: list[str] = []
    if tz is not _UNSET:
        participant.timezone = _validate_zone(tz)
        fields.append("timezone")
    if quiet_hours is not _UNSET:
        if quiet_hours is None:
            participant.quiet_hours_start = participant.quiet_hours_end = None
        elif isinstance(quiet_hours, dict) and set(quiet_hours) <= {"start", "end"}:
            participant.quiet_hours_start = _parse_time(quiet_hours.get("start"), "quiet_hours.start")
            participant.quiet_hours_end = _parse_time(quiet_hours.get("end"), "quiet_hours.end")
        else:
            raise ValidationError({"quiet_hours": ['{"start": "22:00", "end": "07:30"} or null.']})
        fields += ["quiet_hours_start", "quiet_hours_end"]
    if push_token is not _UNSET:
        if not isinstance(push_token, str) or len(push_token) > 4096:
            raise ValidationError({"push_token": ["A device push token (text)."]})
        participant.push_token = push_token
        fields.append("push_token")
        if channels is _UNSET and push_token and "push" not in participant.channels:
            participant.channels = [*participant.channels, "push"]
            fields.append("channels")
    if channels is not _UNSET:
        if not isinstance(channels, list) or any(c not in CHANNELS for c in channels):
            raise ValidationError({"channels": [f"A list drawn from {', '.join(CHANNELS)}."]})
        participant.channels = [c for c in CHANNELS if c in channels]
        fields.append("channels")
    if fields:
        participant.full_clean()
        participant.save(update_fields=sorted(set(fields)))
    if participant.timezone != old_zone:
        providers.schedule_provider().on_timezone_changed(
            participant=participant, old=old_zone, new=participant.timezone
        )
    return participant
