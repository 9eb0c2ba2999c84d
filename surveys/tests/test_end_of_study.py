"""End of study and local dates: a finished schedule completes the participant on their own date (by the sweep,
idempotently), re-planning skips them, CONSORT counts them; study days are fixed when a row is recorded, so a
zone change never rewrites them (in the export either); consent validity follows the participant's date."""

import csv
import io
import uuid
import zipfile
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from participants import providers
from participants.models import Participant, ParticipantStatus
from surveys.models import InstanceStatus, SurveyInstance
from surveys.services.schedule import participants_complete_finished

from .factories import make_participant, randomise, sign_consent

NY = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")


def _randomised(trial, site, at):
    p, _ = make_participant(trial=trial, site=site)
    sign_consent(p, at=at - timedelta(hours=1), now=at - timedelta(hours=1))
    return randomise(p, at=at)


def _evening_after(instant: datetime, zone) -> datetime:
    """The first 21:00 local at or after `instant`: in New York that is already the next UTC day."""
    local = instant.astimezone(zone)
    evening = datetime.combine(local.date(), time(21), tzinfo=zone)
    return evening if evening >= instant else evening + timedelta(days=1)


def test_a_finished_schedule_completes_the_participant_on_their_local_date(trial, site_nyc):
    from analytics.selectors import consort_counts

    p = _randomised(trial, site_nyc, datetime(2026, 3, 2, 15, tzinfo=UTC))
    instances = SurveyInstance.objects.filter(participant=p)
    final = instances.order_by("-grace_until").first()
    last = final.grace_until
    # All but the last are answered or missed; the last is still answerable a minute before its grace ends.
    instances.exclude(pk=final.pk).update(status=InstanceStatus.MISSED)
    assert participants_complete_finished(now=last - timedelta(minutes=1)) == 0
    p.refresh_from_db()
    assert p.status == ParticipantStatus.RANDOMISED
    now = _evening_after(last, NY)
    assert now.astimezone(UTC).date() != now.astimezone(NY).date()
    assert participants_complete_finished(now=now) == 1
    p.refresh_from_db()
    assert p.status == ParticipantStatus.COMPLETED
    assert p.completed_on == now.astimezone(NY).date()  # the participant's date, not the UTC one
    assert participants_complete_finished(now=now + timedelta(days=1)) == 0  # idempotent
    p.refresh_from_db()
    assert p.completed_on == now.astimezone(NY).date()
    assert consort_counts(trial=trial)["completed"] == 1
    # A zone change after the end re-plans nothing.
    before = SurveyInstance.objects.filter(participant=p).count()
    p.timezone = "Europe/London"
    p.save(update_fields=["timezone"])
    providers.schedule_provider().on_timezone_changed(
        participant=p, old="America/New_York", new="Europe/London", now=now
    )
    assert SurveyInstance.objects.filter(participant=p).count() == before
    assert not SurveyInstance.objects.filter(participant=p, status=InstanceStatus.CANCELLED).exists()


def test_an_open_or_future_instance_keeps_the_participant_in_follow_up(trial, site_ldn):
    p = _randomised(trial, site_ldn, datetime(2026, 3, 2, 15, tzinfo=UTC))
    last = SurveyInstance.objects.filter(participant=p).order_by("-grace_until").first()
    SurveyInstance.objects.filter(participant=p).exclude(pk=last.pk).update(status=InstanceStatus.COMPLETED)
    assert participants_complete_finished(now=last.opens_at) == 0
    assert Participant.objects.get(pk=p.pk).status == ParticipantStatus.RANDOMISED
    assert participants_complete_finished(now=last.grace_until + timedelta(seconds=1)) == 1


