"""The spine's registries, filled by the apps in AppConfig.ready(): each is complete once Django is set up, and
each one raises (fails closed) when it is needed and empty."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from trialsite import admin_audit, beat, principals
from trialsite.celery import app

APP_SWEEPS = {
    "reminders-sweep": "surveys.reminders.sweep",
    "safety-escalation-sweep": "participants.tasks.safety_alerts_escalate_due",
    "end-of-study-sweep": "surveys.participants_complete_finished",
    "export-jobs-sweep": "analytics.tasks.export_jobs_sweep",
    "completion-snapshots-refresh": "analytics.tasks.completion_snapshots_refresh",
}


def test_beat_schedules_the_apps_sweeps_and_every_scheduled_task_exists():
    """What beat does at start (load the modules, then build its schedule) yields the spine's and the apps'
    sweeps, each naming a task a worker knows."""
    from celery.apps.beat import Beat
    from celery.beat import Scheduler

    Beat(app=app, quiet=True).init_loader()
    schedule = Scheduler(app=app, lazy=False).schedule
    assert {name: schedule[name].task for name in APP_SWEEPS} == APP_SWEEPS
    assert {"heartbeat", "outbox-sweep"} <= set(schedule)
    unknown = [entry.task for entry in schedule.values() if entry.task not in app.tasks]
    assert unknown == []


def test_the_beat_registry_raises_when_no_app_registered(monkeypatch):
    assert set(APP_SWEEPS) <= set(beat.app_schedule())
    monkeypatch.setattr(beat, "_periodic", {})
    with pytest.raises(ImproperlyConfigured, match="No app registered a periodic task"):
        beat.app_schedule()


@pytest.mark.django_db
def test_staff_and_participants_are_told_apart_through_the_registry(make_staff, monkeypatch):

    staff = make_staff("coordinator")
    assert principals.is_participant(staff) is False
    assert principals.participant_for_user(staff) is None
    monkeypatch.setattr(principals, "_lookup", {})
    with pytest.raises(ImproperlyConfigured, match="No participant lookup"):
        principals.is_participant(staff)


@pytest.mark.django_db
def test_a_participants_user_is_a_participant(trial, site_ldn):
    from surveys.tests.factories import make_participant

    participant, _token = make_participant(trial=trial, site=site_ldn)
    assert principals.is_participant(participant.user) is True
    assert principals.participant_for_user(participant.user) == participant


def test_the_audit_subject_raises_when_missing(monkeypatch):
    assert admin_audit.audit_subject()["model"]._meta.label == "participants.Participant"
    monkeypatch.setattr(admin_audit, "_subject", {})
    with pytest.raises(ImproperlyConfigured, match="No audit subject"):
        admin_audit.audit_subject()


def test_the_schedule_provider_raises_when_missing(monkeypatch):
    from participants import providers

    assert type(providers.schedule_provider()).__name__ == "SurveysScheduleProvider"
    monkeypatch.setattr(providers, "_registered", {})
    with pytest.raises(ImproperlyConfigured, match="No schedule provider"):
        providers.schedule_provider()


@pytest.mark.django_db
def test_the_participant_dashboard_carries_the_survey_columns(make_staff):
    from django.contrib import admin as django_admin
    from django.test import RequestFactory

    from participants.models import Participant

    request = RequestFactory().get("/admin/participants/participant/")
    request.user = make_staff("coordinator")
    model_admin = django_admin.site._registry[Participant]
    assert type(model_admin).__name__ == "ParticipantAdmin"  # nobody replaced it
    columns = [c if isinstance(c, str) else c.__name__ for c in model_admin.get_list_display(request)]
    assert columns == [
        "study_id",
        "site",
        "status",
        "study_day_now",
        "adherence_7d",
        "adherence_all",
        "last_answer_col",
        "next_due_col",
        "open_alerts_col",
        "missed_row_col",
    ]
