"""simulate_trial opens `after_dose` sessions for the doses it logs, by production's rule (plan_after_dose, the
rule dose_instances_open applies when a phone logs a dose): one per dose and entry, opening `minutes` after the
dose was taken, for `window_minutes`, on the dose's study day, created when the dose was logged."""

from datetime import UTC, datetime, timedelta

from participants.models import Participant
from surveys.models import DoseLog, Response, SurveyInstance
from trialsite.protocol.services import protocol_load
from trialsite.services import site_create

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)
AFTER_DOSE = """  - key: post_dose
    instrument: gad7
    after_dose: {minutes: 90, window_minutes: 120}

reminders:"""


def test_simulated_doses_open_after_dose_sessions_by_the_production_rule(db, demo_protocol_source):
    from analytics.simulation import simulate_trial

    source = demo_protocol_source.replace("\nreminders:", "\n" + AFTER_DOSE, 1)
    trial = protocol_load(source=source).trial
    site_create(code="LDN", name="London", timezone="Europe/London", trials=[trial])
    site_create(code="NYC", name="New York", timezone="America/New_York", trials=[trial])
    result = simulate_trial(trial=trial, participants=40, days=20, seed=4, now=NOW)

    doses = {d.pk: d for d in DoseLog.objects.filter(participant__trial=trial).select_related("participant")}
    assert len(doses) == result.doses > 50
    sessions = SurveyInstance.objects.filter(participant__trial=trial, dose__isnull=False)
    # Every dose logged while the participant was in the study opened exactly one session; none other has a dose.
    expected = {
        pk
        for pk, d in doses.items()
        if d.received_at < d.taken_at + timedelta(minutes=210)
        and not (d.participant.withdrawal_scope == "all" and d.participant.withdrawn_at <= d.received_at)
    }
    assert expected and set(sessions.values_list("dose_id", flat=True)) == expected
    assert sessions.count() == len(expected)
    for s in sessions:
        dose = doses[s.dose_id]
        assert s.schedule_key == "post_dose" and s.instrument.slug == "gad7"
        assert s.opens_at == dose.taken_at + timedelta(minutes=90)
        assert s.closes_at == s.grace_until == s.opens_at + timedelta(minutes=120)
        assert s.study_day == dose.study_day and s.created_at == dose.received_at
        assert s.local_date == s.opens_at.astimezone(dose.participant.zone).date()
    # Participants answer them as they answer other surveys: most, inside the window, with scores.
    answered = Response.objects.filter(instance__in=sessions).select_related("instance")
    assert 0.5 * len(expected) < answered.count() < len(expected)
    assert all(r.instance.opens_at <= r.authored_at <= r.instance.closes_at for r in answered)
    assert all(r.scores.filter(key="total").exists() for r in answered[:10])
    assert sessions.filter(status="missed").exists()
    # The plain schedule is still there, and the counts include the sessions.
    assert SurveyInstance.objects.filter(participant__trial=trial, dose__isnull=True).count() == (
        result.instances - len(expected)
    )
    assert Participant.objects.filter(trial=trial).count() == 40