def test_study_day_is_fixed_when_recorded_and_a_zone_change_does_not_rewrite_it(trial, site_ldn, tmp_path):
    from analytics.export import write_bundle
    from surveys.services import dose_log_create, survey_response_submit

    p = _randomised(trial, site_ldn, datetime(2026, 5, 4, 9, tzinfo=UTC))  # day 0 = 4 May (London)
    inst = SurveyInstance.objects.get(participant=p, schedule_key="daily_mood", study_day=3)  # 7 May, 20:00 BST
    # Answered at 00:10 BST on 8 May (within grace): 23:10 UTC on 7 May, 19:10 on 7 May in New York.
    at = datetime(2026, 5, 8, 0, 10, tzinfo=LONDON)
    answers = {"mood": 50, "anxiety": 20, "energy": 40, "focus": 60, "dose_taken": True}
    answered = survey_response_submit(
        participant=p, instance_id=inst.uuid, idempotency_key=uuid.uuid4(), answers=answers, authored=at, now=at
    )
    dose_log_create(participant=p, idempotency_key=uuid.uuid4(), taken_at=at, now=at)
    assert p.study_day(at) == 4
    # The participant moves to New York: their future is re-planned, their past is not rewritten.
    p.timezone = "America/New_York"
    p.save(update_fields=["timezone"])
    providers.schedule_provider().on_timezone_changed(
        participant=p, old="Europe/London", new="America/New_York", now=at
    )
    assert p.study_day(at) == 3  # what recomputing from the current zone would say
    zf = zipfile.ZipFile(write_bundle(trial=trial, out=tmp_path / "b.zip").path)
    responses = list(csv.DictReader(io.StringIO(zf.read("responses.csv").decode())))
    doses = list(csv.DictReader(io.StringIO(zf.read("doses.csv").decode())))
    assert {r["study_day"] for r in responses if r["response_id"] == answered.body["id"]} == {"4"}  # one per item
    # The baseline answers, given before day 0, have no study day.
    assert {r["study_day"] for r in responses if r["study_id"] == p.study_id} == {"4", ""}
    assert [d["study_day"] for d in doses if d["study_id"] == p.study_id] == ["4"]


def test_consent_in_force_is_the_one_of_the_participants_local_date(trial, site_nyc, demo_protocol_source):
    from participants.selectors import consent_status
    from participants.services.consent import consent_sign
    from trialsite.protocol.services import protocol_load

    # Version 2.0 (re-consent required) is in force from 11 March.
    amended = demo_protocol_source.replace(
        '  - version: "1.0"',
        '  - version: "2.0"\n    title: "v2"\n    valid_from: 2026-03-11\n    requires_reconsent: true\n'
        '    body: "New text."\n  - version: "1.0"',
        1,
    )
    protocol_load(source=amended, now=datetime(2026, 3, 1, tzinfo=UTC))
    p, _ = make_participant(trial=trial, site=site_nyc)
    evening = datetime(2026, 3, 10, 21, tzinfo=NY)  # 01:00 UTC on 11 March: still 10 March in New York
    assert evening.astimezone(UTC).date() == date(2026, 3, 11)
    status = consent_status(participant=p, on=p.local_date(evening))
    assert status.current.version == "1.0"
    document = status.current
    signature = consent_sign(
        participant=p,
        version="1.0",
        sha256=document.sha256,
        agree=True,
        typed_name="Test Person",
        now=evening,
    )
    assert signature.document.version == "1.0"


def test_adverse_events_alerts_and_withdrawals_keep_their_recorded_study_day(trial, site_ldn, make_staff, tmp_path):
    from analytics.export import write_bundle
    from participants.services.adverse_events import adverse_event_create
    from participants.services.safety import safety_alert_raise
    from participants.services.withdrawal import participant_withdraw

    p = _randomised(trial, site_ldn, datetime(2026, 5, 4, 9, tzinfo=UTC))  # day 0 = 4 May (London)
    at = datetime(2026, 5, 8, 0, 10, tzinfo=LONDON)  # day 4 in London, still day 3 in New York
    physician = make_staff("safety_physician", site=site_ldn)
    event = adverse_event_create(
        participant=p,
        onset=date(2026, 5, 7),
        description="headache",
        severity_grade=1,
        serious=False,
        relatedness="possible",
        action_taken="none",
        outcome="recovered",
        user=physician,
        now=at,
    )
    alert = safety_alert_raise(
        participant=p,
        rule="test_rule",
        title="Test",
        severity="high",
        source_kind="adverse_event",
        source_id=str(event.uuid),
        now=at,
    )
    withdrawal = participant_withdraw(participant=p, scope="intervention", by_participant=True, now=at)
    assert (event.study_day, alert.study_day, withdrawal.study_day) == (4, 4, 4)
    p.refresh_from_db()
    p.timezone = "America/New_York"
    p.save(update_fields=["timezone"])
    providers.schedule_provider().on_timezone_changed(
        participant=p, old="Europe/London", new="America/New_York", now=at
    )
    assert p.study_day(at) == 3  # what recomputing from the current zone would say
    zf = zipfile.ZipFile(write_bundle(trial=trial, out=tmp_path / "b.zip").path)
    for table in ("adverse_events", "safety_alerts", "withdrawals"):
        rows = [r for r in csv.DictReader(io.StringIO(zf.read(f"{table}.csv").decode())) if r["study_id"] == p.study_id]
        assert [r["study_day"] for r in rows] == ["4"], table
