"""Follow-up of one simulated participant: survey instances, answers, reminders, doses, side effects, alerts.

Everything a production rule decides is decided by production's own pure functions: the schedule
(surveys.scheduling.plan_event, with its DST rule; the sessions a logged dose opens: plan_after_dose), quiet hours (surveys.reminders.quiet.in_quiet_hours),
scoring (surveys.scoring.score_answers), the safety rules (trialsite.protocol.rules), dose days
(surveys.definitions), the item-answer columns and request hash of a submission (surveys.services). What is
left here is behaviour: whether and when a participant answers, doses, reports; how fast staff acknowledge.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from types import SimpleNamespace

from participants.models import study_day_of
from surveys import definitions
from surveys.reminders.quiet import in_quiet_hours
from surveys.scheduling import plan_after_dose, plan_event
from surveys.scoring import score_answers
from surveys.services.idempotency import request_hash
from surveys.services.responses import answer_columns
from trialsite.protocol.rules import rules_fired_for_record, rules_fired_for_response
from trialsite.protocol.schema import parse_duration

from .model import SERIOUS_SIDE_EFFECTS, SIDE_EFFECTS, Person, uuid_text
from .model import new_uuid_bytes as new_uuid
from .writer import jsonb

_dumps = json.dumps
TEN_MINUTES = timedelta(minutes=10)


class FollowUp:
    """Writes one batch's follow-up rows through `sim.writer` (see TrialSimulator for the shared set-up)."""

    def __init__(self, sim):
        self.sim = sim
        self.rng = sim.rng
        self.w = sim.writer
        self.now = sim.now
        protocol = sim.protocol
        self.protocol = protocol
        reminders = protocol.reminders
        qh = reminders.quiet_hours if reminders else None
        self.quiet = (qh.start, qh.end) if qh else (None, None)
        self.stages = [(s.key, s.at, parse_duration(s.offset)) for s in (reminders.stages if reminders else [])]
        self.channel = (reminders.channels or ["push"])[-1] if reminders else "push"
        self.ack_within = parse_duration(protocol.safety.acknowledge_within) if protocol.safety else None
        # Production's quiet-hours rule, memoised: it is pure, and a site's participants share their due times.
        start, end = self.quiet
        self.in_quiet_hours = lru_cache(maxsize=1 << 16)(
            lambda due, zone: in_quiet_hours(now=due, zone=zone, start=start, end=end)
        )
        # Per protocol version, once: instrument ids, and each table's `list.append` (rows go straight there).
        self.instrument_pk = {slug: obj.pk for slug, (obj, _) in sim.instruments.items()}
        self.version_pk = sim.version.pk
        self.add = {name: self.w.appender(name) for name in self.w.rows}
        # Production's item-answer columns of a value, with its jsonb: values repeat (0-3, 0-100, yes/no).
        self._cells: dict = {}

    # -- survey instances ---------------------------------------------------------------------------------
    def plan(self, p: Person) -> list:
        """Production's schedule of the participant: (event, occurrence) pairs."""
        anchors = {"consent": (p.consented_at, p.consented_at.astimezone(p.zone).date())}
        if p.day0 is not None:
            anchors["randomisation"] = (p.randomised_at, p.day0)
        out = []
        for event in self.protocol.schedule:
            if event.anchor not in anchors:
                continue
            at, day = anchors[event.anchor]
            out.extend(
                (event, occ)
                for occ in plan_event(event=event, anchor_at=at, anchor_date=day, zone_name=p.site.timezone)
            )
        return out

    def instance(self, pk: int, p: Person, event, occ, answered: list, dose: tuple | None = None) -> None:
        """One planned occurrence: answered or not (by the participant's behaviour), with its reminders. `dose`:
        (id, time logged) of the dose that opened an `after_dose` occurrence (created when it was logged)."""
        rng, now = self.rng, self.now
        inst_uuid = new_uuid(rng)
        opens, closes, grace = occ.opens_at, occ.closes_at, occ.grace_until
        status, cancelled_at, cancel_reason = "scheduled", None, ""
        answer_at, late = None, False
        if event.baseline:
            if p.fate == "randomised":
                answer_at = min(closes - timedelta(minutes=1), p.randomised_at - timedelta(hours=rng.uniform(1, 2)))
                answer_at = max(answer_at, opens + timedelta(minutes=2))
            elif rng.random() < 0.5:
                answer_at = opens + timedelta(hours=rng.uniform(0.5, 40))
        else:
            rate = p.answer_rate * (1 - 0.004 * max(occ.study_day, 0))
            if event.key != "daily_mood":
                rate = min(0.99, rate + 0.06)
            if rng.random() < rate:
                if rng.random() < 0.03:
                    answer_at = closes + (grace - closes) * rng.random()
                    late = answer_at > closes
                else:
                    answer_at = opens + (closes - opens) * rng.betavariate(1.2, 4)
            withdrawn = p.withdrawn_at if p.withdrawal_scope == "all" else None
            if withdrawn is not None and grace > withdrawn and (answer_at is None or answer_at > withdrawn):
                # As the withdrawal service does: what was not answered and whose answer period had not ended.
                status, cancelled_at, cancel_reason = "cancelled", withdrawn, "withdrawn"
                answer_at, late = None, False
        if answer_at is not None and answer_at > now:
            answer_at, late = None, False
        if answer_at is not None:
            status = "completed"
            received = answer_at + timedelta(seconds=rng.uniform(0.2, 4))
            if rng.random() < 0.05:  # answered offline, synced later
                received = min(now, answer_at + timedelta(hours=rng.uniform(0.5, 10)))
            slug = event.instrument
            if event.baseline and slug in p.baseline_answers:
                answers = p.baseline_answers[slug]  # drawn before randomisation: the stratum came from them
            else:
                spec = self.sim.instruments[slug][1]
                answers = self.sim.answer_model.answers(slug, p, spec, day=occ.study_day, baseline=event.baseline)
            answered.append((pk, inst_uuid, p, slug, answers, answer_at, received, late))
        elif status == "scheduled" and definitions.instance_is_missed(status=status, grace_until=grace, now=now):
            status = "missed"  # what the sweep has done by `now`
        self.add["instance"](
            (
                pk,
                inst_uuid,
                p.pk,
                self.instrument_pk[event.instrument],
                event.key,
                occ.study_day,
                occ.timezone,
                occ.local_date,
                occ.local_time,
                opens,
                closes,
                grace,
                status,
                self.version_pk,
                min(opens, p.randomised_at or p.consented_at) if dose is None else dose[1],
                cancelled_at,
                cancel_reason,
                None if dose is None else dose[0],
            ),
        )
        if status != "cancelled" and opens <= now:
            self.reminders(pk, p, opens, closes, answer_at)

    def reminders(self, pk: int, p: Person, opens: datetime, closes: datetime, answer_at) -> None:
        """Each stage once: skipped when answered or in quiet hours (production's rule), pending when ahead."""
        rng, now = self.rng, self.now
        add = self.add["reminder"]
        sent_first = None
        for key, at, offset in self.stages:
            due = (opens if at == "open" else closes) + offset
            if due > now:
                add((new_uuid(rng), pk, key, due, "pending", "", 0, None, None, "", "", ""))
                continue
            if answer_at is not None and answer_at <= due:
                row = (new_uuid(rng), pk, key, due, "skipped", "", 0, None, None, "", "answered", "")
            elif self.in_quiet_hours(due, p.zone):
                row = (new_uuid(rng), pk, key, due, "skipped", "", 0, None, None, "", "quiet_hours", "")
            else:
                sent = due + timedelta(seconds=rng.uniform(1, 50))
                sent_first = sent_first or sent
                provider = f"sim-{rng.getrandbits(48):012x}"
                row = (new_uuid(rng), pk, key, due, "sent", self.channel, 1, due, sent, provider, "", "")
            add(row)
        if sent_first is not None and rng.random() < 0.95:
            delivered = sent_first + timedelta(seconds=rng.uniform(1, 90))
            self.add["event"]((pk, "delivered", delivered, delivered + timedelta(seconds=1)))
            opened = None
            if answer_at is not None and answer_at > delivered:
                opened = max(delivered, answer_at - timedelta(seconds=rng.uniform(20, 400)))
            elif answer_at is None and rng.random() < 0.2:
                opened = delivered + timedelta(minutes=rng.uniform(1, 60))
            if opened is not None:
                self.add["event"]((pk, "opened", opened, opened + timedelta(seconds=1)))

    # -- responses ----------------------------------------------------------------------------------------
    def response(self, rid: int, instance_pk: int, instance_uuid, p: Person, slug, answers, authored, received, late):
        rng = self.rng
        instrument = self.sim.instruments[slug][0]
        local = authored.astimezone(p.zone)
        digest = request_hash({"instance": uuid_text(instance_uuid), "answers": answers, "authored": local.isoformat()})
        resp_uuid = new_uuid(rng)
        self.add["response"](
            (
                rid,
                resp_uuid,
                instance_pk,
                p.pk,
                instrument.pk,
                new_uuid(rng),
                digest,
                jsonb(_dumps(answers)),
                authored,
                int(local.utcoffset().total_seconds() // 60),
                received,
                late,
                False,
                study_day_of(day0=p.day0, zone=p.zone, at=authored),
                "sync" if (received - authored) > TEN_MINUTES else "api",
                False,
            ),
        )
        add, cells = self.add["item"], self._cells
        for k, v in answers.items():
            try:
                cell = cells[type(v), v]
            except KeyError:
                cell = cells[type(v), v] = self.cell(v)
            except TypeError:  # an unhashable value (a list): not memoised
                cell = self.cell(v)
            add((rid, k, *cell))
        scores = score_answers(instrument.definition, answers)
        add = self.add["score"]
        for s in scores:
            add((rid, s.key, s.value, s.band, s.scored, s.items_missing))
        if self.protocol.safety:
            fired = rules_fired_for_response(
                protocol=self.protocol, instrument=slug, answers=answers, scores={s.key: s.value for s in scores}
            )
            for rule, details in fired:
                self.alert(p, rule, "response", resp_uuid, details, received)
        return len(answers)

    @staticmethod
    def cell(v) -> tuple:
        """(value as jsonb, value_numeric, value_text) of an item answer: production's answer_columns."""
        cols = answer_columns(v)
        # A plain int's JSON is its repr (bool is not `int` here): json.dumps only for the other values.
        return jsonb(repr(v) if type(v) is int else _dumps(v)), cols["value_numeric"], cols["value_text"]

    def alert(self, p: Person, rule, source_kind: str, source_uuid, details: dict, raised: datetime) -> None:
        """A raised alert (as surveys.safety raises it), then what staff did by `now`: acknowledged, or not
        and escalated once overdue."""
        rng, now = self.rng, self.now
        due = raised + (self.ack_within or timedelta(hours=24))
        status, ack_at, esc_at = "open", None, None
        if due < now or rng.random() < 0.7:
            ack_at = raised + timedelta(hours=rng.uniform(0.3, 20))
            if ack_at > now:
                ack_at = None
            elif rng.random() < 0.06:
                ack_at = due + timedelta(hours=rng.uniform(1, 6))
                esc_at = due
                ack_at = ack_at if ack_at < now else None
            status = "acknowledged" if ack_at else ("escalated" if due < now else "open")
            if status == "escalated":
                esc_at = due
        self.w.add(
            "alert",
            (
                new_uuid(rng),
                p.pk,
                rule.key,
                rule.title,
                rule.severity,
                source_kind,
                uuid_text(source_uuid),
                jsonb(_dumps(details, default=str)),
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

    # -- doses and side effects -------------------------------------------------------------------------
    def doses(self, p: Person, logged: list) -> int:
        """A dose on each planned dose day (surveys.definitions: none from the withdrawal date) the participant
        remembers, logged in the morning. Each goes to `logged` as (participant, its row without the id), to be
        written with an id (`dose_rows`)."""
        rng, now = self.rng, self.now
        n = 0
        planned = definitions.dose_days(dosing=self.protocol.dosing, day0=p.day0, withdrawn_on=p.withdrawn_on)
        for i, day in enumerate(planned):
            local_day = p.day0 + timedelta(days=day)
            taken_local = datetime.combine(local_day, time(8), tzinfo=p.zone) + timedelta(minutes=rng.uniform(0, 180))
            taken = taken_local.astimezone(UTC)
            if taken > now or rng.random() > p.dose_rate:
                continue
            received = taken + timedelta(minutes=rng.uniform(0.1, 30))
            if received > now:
                continue
            unit = p.units[i] if i < len(p.units) else ""
            study_day = study_day_of(day0=p.day0, zone=p.zone, at=taken)
            logged.append((p, (new_uuid(rng), p.pk, taken, unit, "", study_day, received, new_uuid(rng))))
            n += 1
        return n

    def dose_rows(self, logged: list, ids) -> list:
        """Write the logged doses with their ids; return the occurrences they open, planned by production's
        rule (`plan_after_dose`, as `dose_instances_open` opens them when a dose is logged): (participant, event,
        occurrence, (dose id, time logged)) in the participants' order."""
        add, opened = self.add["dose"], []
        after_dose = [e for e in self.protocol.schedule if e.after_dose is not None]
        for (p, row), pk in zip(logged, ids, strict=True):
            add((pk, *row))
            if after_dose:
                taken, study_day, received = row[2], row[5], row[6]
                withdrawn = p.withdrawn_at is not None and p.withdrawal_scope == "all" and p.withdrawn_at <= received
                for event, occ in plan_after_dose(
                    schedule=after_dose,
                    taken_at=taken,
                    study_day=study_day,
                    zone_name=p.site.timezone,
                    withdrawn=withdrawn,
                    now=received,
                ):
                    opened.append((p, event, occ, (pk, received)))
        return opened

    def side_effects(self, p: Person) -> int:
        rng, now = self.rng, self.now
        rate = 0.35 if p.arm_active else 0.2
        n = 0
        elapsed = (now - p.randomised_at).days
        while rng.random() < rate and elapsed > 1:
            rate *= 0.5
            day = rng.randint(1, min(elapsed, 56))
            started = p.day0 + timedelta(days=day)
            reported = datetime.combine(started, time(19), tzinfo=p.zone).astimezone(UTC) + timedelta(
                hours=rng.uniform(0, 30)
            )
            if reported > now:
                continue
            serious = rng.random() < 0.03
            desc, sev = (rng.choice(SERIOUS_SIDE_EFFECTS), "severe") if serious else rng.choice(SIDE_EFFECTS)
            se_uuid = new_uuid(rng)
            ongoing = rng.random() < 0.3
            study_day = study_day_of(day0=p.day0, zone=p.zone, at=reported)
            self.w.add(
                "side_effect", (se_uuid, p.pk, started, desc, sev, serious, ongoing, reported, study_day, new_uuid(rng))
            )
            n += 1
            if self.protocol.safety:
                record = SimpleNamespace(serious=serious, severity=sev, ongoing=ongoing, description=desc)
                for rule, details in rules_fired_for_record(
                    protocol=self.protocol, source="side_effect", record=record
                ):
                    self.alert(p, rule, "side_effect", se_uuid, details, reported)
            if serious:
                self.sim.adverse_event(p, started, desc, reported)
        return n
