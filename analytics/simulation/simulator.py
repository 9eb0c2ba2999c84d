"""TrialSimulator: draws a trial's participants (model.py), plans and follows them with production's pure
functions (follow_up.py) and writes everything through the bulk writer (writer.py).

Randomisation is production's: the stratum comes from production's `stratum_of` with the score production's
scoring gives the simulated baseline answers, and slots are taken from the trial's concealed allocation list in
stratum order (a list is generated from the seed when the trial has none). The end of study is production's
too: after writing, the end-of-study sweep (`participants_complete_finished`) marks whom it finds complete.
"""

from __future__ import annotations

import gc
import json
import random
from contextlib import nullcontext
from datetime import UTC, date, datetime, timedelta
from itertools import groupby
from operator import itemgetter

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
    DoseUnit,
    Participant,
    Withdrawal,
    study_day_of,
)
from participants.services.allocation import allocation_list_generate, stratum_of
from participants.services.blinding_guesses import blinding_time_points
from surveys import definitions
from surveys.models import DoseLog, Instrument, Response, SurveyInstance
from surveys.scoring import score_answers
from surveys.services.schedule import participants_complete_finished
from trialsite.audit import audit_context
from trialsite.models import Trial
from trialsite.protocol.services import protocol_current

from .designs import design_answer_model, envelopes_record
from .follow_up import FollowUp
from .indexes import indexes_deferred
from .model import (
    WITHDRAWAL_REASONS,
    AnswerModel,
    Person,
    SimulationResult,
    clip,
    draw_person,
    new_uuid,
    new_uuid_bytes,
)
from .parallel import run_in_workers
from .writer import BulkWriter, insert_audit_skipped, jsonb, reserve_ids

ANSWERS_PER_FLUSH = 250_000  # about 40 MB of rows in memory per batch


