"""simulate_trial: synthetic data with the shape the real flows create."""

from datetime import UTC, datetime

import pytest
from django.core.management import CommandError

from participants.models import Allocation, ConsentSignature, Participant, SafetyAlert
from surveys.models import DoseLog, ItemAnswer, Reminder, Response, Score, SurveyInstance

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def simulated(trial):
    from analytics.simulation import simulate_trial

    result = simulate_trial(trial=trial, participants=60, days=30, seed=7, now=NOW)
    return trial, result


def test_simulation_creates_the_shape_of_a_real_trial(simulated):
    trial, result = simulated
    parts = Participant.objects.filter(trial=trial)
    assert parts.count() == 60 == result.participants
    statuses = set(parts.values_list("status", flat=True))
    assert {"screen_failed", "randomised"} <= statuses | {"completed", "withdrawn"}
    assert result.randomised > 30
    # Randomised participants have an allocation from the concealed list, a day 0 and a stratum.
    randomised = parts.filter(randomised_at__isnull=False)
    assert randomised.count() == result.randomised == Allocation.objects.filter(participant__trial=trial).count()
    assert not randomised.filter(day0__isnull=True).exists()
    assert not randomised.filter(stratum="").exists()
    # Consent before randomisation; screen failures never consent.
    assert ConsentSignature.objects.filter(participant__status="screen_failed").count() == 0
    # Every response belongs to a completed instance, one per instance; items and scores are there.
    assert Response.objects.count() == SurveyInstance.objects.filter(status="completed").count() == result.responses
    assert ItemAnswer.objects.count() == result.item_answers
    phq9_responses = Response.objects.filter(instrument__slug="phq9").count()
    assert Score.objects.filter(response__instrument__slug="phq9", key="total").count() == phq9_responses
    # Realistic misses; answers in the past only; late answers flagged.
    assert SurveyInstance.objects.filter(status="missed").exists()
    assert not Response.objects.filter(authored_at__gt=NOW).exists()
    assert not Response.objects.filter(late=True, authored_at__lte=models_f("instance__closes_at")).exists()
    # Doses on dosing days only (every third day from day 0 to 41).
    days = set(DoseLog.objects.values_list("study_day", flat=True))
    assert days and all(d % 3 == 0 and 0 <= d <= 41 for d in days)
    # Reminders respect quiet hours: the daily 23:30 reminder is skipped, never sent.
    assert (
        Reminder.objects.filter(stage="before_close", instance__schedule_key="daily_mood", status="sent").count() == 0
    )
    assert Reminder.objects.filter(status="sent").exists()


def models_f(name):
    from django.db.models import F

    return F(name)


def test_scores_match_the_item_sums(simulated):
    for response in Response.objects.filter(instrument__slug="phq9")[:20]:
        total = sum(response.answers[f"phq9_{i}"] for i in range(1, 10))
        assert response.scores.get(key="total").value == total


def test_safety_rules_fire_on_simulated_answers(simulated):
    for response in Response.objects.filter(instrument__slug="phq9"):
        fired = SafetyAlert.objects.filter(rule="phq9_item9", source_id=str(response.uuid)).exists()
        assert fired == (response.answers["phq9_9"] > 0)


def test_if_empty_does_nothing_when_the_trial_has_participants(simulated, call):
    trial, _ = simulated
    out = call("simulate_trial", trial=trial.slug, participants=5, days=5, if_empty=True)
    assert "nothing simulated" in out
    assert Participant.objects.filter(trial=trial).count() == 60


def test_command_adds_participants_and_reports(trial, call):
    out = call("simulate_trial", "--trial", trial.slug, "--participants", "8", "--days", "7", "--seed", "1")
    assert "simulated 8 participants" in out
    assert Participant.objects.filter(trial=trial).count() == 8


def test_command_unknown_trial(db, call):
    with pytest.raises(CommandError):
        call("simulate_trial", "--trial", "nope", "--participants", "1", "--days", "1")


def test_demo_command_simulates_once(db, call):
    call("demo", "--participants", "6", "--days", "5")
    count = Participant.objects.count()
    assert count == 6
    call("demo", "--participants", "6", "--days", "5")
    assert Participant.objects.count() == count


def test_simulated_study_ids_come_from_the_site_sequence(simulated, site_ldn, make_staff):
    trial, _ = simulated
    """Simulated participants take study ids exactly as registration does: a coordinator registering next
    gets the following number at that site, in the same format, never a reused one."""
    from participants.services.registration import participant_register

    ldn = sorted(Participant.objects.filter(site=site_ldn).values_list("study_id", flat=True))
    assert ldn == [f"LDN-{n:04d}" for n in range(1, len(ldn) + 1)]
    eligibility = dict.fromkeys(
        ["adult", "no_psychosis_history", "no_lithium_or_tramadol", "not_pregnant", "no_cardiac_condition"], True
    )
    participant, _ = participant_register(
        trial=trial,
        site=site_ldn,
        tz="Europe/London",
        eligibility=eligibility,
        contact=None,
        actor=make_staff("coordinator", site=site_ldn),
    )
    assert participant.study_id == f"LDN-{len(ldn) + 1:04d}"
