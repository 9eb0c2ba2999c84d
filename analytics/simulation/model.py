"""The statistical model of a simulated trial (no database): who the participants are, how they answer.

- participants are screened at the trial's sites; some fail screening, some never link a phone, some never
  finish the baseline;
- each has a baseline severity, a personal adherence (answering and dosing) that fades a little over time;
- PHQ-9 / GAD-7 / daily mood improve with time (placebo response), a little more on the active arm (small
  effect), and more for those who believe they take the active dose (expectancy bias);
- blinding guesses are partly broken: the active arm guesses "active" more often as the trial goes on.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

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
class Person:
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
    baseline_answers: dict = field(default_factory=dict)  # instrument slug → the answers of its baseline survey
    answer_rate: float = 0.85
    dose_rate: float = 0.9
    withdrawn_at: datetime | None = None
    withdrawal_scope: str = ""
    believes_active: bool = False
    status: str = "registered"

    @property
    def withdrawn_on(self) -> date | None:
        return self.withdrawn_at.astimezone(self.zone).date() if self.withdrawn_at else None


def clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


_V4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_V4_SET = (0x8000 << 48) | (4 << 76)
_UUID_NEW = object.__new__
_UUID_SET = object.__setattr__
_UNKNOWN = uuid.SafeUUID.unknown


def new_uuid(rng: random.Random) -> uuid.UUID:
    """A version-4 UUID from the generator: the same value as `uuid.UUID(int=rng.getrandbits(128), version=4)`,
    built without UUID.__init__'s argument checks (the variant and version bits are set here, as it does)."""
    u = _UUID_NEW(uuid.UUID)
    _UUID_SET(u, "int", (rng.getrandbits(128) & _V4_CLEAR) | _V4_SET)
    _UUID_SET(u, "is_safe", _UNKNOWN)
    return u


def new_uuid_bytes(rng: random.Random) -> bytes:
    """`new_uuid(rng).bytes` (the same draw), as the writer sends a uuid: its 16 bytes."""
    return ((rng.getrandbits(128) & _V4_CLEAR) | _V4_SET).to_bytes(16, "big")


def uuid_text(raw: bytes) -> str:
    """The canonical text of a uuid given as its 16 bytes (str(uuid.UUID(bytes=raw)))."""
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def draw_person(rng: random.Random, *, site, study_id: str, days: int, now: datetime, criteria: list[str]) -> Person:
    zone = ZoneInfo(site.timezone)
    eligibility = {k: True for k in criteria}
    roll = rng.random()
    fate = "randomised"
    if roll < 0.08 and criteria:
        fate = "screen_failed"
        eligibility[rng.choice(criteria)] = False
    elif roll < 0.11:
        fate = "registered"
    elif roll < 0.15:
        fate = "enrolled"
    # Day 0 spread over a recruitment ramp so every randomised participant has at least `days` days.
    ramp = max(7, days // 2)
    offset = days + rng.random() * ramp
    local_rand = (now - timedelta(days=offset)).astimezone(zone)
    local_rand = local_rand.replace(hour=rng.randint(9, 16), minute=rng.randrange(60), second=rng.randrange(60))
    randomised_at = local_rand.astimezone(UTC)
    baseline_done = randomised_at - timedelta(hours=rng.uniform(2, 60))
    consented_at = baseline_done - timedelta(hours=rng.uniform(1, 30))
    registered_at = consented_at - timedelta(hours=rng.uniform(12, 96))
    p = Person(
        pk=0,
        uuid=new_uuid(rng),
        study_id=study_id,
        site=site,
        zone=zone,
        fate=fate,
        registered_at=registered_at,
        eligibility=eligibility,
    )
    p.baseline_phq9 = float(round(clip(rng.gauss(12.5, 4.5), 3, 26)))
    p.baseline_gad7 = clip(0.7 * p.baseline_phq9 + rng.gauss(0, 3), 0, 21)
    p.answer_rate = clip(rng.betavariate(9, 2), 0.3, 0.99)
    p.dose_rate = clip(rng.betavariate(10, 1.5), 0.4, 1.0)
    if fate in ("enrolled", "randomised"):
        p.consented_at = consented_at
    if fate == "randomised":
        p.randomised_at = randomised_at
        p.day0 = randomised_at.astimezone(zone).date()
    return p


class AnswerModel:
    """Answers of one participant to one survey on a study day (draws from the simulator's generator)."""

    def __init__(self, rng: random.Random, *, dosing, is_dose_day):
        self.rng = rng
        self.dosing = dosing
        self.is_dose_day = is_dose_day  # production's definition (surveys.definitions.is_dose_day)

    def severity(self, p: Person, day: int, baseline: float, scale_max: float) -> float:
        """Expected score on a study day: placebo response, a small drug effect, expectancy bias."""
        f = min(max(day, 0), 42) / 42
        scale = scale_max / 27
        drop = 3.0 * f + (1.6 * f if p.arm_active else 0.0) + (1.4 * f if p.believes_active else 0.0)
        return clip(baseline - drop * scale + self.rng.gauss(0, 1.8 * scale), 0, scale_max)

    def sum_items(self, keys: list[str], total: float) -> dict:
        """Spread an expected total over 0-3 items."""
        mean = total / len(keys)
        gauss = self.rng.gauss
        return {k: int(clip(round(mean + gauss(0, 0.6)), 0, 3)) for k in keys}

    def baseline(self, slug: str, p: Person, spec) -> dict:
        return self.answers(slug, p, spec, day=0, baseline=True)

    def answers(self, slug: str, p: Person, spec, *, day: int, baseline: bool) -> dict:
        rng = self.rng
        if slug == "phq9":
            total = p.baseline_phq9 if baseline else self.severity(p, day, p.baseline_phq9, 27)
            ans = self.sum_items([f"phq9_{i}" for i in range(1, 9)], total * 8 / 9)
            risk = 0.04 if total >= 15 else 0.006
            ans["phq9_9"] = 1 if rng.random() < risk else 0
            if rng.random() < 0.85:
                ans["phq9_difficulty"] = int(clip(round(total / 8 + rng.gauss(0, 0.5)), 0, 3))
            return ans
        if slug == "gad7":
            total = p.baseline_gad7 if baseline else self.severity(p, day, p.baseline_gad7, 21)
            return self.sum_items([f"gad7_{i}" for i in range(1, 8)], total)
        if slug == "daily-mood":
            sev = self.severity(p, day, p.baseline_phq9, 27)
            stopped = p.withdrawn_on is not None and p.day0 + timedelta(days=day) >= p.withdrawn_on
            took = self.is_dose_day(dosing=self.dosing, day=day) and rng.random() < p.dose_rate and not stopped
            ans = {
                "mood": int(clip(round(75 - 2.2 * sev + rng.gauss(0, 9)), 0, 100)),
                "anxiety": int(clip(round(20 + 1.8 * sev + rng.gauss(0, 10)), 0, 100)),
                "energy": int(clip(round(70 - 1.6 * sev + rng.gauss(0, 11)), 0, 100)),
                "focus": int(clip(round(68 - 1.5 * sev + rng.gauss(0, 11)), 0, 100)),
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
            return {"guess": guess, "confidence": int(clip(round(rng.gauss(conf, 18)), 0, 100))}
        return self.generic(spec)

    def generic(self, spec) -> dict:
        rng = self.rng
        out = {}
        for item in spec.items:
            if not item.required and rng.random() < 0.7:
                continue
            if item.type == "choice":
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
