"""Synthetic participants for demos and benchmarks: `simulate_trial`.

The data have the shape the real flows create (participants, consent signatures, allocations where the
allocation models exist, survey instances with reminders and prompt telemetry, responses with item answers
and scores, dose logs, side effects, safety alerts) and are written with COPY for speed; the audit triggers
still record every row. The model of the trial:

- participants are screened at the trial's sites; some fail screening, some never link a phone, some never
  finish the baseline;
- randomised participants are allocated by permuted blocks within strata (site × baseline PHQ-9 band);
- each has a baseline severity, a personal adherence (answering and dosing) that fades a little over time;
- PHQ-9 / GAD-7 / daily mood improve with time (placebo response), a little more on the active arm (small
  effect), and more for those who believe they take the active dose (expectancy bias);
- blinding guesses are partly broken: the active arm guesses "active" more often as the trial goes on;
  the site coordinators guess too at the same time points, a little better than chance (drawn from their own
  random stream, so adding them changed none of the participants' data);
- some answers are late (within grace) or synced offline hours later; misses are realistic; reminders
  respect quiet hours; a few answers raise safety alerts; a few participants withdraw.

Everything is drawn from one seeded random generator, so a seed reproduces the same trial.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone as djtz

from participants.models import (
    AdverseEvent,
    Allocation,
    AllocationList,
    AllocationSlot,
    ConsentDocument,
    ConsentSignature,
    Participant,
    SafetyAlert,
    StaffBlindingGuess,
    Withdrawal,
    study_day_of,
)
from participants.services.allocation import allocation_list_generate
from participants.services.blinding_guesses import blinding_time_points
from surveys.models import (
    DoseLog,
    Instrument,
    ItemAnswer,
    PromptEvent,
    Reminder,
    Response,
    Score,
    SideEffect,
    SurveyInstance,
)
from surveys.scheduling import local_to_utc
from surveys.scoring import score_answers
from trialsite.audit import audit_context
from trialsite.models import Trial
from trialsite.protocol.schema import Protocol, parse_duration

from .bulk import copy_rows, reserve_ids

SIDE_EFFECTS = [
    ("mild headache", "mild"),
    ("nausea after the dose", "mild"),
    ("felt jittery in the afternoon", "mild"),
    ("trouble sleeping", "moderate"),
    ("more anxious than usual", "moderate"),
    ("tired all day", "mild"),
    ("visual shimmer for an hour", "mild"),
]
SERIOUS_SIDE_EFFECTS = ["chest pain, went to A&E", "panic attack needing emergency care"]
WITHDRAWAL_REASONS = ["", "too busy", "moved away", "side effects", "lost interest", "did not feel better"]


@dataclass
class SimulationResult:
    participants: int = 0
    randomised: int = 0
    screen_failed: int = 0
    withdrawn: int = 0
    instances: int = 0
    responses: int = 0
    item_answers: int = 0
    doses: int = 0
    side_effects: int = 0
    safety_alerts: int = 0
    staff_guesses: int = 0
    skipped: bool = False


@dataclass
class _Person:
    pk: int
    uuid: uuid.UUID
    study_id: str
    site: object
    zone: ZoneInfo
    fate: str  # screen_failed, registered, enrolled, randomised
    registered_at: datetime
    eligibility: dict
    user_pk: int | None = None
    consented_at: datetime | None = None
    randomised_at: datetime | None = None
    day0: date | None = None
    arm: str | None = None  # arm code (kept in memory; stored only through the allocation list)
    units: list = field(default_factory=list)
    slot_pk: int | None = None
    arm_active: bool = False
    stratum: str = ""
    baseline_phq9: float = 10.0
    baseline_gad7: float = 8.0
    answer_rate: float = 0.85
    dose_rate: float = 0.9
    withdrawn_at: datetime | None = None
    withdrawal_scope: str = ""
    believes_active: bool = False
    status: str = "registered"


class _Writer:
    """Collects rows per table for one batch of participants and COPYs them."""

    def __init__(self):
        self.rows: dict[str, list] = {}

    def add(self, name: str, row: tuple) -> None:
        self.rows.setdefault(name, []).append(row)

    def flush(self, spec: dict) -> None:
        for name, (model, columns) in spec.items():
            rows = self.rows.pop(name, [])
            if rows:
                copy_rows(model, columns, rows)
        self.rows.clear()


_SPEC = {
    "instance": (
        SurveyInstance,
        [
            "id",
            "uuid",
            "participant_id",
            "instrument_id",
            "schedule_key",
            "study_day",
            "timezone",
            "local_date",
            "local_time",
            "opens_at",
            "closes_at",
            "grace_until",
            "status",
            "protocol_version_id",
            "created_at",
            "cancelled_at",
            "cancel_reason",
        ],
    ),
    "response": (
        Response,
        [
            "id",
            "uuid",
            "instance_id",
            "participant_id",
            "instrument_id",
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
        ],
    ),
    "item": (ItemAnswer, ["response_id", "item_key", "value", "value_numeric", "value_text"]),
    "score": (Score, ["response_id", "key", "value", "band", "scored", "items_missing"]),
    "reminder": (
        Reminder,
        [
            "uuid",
            "instance_id",
            "stage",
            "due_at",
            "status",
            "channel",
            "attempts",
            "queued_at",
            "sent_at",
            "provider_id",
            "skip_reason",
            "last_error",
        ],
    ),
    "event": (PromptEvent, ["instance_id", "kind", "at", "received_at"]),
    "dose": (
        DoseLog,
        ["uuid", "participant_id", "taken_at", "unit_code", "note", "study_day", "received_at", "idempotency_key"],
    ),
    "side_effect": (
        SideEffect,
        [
            "uuid",
            "participant_id",
            "started_on",
            "description",
            "severity",
            "serious",
            "ongoing",
            "reported_at",
            "study_day",
            "idempotency_key",
        ],
    ),
    "alert": (
        SafetyAlert,
        [
            "uuid",
            "participant_id",
            "rule",
            "title",
            "severity",
            "source_kind",
            "source_id",
            "details",
            "status",
            "raised_at",
            "study_day",
            "due_at",
            "notified_at",
            "escalated_at",
            "acknowledged_at",
            "acknowledged_by_id",
            "acknowledgement_note",
        ],
    ),
}


def _in_quiet_hours(local: time, start: time | None, end: time | None) -> bool:
    if start is None or end is None:
        return False
    if start <= end:
        return start <= local < end
    return local >= start or local < end


def _clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


class TrialSimulator:
    def __init__(self, *, trial: Trial, seed: int = 0, now: datetime | None = None):
        self.trial = trial
        self.rng = random.Random(seed)
        self.now = (now or djtz.now()).astimezone(UTC)
        self.version = trial.current_protocol
        self.protocol = Protocol.model_validate(self.version.definition)
        self.instruments = self._instruments()
        self.sites = list(trial.sites.order_by("code"))
        if not self.sites:
            raise ValueError(f"trial {trial.slug} has no sites")
        self.consent_doc = ConsentDocument.objects.filter(trial=trial).order_by("-valid_from", "-id").first()
        qh = self.protocol.reminders.quiet_hours if self.protocol.reminders else None
        self.quiet = (qh.start, qh.end) if qh else (None, None)
        self.stages = list(self.protocol.reminders.stages) if self.protocol.reminders else []
        self.channel = (self.protocol.reminders.channels or ["push"])[-1] if self.protocol.reminders else "push"
        self.arm_codes = [a.code for a in self.protocol.arms]
        self.arm_ratio = {a.code: a.ratio for a in self.protocol.arms}
        self.placebo_codes = {self.protocol.control_arm().code}  # the declared comparator
        rules = self.protocol.safety.rules if self.protocol.safety else []
        self.rules = {r.key: r for r in rules}
        self._reporter = None
        self.guess_points = [(tp, int(tp.removeprefix("day_"))) for tp in blinding_time_points(self.protocol)]
        self.staff_rng = random.Random(f"coordinator-guesses-{seed}")
        self.ack_within = parse_duration(self.protocol.safety.acknowledge_within) if self.protocol.safety else None

    # -- set-up ---------------------------------------------------------------------------------------
    def _instruments(self) -> dict[str, tuple[Instrument, object]]:
        """The current version of every protocol instrument (created when the surveys loader has not)."""
        out = {}
        for ins in self.protocol.instruments:
            obj = Instrument.objects.filter(trial=self.trial, slug=ins.slug, version=ins.version).first()
            if obj is None:
                obj = Instrument.objects.create(
                    trial=self.trial,
                    slug=ins.slug,
                    version=ins.version,
                    title=ins.title,
                    definition=ins.model_dump(mode="json"),
                    protocol_version=self.version,
                )
            out[ins.slug] = (obj, ins)
        return out

    def _uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    # -- main -----------------------------------------------------------------------------------------
    def run(self, *, participants: int, days: int, batch: int = 100) -> SimulationResult:
        result = SimulationResult()
        # Study ids come from the sites' own sequences, exactly as registration takes them (never reused).
        from participants.services.registration import study_ids_reserve

        chosen = [self.sites[self.rng.randrange(len(self.sites))] for _ in range(participants)]
        ids = {
            site.code: iter(study_ids_reserve(site=site, count=sum(1 for c in chosen if c.code == site.code)))
            for site in self.sites
        }
        people = [self._person(site=site, study_id=next(ids[site.code]), days=days) for site in chosen]
        self._allocate(people)
        for start in range(0, len(people), batch):
            with transaction.atomic(), audit_context(reason="simulate_trial"):
                self._write_batch(people[start : start + batch], result)
        return result

    def _allocate(self, people: list[_Person]) -> None:
        """Take slots of the trial's concealed allocation list in stratum order, as randomisation does.

        Without a list one is generated from the simulation seed, sized to the simulated strata. A participant
        whose stratum is exhausted stays enrolled (not randomised), as in the real flow.
        """
        wanted = [p for p in people if p.fate == "randomised"]
        for p in wanted:
            band = self._baseline_band(p.baseline_phq9)
            p.stratum = "|".join(part for part in (p.site.code, band) if part)
        alist = AllocationList.objects.filter(trial=self.trial).first()
        if alist is None:
            counts: dict[str, int] = {}
            for p in wanted:
                counts[p.stratum] = counts.get(p.stratum, 0) + 1
            with audit_context(reason="simulate_trial"):
                alist = allocation_list_generate(
                    trial=self.trial, seed=self.rng.getrandbits(31), per_stratum=max(counts.values(), default=0) + 4
                )
        wanted.sort(key=lambda p: p.randomised_at)
        by_stratum: dict[str, list[_Person]] = {}
        for p in wanted:
            by_stratum.setdefault(p.stratum, []).append(p)
        for stratum, members in by_stratum.items():
            slots = list(
                AllocationSlot.objects.filter(allocation_list=alist, stratum=stratum, taken=False)
                .select_related("arm")
                .prefetch_related("dose_units")
                .order_by("sequence")[: len(members)]
            )
            for i, p in enumerate(members):
                if i >= len(slots):
                    p.fate, p.randomised_at, p.day0, p.stratum = "enrolled", None, None, ""
                    continue
                slot = slots[i]
                p.slot_pk = slot.pk
                p.arm = slot.arm.code
                p.arm_active = p.arm not in self.placebo_codes
                p.units = [u.code for u in sorted(slot.dose_units.all(), key=lambda u: u.number)]

    def _baseline_band(self, value: float) -> str:
        for stratum in self.protocol.randomisation.strata if self.protocol.randomisation else []:
            if stratum.source == "score":
                index = sum(1 for cut in stratum.cut_points if value >= cut)
                return stratum.labels[index] if stratum.labels else f"{stratum.key}{index}"
        return ""

    def _person(self, *, site, study_id: str, days: int) -> _Person:
        rng = self.rng
        zone = ZoneInfo(site.timezone)
        crit = [c.key for c in self.protocol.eligibility]
        eligibility = {k: True for k in crit}
        roll = rng.random()
        fate = "randomised"
        if roll < 0.08 and crit:
            fate = "screen_failed"
            eligibility[rng.choice(crit)] = False
        elif roll < 0.11:
            fate = "registered"
        elif roll < 0.15:
            fate = "enrolled"
        # Day 0 spread over a recruitment ramp so every randomised participant has at least `days` days.
        ramp = max(7, days // 2)
        offset = days + rng.random() * ramp
        local_rand = (self.now - timedelta(days=offset)).astimezone(zone)
        local_rand = local_rand.replace(hour=rng.randint(9, 16), minute=rng.randrange(60), second=rng.randrange(60))
        randomised_at = local_rand.astimezone(UTC)
        baseline_done = randomised_at - timedelta(hours=rng.uniform(2, 60))
        consented_at = baseline_done - timedelta(hours=rng.uniform(1, 30))
        registered_at = consented_at - timedelta(hours=rng.uniform(12, 96))
        p = _Person(
            pk=0,
            uuid=self._uuid(),
            study_id=study_id,
            site=site,
            zone=zone,
            fate=fate,
            registered_at=registered_at,
            eligibility=eligibility,
        )
        p.baseline_phq9 = float(round(_clip(rng.gauss(12.5, 4.5), 3, 26)))
        p.baseline_gad7 = _clip(0.7 * p.baseline_phq9 + rng.gauss(0, 3), 0, 21)
        p.answer_rate = _clip(rng.betavariate(9, 2), 0.3, 0.99)
        p.dose_rate = _clip(rng.betavariate(10, 1.5), 0.4, 1.0)
        if fate in ("enrolled", "randomised"):
            p.consented_at = consented_at
        if fate == "randomised":
            p.randomised_at = randomised_at
            p.day0 = randomised_at.astimezone(zone).date()
        return p

    # -- writing --------------------------------------------------------------------------------------
    def _write_batch(self, people: list[_Person], result: SimulationResult) -> None:
        User = get_user_model()
        linked = [p for p in people if p.fate in ("enrolled", "randomised")]
        users = User.objects.bulk_create(
            [User(username=f"participant-{p.uuid}", password="!", is_active=True) for p in linked]  # noqa: S106
        )
        for p, u in zip(linked, users, strict=True):
            p.user_pk = u.pk
        ids = reserve_ids(Participant, len(people))
        for p, pk in zip(people, ids, strict=True):
            p.pk = pk
        # Withdrawals are decided up front (they cut the schedule short).
        for p in people:
            if p.fate == "randomised":
                elapsed = (self.now - p.randomised_at).total_seconds() / 86400
                if self.rng.random() < 0.07 and elapsed > 4:
                    w_day = self.rng.uniform(3, min(elapsed, 56))
                    p.withdrawn_at = p.randomised_at + timedelta(days=w_day)
                    p.withdrawal_scope = "all" if self.rng.random() < 0.7 else "intervention"
        w = _Writer()
        part_rows = []
        for p in people:
            status = {"screen_failed": "screen_failed", "registered": "registered", "enrolled": "enrolled"}.get(
                p.fate, "randomised"
            )
            completed_on = None
            if p.fate == "randomised":
                if p.withdrawn_at is not None:
                    status = "withdrawn"
                elif (self.now.astimezone(p.zone).date() - p.day0).days > 58:
                    # The last prompt (day 56, 48 h window) has closed: the first local date after it.
                    status, completed_on = "completed", p.day0 + timedelta(days=59)
            p.status = status
            part_rows.append(
                (
                    p.pk,
                    p.uuid,
                    p.study_id,
                    self.trial.pk,
                    p.site.pk,
                    p.user_pk,
                    status,
                    p.site.timezone,
                    json.dumps(["push"] if p.user_pk else []),
                    "",
                    json.dumps(p.eligibility),
                    p.fate != "screen_failed",
                    p.stratum,
                    p.registered_at,
                    p.consented_at - timedelta(minutes=5) if p.consented_at else None,
                    p.randomised_at,
                    p.day0,
                    p.withdrawn_at,
                    p.withdrawal_scope,
                    False,
                    completed_on,
                )
            )
            result.participants += 1
            result.screen_failed += p.fate == "screen_failed"
            result.randomised += p.fate == "randomised"
            result.withdrawn += p.withdrawn_at is not None
        copy_rows(
            Participant,
            [
                "id",
                "uuid",
                "study_id",
                "trial_id",
                "site_id",
                "user_id",
                "status",
                "timezone",
                "channels",
                "push_token",
                "eligibility",
                "eligible",
                "stratum",
                "registered_at",
                "enrolled_at",
                "randomised_at",
                "day0",
                "withdrawn_at",
                "withdrawal_scope",
                "locked",
                "completed_on",
            ],
            part_rows,
        )
        if self.consent_doc is not None:
            ConsentSignature.objects.bulk_create(
                [
                    ConsentSignature(
                        uuid=self._uuid(),
                        participant_id=p.pk,
                        document=self.consent_doc,
                        method=ConsentSignature.ELECTRONIC,
                        sha256=self.consent_doc.sha256,
                        typed_name="",
                        signed_at=p.consented_at,
                        device={"platform": self.rng.choice(["ios", "android"]), "app_version": "1.2"},
                    )
                    for p in people
                    if p.consented_at is not None
                ]
            )
        randomised = [p for p in people if p.fate == "randomised"]
        if randomised:
            Allocation.objects.bulk_create(
                [Allocation(participant_id=p.pk, slot_id=p.slot_pk, allocated_at=p.randomised_at) for p in randomised]
            )
            AllocationSlot.objects.filter(pk__in=[p.slot_pk for p in randomised]).update(taken=True)
        withdrawn = [p for p in randomised if p.withdrawn_at is not None]
        if withdrawn:
            Withdrawal.objects.bulk_create(
                [
                    Withdrawal(
                        uuid=self._uuid(),
                        participant_id=p.pk,
                        scope=p.withdrawal_scope,
                        reason=self.rng.choice(WITHDRAWAL_REASONS),
                        withdrawn_at=p.withdrawn_at,
                        study_day=study_day_of(day0=p.day0, zone=p.zone, at=p.withdrawn_at),
                        by_participant=self.rng.random() < 0.6,
                    )
                    for p in withdrawn
                ]
            )
        # Instances: plan every schedule event, reserve ids, then decide each one's fate.
        planned = []
        for p in people:
            if p.consented_at is None:
                continue
            planned.extend(self._plan(p))
        ids = reserve_ids(SurveyInstance, len(planned))
        answered = []
        for pk, inst in zip(ids, planned, strict=True):
            inst["id"] = pk
            self._simulate_instance(inst, w, answered)
        result.instances += len(planned)
        resp_ids = reserve_ids(Response, len(answered))
        for rid, (inst, answers, authored, received, late) in zip(resp_ids, answered, strict=True):
            result.responses += 1
            result.item_answers += self._write_response(rid, inst, answers, authored, received, late, w)
        for p in randomised:
            result.doses += self._doses(p, w)
            result.side_effects += self._side_effects(p, w)
        result.safety_alerts += len(w.rows.get("alert", []))
        w.flush(_SPEC)
        result.staff_guesses += self._staff_guesses(randomised)

    def _plan(self, p: _Person) -> list[dict]:
        out = []
        for event in self.protocol.schedule:
            if event.after_dose is not None:
                continue  # dose-anchored entries open after logged doses, not on a plan
            ins_obj, ins = self.instruments[event.instrument]
            window = parse_duration(event.window)
            grace = parse_duration(event.grace)
            if event.anchor == "consent":
                anchor_local = p.consented_at.astimezone(p.zone)
            elif p.day0 is not None:
                anchor_local = None
            else:
                continue
            for day in event.day_list():
                if event.anchor == "consent":
                    local_date = anchor_local.date() + timedelta(days=day)
                else:
                    local_date = p.day0 + timedelta(days=day)
                if event.open == "on_anchor":
                    opens = (p.consented_at if event.anchor == "consent" else p.randomised_at) + timedelta(days=day)
                    local_time = None
                else:
                    local_time = event.time
                    opens = local_to_utc(local_date, event.time, p.zone)
                out.append(
                    {
                        "p": p,
                        "instrument": ins_obj,
                        "spec": ins,
                        "key": event.key,
                        "day": day,
                        "local_date": local_date,
                        "local_time": local_time,
                        "opens": opens,
                        "closes": opens + window,
                        "grace": opens + window + grace,
                        "baseline": event.baseline,
                    }
                )
        return out

    def _simulate_instance(self, inst: dict, w: _Writer, answered: list) -> None:
        rng = self.rng
        p: _Person = inst["p"]
        opens, closes, grace = inst["opens"], inst["closes"], inst["grace"]
        status = "scheduled"
        cancelled_at = None
        cancel_reason = ""
        answer_at = None
        late = False
        if inst["baseline"]:
            if p.fate == "randomised":
                answer_at = min(closes - timedelta(minutes=1), p.randomised_at - timedelta(hours=rng.uniform(1, 2)))
                answer_at = max(answer_at, opens + timedelta(minutes=2))
            elif rng.random() < 0.5:
                answer_at = opens + timedelta(hours=rng.uniform(0.5, 40))
        else:
            withdrawn_all = p.withdrawn_at is not None and p.withdrawal_scope == "all"
            if withdrawn_all and opens > p.withdrawn_at:
                status, cancelled_at, cancel_reason = "cancelled", p.withdrawn_at, "withdrawn"
            else:
                fade = 1 - 0.004 * max(inst["day"], 0)
                rate = p.answer_rate * fade
                if inst["key"] != "daily_mood":
                    rate = min(0.99, rate + 0.06)
                if rng.random() < rate:
                    span = (closes - opens).total_seconds()
                    if rng.random() < 0.03:
                        answer_at = closes + (grace - closes) * rng.random()
                        late = answer_at > closes
                    else:
                        answer_at = opens + timedelta(seconds=span * rng.betavariate(1.2, 4))
        if answer_at is not None and answer_at > self.now:
            answer_at = None
            late = False
        if answer_at is not None:
            status = "completed"
            received = answer_at + timedelta(seconds=rng.uniform(0.2, 4))
            if rng.random() < 0.05:  # answered offline, synced later
                received = min(self.now, answer_at + timedelta(hours=rng.uniform(0.5, 10)))
            answers = self._answers(p, inst)
            answered.append((inst, answers, answer_at, received, late))
        elif status == "scheduled" and grace < self.now:
            status = "missed"
        inst["status"] = status
        w.add(
            "instance",
            (
                inst["id"],
                self._uuid(),
                p.pk,
                inst["instrument"].pk,
                inst["key"],
                inst["day"],
                p.site.timezone,
                inst["local_date"],
                inst["local_time"],
                opens,
                closes,
                grace,
                status,
                self.version.pk,
                min(opens, p.randomised_at or p.consented_at),
                cancelled_at,
                cancel_reason,
            ),
        )
        if status == "cancelled" or opens > self.now:
            return
        # Reminders: each stage once; skipped when answered, in quiet hours or withdrawn; pending in the future.
        sent_first = None
        for stage in self.stages:
            base = opens if stage.at == "open" else closes
            due = base + parse_duration(stage.offset)
            local = due.astimezone(p.zone).time()
            if due > self.now:
                w.add("reminder", (self._uuid(), inst["id"], stage.key, due, "pending", "", 0, None, None, "", "", ""))
                continue
            if answer_at is not None and answer_at <= due:
                row = (self._uuid(), inst["id"], stage.key, due, "skipped", "", 0, None, None, "", "answered", "")
            elif _in_quiet_hours(local, *self.quiet):
                row = (self._uuid(), inst["id"], stage.key, due, "skipped", "", 0, None, None, "", "quiet_hours", "")
            else:
                sent = due + timedelta(seconds=rng.uniform(1, 50))
                sent_first = sent_first or sent
                row = (
                    self._uuid(),
                    inst["id"],
                    stage.key,
                    due,
                    "sent",
                    self.channel,
                    1,
                    due,
                    sent,
                    f"sim-{rng.getrandbits(48):012x}",
                    "",
                    "",
                )
            w.add("reminder", row)
        if sent_first is not None and rng.random() < 0.95:
            delivered = sent_first + timedelta(seconds=rng.uniform(1, 90))
            w.add("event", (inst["id"], "delivered", delivered, delivered + timedelta(seconds=1)))
            if answer_at is not None and answer_at > delivered:
                opened = max(delivered, answer_at - timedelta(seconds=rng.uniform(20, 400)))
                w.add("event", (inst["id"], "opened", opened, opened + timedelta(seconds=1)))
            elif answer_at is None and rng.random() < 0.2:
                opened = delivered + timedelta(minutes=rng.uniform(1, 60))
                w.add("event", (inst["id"], "opened", opened, opened + timedelta(seconds=1)))

    # -- answers --------------------------------------------------------------------------------------
    def _progress(self, p: _Person, day: int) -> float:
        return min(max(day, 0), 42) / 42

    def _severity(self, p: _Person, day: int, baseline: float, scale_max: float) -> float:
        """Expected score on a study day: placebo response, a small drug effect, expectancy bias."""
        f = self._progress(p, day)
        scale = scale_max / 27
        drop = 3.0 * f + (1.6 * f if p.arm_active else 0.0) + (1.4 * f if p.believes_active else 0.0)
        return _clip(baseline - drop * scale + self.rng.gauss(0, 1.8 * scale), 0, scale_max)

    def _sum_items(self, keys: list[str], total: float) -> dict:
        """Spread an expected total over 0-3 items."""
        mean = total / len(keys)
        out = {}
        for k in keys:
            out[k] = int(_clip(round(mean + self.rng.gauss(0, 0.6)), 0, 3))
        return out

    def _answers(self, p: _Person, inst: dict) -> dict:
        rng = self.rng
        slug = inst["spec"].slug
        day = inst["day"] if not inst["baseline"] else 0
        if slug == "phq9":
            total = p.baseline_phq9 if inst["baseline"] else self._severity(p, day, p.baseline_phq9, 27)
            ans = self._sum_items([f"phq9_{i}" for i in range(1, 9)], total * 8 / 9)
            risk = 0.04 if total >= 15 else 0.006
            ans["phq9_9"] = 1 if rng.random() < risk else 0
            if rng.random() < 0.85:
                ans["phq9_difficulty"] = int(_clip(round(total / 8 + rng.gauss(0, 0.5)), 0, 3))
            return ans
        if slug == "gad7":
            total = p.baseline_gad7 if inst["baseline"] else self._severity(p, day, p.baseline_gad7, 21)
            return self._sum_items([f"gad7_{i}" for i in range(1, 8)], total)
        if slug == "daily-mood":
            sev = self._severity(p, day, p.baseline_phq9, 27)
            dose_day = self._is_dose_day(day)
            took = dose_day and rng.random() < p.dose_rate and not self._stopped_dosing(p, day)
            ans = {
                "mood": int(_clip(round(75 - 2.2 * sev + rng.gauss(0, 9)), 0, 100)),
                "anxiety": int(_clip(round(20 + 1.8 * sev + rng.gauss(0, 10)), 0, 100)),
                "energy": int(_clip(round(70 - 1.6 * sev + rng.gauss(0, 11)), 0, 100)),
                "focus": int(_clip(round(68 - 1.5 * sev + rng.gauss(0, 11)), 0, 100)),
                "dose_taken": took,
            }
            if took and rng.random() < (0.10 if p.arm_active else 0.04):
                ans["side_effect"] = rng.choice(SIDE_EFFECTS)[0]
            return ans
        if slug == "blinding-guess":
            late_phase = day >= 28
            if p.arm_active:
                weights = (0.52, 0.18, 0.30) if late_phase else (0.36, 0.24, 0.40)
            else:
                weights = (0.24, 0.42, 0.34) if late_phase else (0.24, 0.32, 0.44)
            guess = rng.choices(["active", "placebo", "dont_know"], weights=weights)[0]
            p.believes_active = guess == "active"
            conf = 20 if guess == "dont_know" else 55
            return {"guess": guess, "confidence": int(_clip(round(rng.gauss(conf, 18)), 0, 100))}
        return self._generic_answers(inst["spec"])

    def _generic_answers(self, spec) -> dict:
        rng = self.rng
        out = {}
        for item in spec.items:
            if not item.required and rng.random() < 0.7:
                continue
            if item.type in ("choice",):
                out[item.key] = rng.choice(spec.resolved_choices(item)).value
            elif item.type in ("slider", "integer"):
                out[item.key] = rng.randint(int(item.min if item.min is not None else 0), int(item.max or 10))
            elif item.type == "decimal":
                out[item.key] = round(rng.uniform(item.min or 0, item.max or 10), 2)
            elif item.type == "boolean":
                out[item.key] = rng.random() < 0.5
            elif item.type == "text":
                out[item.key] = "no comment"
        return out

    def _is_dose_day(self, day: int) -> bool:
        d = self.protocol.dosing
        if d is None:
            return False
        return d.start_day <= day <= d.end_day and (day - d.start_day) % d.every_n_days == 0

    def _stopped_dosing(self, p: _Person, day: int) -> bool:
        if p.withdrawn_at is None:
            return False
        return p.day0 + timedelta(days=day) >= p.withdrawn_at.astimezone(p.zone).date()

    def _write_response(self, rid, inst, answers, authored, received, late, w: _Writer) -> int:
        p: _Person = inst["p"]
        key = self._uuid()
        body = json.dumps(
            {"answers": answers, "authored": authored.astimezone(p.zone).isoformat()},
            sort_keys=True,
            separators=(",", ":"),
        )
        offset = int(authored.astimezone(p.zone).utcoffset().total_seconds() // 60)
        study_day = study_day_of(day0=p.day0, zone=p.zone, at=authored)
        resp_uuid = self._uuid()
        w.add(
            "response",
            (
                rid,
                resp_uuid,
                inst["id"],
                p.pk,
                inst["instrument"].pk,
                key,
                hashlib.sha256(body.encode()).hexdigest(),
                json.dumps(answers),
                authored,
                offset,
                received,
                late,
                False,
                study_day,
                "sync" if (received - authored) > timedelta(minutes=10) else "api",
                False,
            ),
        )
        for k, v in answers.items():
            if isinstance(v, bool):
                w.add("item", (rid, k, json.dumps(v), 1.0 if v else 0.0, ""))
            elif isinstance(v, (int, float)):
                w.add("item", (rid, k, json.dumps(v), float(v), ""))
            else:
                w.add("item", (rid, k, json.dumps(v), None, str(v)))
        spec = inst["spec"]
        scores = score_answers(inst["instrument"].definition, answers)
        for s in scores:
            w.add("score", (rid, s.key, s.value, s.band, s.scored, s.items_missing))
        self._safety_from_response(p, spec.slug, answers, scores, resp_uuid, received, w)
        return len(answers)

    def _safety_from_response(self, p, slug, answers, scores, resp_uuid, received, w: _Writer) -> None:
        by_key = {s.key: s.value for s in scores}
        ops = {
            "gt": lambda a, b: a > b,
            "gte": lambda a, b: a >= b,
            "lt": lambda a, b: a < b,
            "lte": lambda a, b: a <= b,
            "eq": lambda a, b: a == b,
            "ne": lambda a, b: a != b,
        }
        for rule in self.rules.values():
            if rule.source != "response" or rule.instrument != slug:
                continue
            cond = rule.when
            value = answers.get(cond.item) if cond.item else by_key.get(cond.score)
            if value is None or not ops[cond.op](value, cond.value):
                continue
            self._alert(p, rule, "response", resp_uuid, {cond.item or cond.score: value}, received, w)

    def _alert(self, p, rule, source_kind, source_uuid, details, raised, w: _Writer) -> None:
        rng = self.rng
        due = raised + (self.ack_within or timedelta(hours=24))
        status, ack_at, esc_at = "open", None, None
        if due < self.now or rng.random() < 0.7:
            ack_at = raised + timedelta(hours=rng.uniform(0.3, 20))
            if ack_at > self.now:
                ack_at = None
            elif rng.random() < 0.06:
                ack_at = due + timedelta(hours=rng.uniform(1, 6))
                esc_at = due
                ack_at = ack_at if ack_at < self.now else None
            status = "acknowledged" if ack_at else ("escalated" if due < self.now else "open")
            if status == "escalated":
                esc_at = due
        w.add(
            "alert",
            (
                self._uuid(),
                p.pk,
                rule.key,
                rule.title,
                rule.severity,
                source_kind,
                str(source_uuid),
                json.dumps(details),
                status,
                raised,
                study_day_of(day0=p.day0, zone=p.zone, at=raised),
                due,
                raised + timedelta(seconds=5),
                esc_at,
                ack_at,
                None,
                "reviewed with participant by phone" if ack_at else "",
            ),
        )

    def _doses(self, p: _Person, w: _Writer) -> int:
        d = self.protocol.dosing
        if d is None:
            return 0
        rng = self.rng
        n = 0
        units = p.units
        for i, day in enumerate(range(d.start_day, d.end_day + 1, d.every_n_days)):
            local_day = p.day0 + timedelta(days=day)
            taken_local = datetime.combine(local_day, time(8), tzinfo=p.zone) + timedelta(minutes=rng.uniform(0, 180))
            taken = taken_local.astimezone(UTC)
            if taken > self.now or self._stopped_dosing(p, day) or rng.random() > p.dose_rate:
                continue
            received = taken + timedelta(minutes=rng.uniform(0.1, 30))
            if received > self.now:
                continue
            unit = units[i] if i < len(units) else ""
            study_day = study_day_of(day0=p.day0, zone=p.zone, at=taken)
            w.add("dose", (self._uuid(), p.pk, taken, unit, "", study_day, received, self._uuid()))
            n += 1
        return n

    def _side_effects(self, p: _Person, w: _Writer) -> int:
        rng = self.rng
        rate = 0.35 if p.arm_active else 0.2
        n = 0
        elapsed = (self.now - p.randomised_at).days
        while rng.random() < rate and elapsed > 1:
            rate *= 0.5
            day = rng.randint(1, min(elapsed, 56))
            started = p.day0 + timedelta(days=day)
            reported = datetime.combine(started, time(19), tzinfo=p.zone).astimezone(UTC) + timedelta(
                hours=rng.uniform(0, 30)
            )
            if reported > self.now:
                continue
            serious = rng.random() < 0.03
            desc, sev = (rng.choice(SERIOUS_SIDE_EFFECTS), "severe") if serious else rng.choice(SIDE_EFFECTS)
            se_uuid = self._uuid()
            study_day = study_day_of(day0=p.day0, zone=p.zone, at=reported)
            w.add(
                "side_effect",
                (se_uuid, p.pk, started, desc, sev, serious, rng.random() < 0.3, reported, study_day, self._uuid()),
            )
            n += 1
            rule = self.rules.get("serious_side_effect")
            if serious:
                rule = next((r for r in self.rules.values() if r.source == "side_effect"), None)
                if rule is not None:
                    self._alert(p, rule, "side_effect", se_uuid, {"serious": True}, reported, w)
                self._adverse_event(p, started, desc, reported)
        return n

    def _coordinator(self):
        """The (inactive) user standing for the sites' coordinators in simulated staff records."""
        if self._reporter is None:
            User = get_user_model()
            self._reporter, _ = User.objects.get_or_create(
                username="simulated-coordinator", defaults={"is_active": False, "password": "!", "is_staff": False}
            )
        return self._reporter

    def _staff_guesses(self, people: list[_Person]) -> int:
        """The coordinator's blinding guess at each time point a participant reached (before any full
        withdrawal): a little better than chance, with a modest confidence. COPYed like the survey data."""
        rng = self.staff_rng
        rows = []
        for p in people:
            for time_point, day in self.guess_points:
                at = datetime.combine(p.day0 + timedelta(days=day), time(15, 0), tzinfo=p.zone).astimezone(UTC)
                at += timedelta(hours=rng.uniform(0, 48))
                if at > self.now or (
                    p.withdrawn_at is not None and p.withdrawal_scope == "all" and at > p.withdrawn_at
                ):
                    continue
                if rng.random() < 0.1:
                    continue  # not every visit has a guess recorded
                weights = (0.42, 0.24, 0.34) if p.arm_active else (0.26, 0.40, 0.34)
                guess = rng.choices(["active", "placebo", "dont_know"], weights=weights)[0]
                mean = 25 if guess == "dont_know" else 50
                confidence = int(_clip(round(rng.gauss(mean, 15)), 0, 100))
                rows.append(
                    (uuid.UUID(int=rng.getrandbits(128), version=4), p.pk, None, time_point, guess, confidence, at)
                )
        if not rows:
            return 0
        rater = self._coordinator().pk
        return copy_rows(
            StaffBlindingGuess,
            ["uuid", "participant_id", "rater_id", "time_point", "guess", "confidence", "recorded_at"],
            [(*r[:2], rater, *r[3:]) for r in rows],
        )

    def _adverse_event(self, p: _Person, onset: date, description: str, reported: datetime) -> None:
        """The coordinator's follow-up of a serious side effect: a staff-entered adverse event report."""
        self._coordinator()
        AdverseEvent.objects.create(
            uuid=self._uuid(),
            participant_id=p.pk,
            onset=onset,
            description=description,
            severity_grade=3,
            serious=True,
            seriousness_criteria=[self.rng.choice(["hospitalisation", "other_medically_important"])],
            relatedness=self.rng.choice(["unlikely", "possible", "probable"]),
            action_taken=self.rng.choice(["none", "interrupted"]),
            outcome=self.rng.choice(["recovered", "recovering"]),
            reported_at=(ae_reported := reported + timedelta(hours=self.rng.uniform(2, 20))),
            study_day=study_day_of(day0=p.day0, zone=p.zone, at=ae_reported),
            reported_by=self._reporter,
        )


def simulate_trial(
    *,
    trial: Trial,
    participants: int,
    days: int,
    seed: int = 0,
    if_empty: bool = False,
    now: datetime | None = None,
) -> SimulationResult:
    """Create `participants` synthetic participants in the trial, followed for at least `days` days.

    With `if_empty`, do nothing when the trial already has participants (the demo is idempotent).
    """
    if participants < 0 or days < 0:
        raise ValueError("participants and days must not be negative")
    if if_empty and Participant.objects.filter(trial=trial).exists():
        return SimulationResult(skipped=True)
    sim = TrialSimulator(trial=trial, seed=seed, now=now)
    return sim.run(participants=participants, days=days)


__all__ = ["simulate_trial", "SimulationResult", "TrialSimulator"]