class TrialSimulator:
    def __init__(self, *, trial: Trial, seed: int = 0, now: datetime | None = None, audit: bool = True):
        self.trial = trial
        self.seed = seed
        self.rng = random.Random(seed)
        self.now = (now or djtz.now()).astimezone(UTC)
        self.version = trial.current_protocol
        self.protocol = protocol_current(trial)  # production's one parse per protocol version
        self.instruments = self._instruments()
        self.sites = list(trial.sites.order_by("code"))
        if not self.sites:
            raise ValueError(f"trial {trial.slug} has no sites")
        self.consent_doc = ConsentDocument.objects.filter(trial=trial).order_by("-valid_from", "-id").first()
        self.placebo_codes = {self.protocol.control_arm().code}  # the declared comparator
        self.guess_points = [(tp, int(tp.removeprefix("day_"))) for tp in blinding_time_points(self.protocol)]
        self.staff_rng = random.Random(f"coordinator-guesses-{seed}")
        self.answer_model = AnswerModel(self.rng, dosing=self.protocol.dosing, is_dose_day=definitions.is_dose_day)
        self.answer_model = design_answer_model(self, self.answer_model, seed=seed)  # crossover: designs.py
        self.writer = BulkWriter(audit=audit)
        self.follow_up = FollowUp(self)
        self._reporter = None

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

    # -- main -----------------------------------------------------------------------------------------
    def run(
        self, *, participants: int, days: int, batch: int | None = None, workers: int = 1, defer_indexes: bool = False
    ) -> SimulationResult:
        from participants.services.registration import study_ids_reserve

        result = SimulationResult()
        # Study ids come from the sites' own sequences, exactly as registration takes them (never reused).
        chosen = [self.sites[self.rng.randrange(len(self.sites))] for _ in range(participants)]
        ids = {
            site.code: iter(study_ids_reserve(site=site, count=sum(1 for c in chosen if c.code == site.code)))
            for site in self.sites
        }
        criteria = [c.key for c in self.protocol.eligibility]
        people = [
            draw_person(self.rng, site=site, study_id=next(ids[site.code]), days=days, now=self.now, criteria=criteria)
            for site in chosen
        ]
        self._baseline(people)
        self._allocate(people)
        batch = batch or max(10, ANSWERS_PER_FLUSH // max(1, 12 * (days + 30)))
        batches = [people[start : start + batch] for start in range(0, len(people), batch)]
        with indexes_deferred() if defer_indexes else nullcontext():  # indexes.py (benchmarks' databases only)
            if workers > 1 and len(batches) > 1 and not transaction.get_connection().in_atomic_block:
                self._coordinator()  # created once, before the workers (they would race to create it)
                result = run_in_workers(self, batches, workers)
            else:
                for part in batches:
                    self.write_batch(part, result)
        with audit_context(reason="simulate_trial"):
            participants_complete_finished(now=self.now)
        return result

    def write_batch(self, people: list[Person], result: SimulationResult) -> None:
        """One batch of participants in its own transaction (a worker process runs this for its share).

        The cyclic garbage collector is paused meanwhile: the batch's rows are hundreds of thousands of
        tuples, which it would otherwise traverse again and again for nothing (they hold no cycles)."""
        paused = gc.isenabled()
        gc.disable()
        try:
            with transaction.atomic(), audit_context(reason="simulate_trial"):
                self._write_batch(people, result)
        finally:
            if paused:
                gc.enable()

    def seed_for(self, rng: random.Random, p: Person, part: str) -> random.Random:
        """Re-seed `rng` for one participant's part of the follow-up: each participant's draws depend only on
        the seed and the participant (drawn serially from the seed), not on the batch, the worker or the order
        in which participants are written."""
        rng.seed(f"{self.seed}-{p.uuid}-{part}")
        return rng

    def _baseline(self, people: list[Person]) -> None:
        """The baseline surveys of those who will be randomised are answered first: randomisation needs them."""
        events = [e for e in self.protocol.schedule if e.baseline]
        for p in people:
            if p.fate == "randomised":
                for e in events:
                    spec = self.instruments[e.instrument][1]
                    p.baseline_answers[e.instrument] = self.answer_model.baseline(e.instrument, p, spec)

    def _score(self, p: Person, strat) -> float | None:
        answers = p.baseline_answers.get(strat.instrument)
        if answers is None:
            return None
        scores = score_answers(self.instruments[strat.instrument][0].definition, answers)
        return next((s.value for s in scores if s.key == strat.score and s.scored), None)

    def _allocate(self, people: list[Person]) -> None:
        """Take slots of the trial's concealed allocation list in stratum order, as randomisation does.

        Without a list one is generated from the simulation seed, sized to the simulated strata. A participant
        whose stratum is exhausted (or unknown) stays enrolled (not randomised), as in the real flow.
        """
        wanted = [p for p in people if p.fate == "randomised"]
        for p in wanted:
            stratum, _ = stratum_of(
                protocol=self.protocol,
                site_code=p.site.code,
                eligibility=p.eligibility,
                score_of=lambda s, p=p: self._score(p, s),
            )
            p.stratum = stratum or ""
        alist = AllocationList.objects.filter(trial=self.trial).first()
        if alist is None:
            counts: dict[str, int] = {}
            for p in wanted:
                counts[p.stratum] = counts.get(p.stratum, 0) + 1
            with transaction.atomic(), audit_context(reason="simulate_trial"):
                if not self.writer.audit:  # as for the simulator's other synthetic rows (writer.py)
                    insert_audit_skipped([AllocationList, AllocationSlot, DoseUnit])
                alist = allocation_list_generate(
                    trial=self.trial, seed=self.rng.getrandbits(31), per_stratum=max(counts.values(), default=0) + 4
                )
        wanted.sort(key=lambda p: p.randomised_at)
        by_stratum: dict[str, list[Person]] = {}
        for p in wanted:
            by_stratum.setdefault(p.stratum, []).append(p)
        for stratum, members in by_stratum.items():
            slots = list(
                AllocationSlot.objects.filter(allocation_list=alist, stratum=stratum, taken=False)
                .order_by("sequence")
                .values_list("pk", "arm__code")[: len(members)]
            )
            units: dict[int, list[str]] = {pk: [] for pk, _ in slots}
            for slot_pk, code in (
                DoseUnit.objects.filter(slot_id__in=list(units))
                .order_by("slot_id", "number")
                .values_list("slot_id", "code")
            ):
                units[slot_pk].append(code)
            for i, p in enumerate(members):
                if i >= len(slots) or not stratum:
                    p.fate, p.randomised_at, p.day0, p.stratum = "enrolled", None, None, ""
                    continue
                p.slot_pk, p.arm = slots[i]
                p.arm_active = p.arm not in self.placebo_codes
                p.units = units[p.slot_pk]  # in their numbers' order

    # -- writing --------------------------------------------------------------------------------------
    def _write_batch(self, people: list[Person], result: SimulationResult) -> None:
        rng, w, fu, seed_for = self.rng, self.writer, self.follow_up, self.seed_for
        User = get_user_model()
        linked = [p for p in people if p.fate in ("enrolled", "randomised")]
        users = User.objects.bulk_create(
            [User(username=f"participant-{p.uuid}", password="!", is_active=True) for p in linked]  # noqa: S106
        )
        for p, u in zip(linked, users, strict=True):
            p.user_pk = u.pk
        for p, pk in zip(people, reserve_ids(Participant, len(people)), strict=True):
            p.pk = pk
        # Withdrawals are decided up front (they cut the schedule short).
        for p in people:
            if p.fate == "randomised":
                seed_for(rng, p, "withdrawal")
                elapsed = (self.now - p.randomised_at).total_seconds() / 86400
                if rng.random() < 0.07 and elapsed > 4:
                    p.withdrawn_at = p.randomised_at + timedelta(days=rng.uniform(3, min(elapsed, 56)))
                    p.withdrawal_scope = "all" if rng.random() < 0.7 else "intervention"
        for p in people:
            p.status = {"screen_failed": "screen_failed", "registered": "registered", "enrolled": "enrolled"}.get(
                p.fate, "withdrawn" if p.withdrawn_at else "randomised"
            )
            w.add("participant", self._participant_row(p))
            result.participants += 1
            result.screen_failed += p.fate == "screen_failed"
            result.randomised += p.fate == "randomised"
            result.withdrawn += p.withdrawn_at is not None
        w.flush()  # participants first: the ORM rows below reference them
        self._consents_allocations_withdrawals(people)
        envelopes_record(self, people)  # self-blinding kits (designs.py)
        plans = [(p, fu.plan(p)) for p in people if p.consented_at is not None]
        self._follow(plans, result, "instances", "responses")
        randomised = [p for p in people if p.fate == "randomised"]
        logged: list = []
        for p in randomised:
            seed_for(rng, p, "doses")
            result.doses += fu.doses(p, logged)
            result.side_effects += fu.side_effects(p)
        opened = fu.dose_rows(logged, reserve_ids(DoseLog, len(logged)))
        if opened:  # the `after_dose` sessions the doses opened, drawn from streams of their own
            per_person = [(p, [o[1:] for o in group]) for p, group in groupby(opened, key=itemgetter(0))]
            self._follow(per_person, result, "dose-instances", "dose-responses")
        result.safety_alerts += len(w.rows["alert"])
        result.staff_guesses += self._staff_guesses(randomised)
        w.flush()

    def _follow(self, plans: list, result: SimulationResult, instances: str, responses: str) -> None:
        """Each participant's planned occurrences ((event, occurrence[, dose]) per participant), then the answers
        of those answered, each part from the participant's own random stream."""
        rng, fu, seed_for = self.rng, self.follow_up, self.seed_for
        pks = iter(reserve_ids(SurveyInstance, sum(len(plan) for _, plan in plans)))
        answered: list = []
        for p, plan in plans:
            seed_for(rng, p, instances)
            for event, occ, *dose in plan:
                fu.instance(next(pks), p, event, occ, answered, *dose)
            result.instances += len(plan)
        last = None
        for rid, (pk, inst_uuid, p, slug, answers, authored, received, late) in zip(
            reserve_ids(Response, len(answered)), answered, strict=True
        ):
            if p is not last:
                seed_for(rng, p, responses)
                last = p
            result.item_answers += fu.response(rid, pk, inst_uuid, p, slug, answers, authored, received, late)
        result.responses += len(answered)

    def _participant_row(self, p: Person) -> tuple:
        return (
            p.pk,
            p.uuid.bytes,
            p.study_id,
            self.trial.pk,
            p.site.pk,
            p.user_pk,
            p.status,
            p.site.timezone,
            jsonb(json.dumps(["push"] if p.user_pk else [])),
            "",
            jsonb(json.dumps(p.eligibility)),
            p.fate != "screen_failed",
            p.stratum,
            p.registered_at,
            p.consented_at - timedelta(minutes=5) if p.consented_at else None,
            p.randomised_at,
            p.day0,
            p.withdrawn_at,
            p.withdrawal_scope,
            False,
            None,
        )

    def _consents_allocations_withdrawals(self, people: list[Person]) -> None:
        rng = self.rng
        if self.consent_doc is not None:
            ConsentSignature.objects.bulk_create(
                [
                    ConsentSignature(
                        uuid=new_uuid(self.seed_for(rng, p, "consent")),
                        participant_id=p.pk,
                        document=self.consent_doc,
                        method=ConsentSignature.ELECTRONIC,
                        sha256=self.consent_doc.sha256,
                        typed_name="",
                        signed_at=p.consented_at,
                        device={"platform": rng.choice(["ios", "android"]), "app_version": "1.2"},
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
                        uuid=new_uuid(self.seed_for(rng, p, "withdrawal-record")),
                        participant_id=p.pk,
                        scope=p.withdrawal_scope,
                        reason=rng.choice(WITHDRAWAL_REASONS),
                        withdrawn_at=p.withdrawn_at,
                        study_day=study_day_of(day0=p.day0, zone=p.zone, at=p.withdrawn_at),
                        by_participant=rng.random() < 0.6,
                    )
                    for p in withdrawn
                ]
            )

    # -- staff records --------------------------------------------------------------------------------
    def _coordinator(self):
        """The (inactive) user standing for the sites' coordinators in simulated staff records."""
        if self._reporter is None:
            User = get_user_model()
            self._reporter, _ = User.objects.get_or_create(
                username="simulated-coordinator", defaults={"is_active": False, "password": "!", "is_staff": False}
            )
        return self._reporter

    def _staff_guesses(self, people: list[Person]) -> int:
        """The coordinator's blinding guess at each time point a participant reached (before any full
        withdrawal): a little better than chance, with a modest confidence. Drawn from its own random stream."""
        rng = self.staff_rng
        n = 0
        for p in people:
            self.seed_for(rng, p, "coordinator-guesses")
            for time_point, day in self.guess_points:
                at = datetime.combine(p.day0 + timedelta(days=day), datetime.min.time().replace(hour=15), tzinfo=p.zone)
                at = at.astimezone(UTC) + timedelta(hours=rng.uniform(0, 48))
                if at > self.now or (
                    p.withdrawn_at is not None and p.withdrawal_scope == "all" and at > p.withdrawn_at
                ):
                    continue
                if rng.random() < 0.1:
                    continue  # not every visit has a guess recorded
                weights = (0.42, 0.24, 0.34) if p.arm_active else (0.26, 0.40, 0.34)
                guess = rng.choices(["active", "placebo", "dont_know"], weights=weights)[0]
                confidence = int(clip(round(rng.gauss(25 if guess == "dont_know" else 50, 15)), 0, 100))
                self.writer.add(
                    "staff_guess",
                    (new_uuid_bytes(rng), p.pk, self._coordinator().pk, time_point, guess, confidence, at),
                )
                n += 1
        return n

    def adverse_event(self, p: Person, onset: date, description: str, reported: datetime) -> None:
        """The coordinator's follow-up of a serious side effect: a staff-entered adverse event report."""
        rng = self.rng
        ae_reported = reported + timedelta(hours=rng.uniform(2, 20))
        AdverseEvent.objects.create(
            uuid=new_uuid(rng),
            participant_id=p.pk,
            onset=onset,
            description=description,
            severity_grade=3,
            serious=True,
            seriousness_criteria=[rng.choice(["hospitalisation", "other_medically_important"])],
            relatedness=rng.choice(["unlikely", "possible", "probable"]),
            action_taken=rng.choice(["none", "interrupted"]),
            outcome=rng.choice(["recovered", "recovering"]),
            reported_at=ae_reported,
            study_day=study_day_of(day0=p.day0, zone=p.zone, at=ae_reported),
            reported_by=self._coordinator(),
        )
