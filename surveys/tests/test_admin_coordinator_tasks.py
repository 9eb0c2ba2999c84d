"""Coordinator tasks (raised by missed surveys) in the admin: site-scoped, closed with a note, once."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from surveys.models import CoordinatorTask, CoordinatorTaskKind, CoordinatorTaskStatus

from .factories import make_instance, make_participant

pytestmark = pytest.mark.django_db


def task_for(trial, site):
    participant, _ = make_participant(trial=trial, site=site)
    instance = make_instance(participant, slug="daily-mood", opens_at=timezone.now() - timedelta(days=1))
    return CoordinatorTask.objects.create(
        participant=participant,
        kind=CoordinatorTaskKind.MISSED_IN_A_ROW,
        trigger_instance=instance,
        title="3 daily surveys missed in a row",
    )


def test_coordinator_sees_own_site_tasks_and_closes_them_with_a_note(client, trial, site_ldn, site_nyc, make_staff):
    mine, theirs = task_for(trial, site_ldn), task_for(trial, site_nyc)
    coordinator = make_staff("coordinator", site=site_ldn)
    client.force_login(coordinator)
    listing = client.get(reverse("admin:surveys_coordinatortask_changelist"))
    assert listing.status_code == 200
    assert mine.participant.study_id in listing.content.decode()
    assert theirs.participant.study_id not in listing.content.decode()
    assert client.get(reverse("admin:surveys_coordinatortask_change", args=[theirs.pk])).status_code in (302, 404)

    url = reverse("admin:surveys_coordinatortask_change", args=[mine.pk])
    blank = client.post(url, {"resolution_note": "  "})
    assert blank.status_code == 200 and "reason" in blank.content.decode().lower()
    mine.refresh_from_db()
    assert mine.status == CoordinatorTaskStatus.OPEN

    done = client.post(url, {"resolution_note": "Called the participant; phone was broken, reminders resumed."})
    assert done.status_code == 302
    mine.refresh_from_db()
    assert mine.status == CoordinatorTaskStatus.DONE
    assert mine.resolved_by == coordinator and mine.resolved_at is not None
    # A closed task is read-only.
    again = client.post(url, {"resolution_note": "overwrite"})
    assert again.status_code == 403
    mine.refresh_from_db()
    assert mine.resolution_note.startswith("Called the participant")


def test_only_coordinators_and_trial_managers_close_tasks(client, trial, site_ldn, make_staff):
    task = task_for(trial, site_ldn)
    url = reverse("admin:surveys_coordinatortask_change", args=[task.pk])
    for role in ("statistician", "monitor", "data_manager"):
        client.force_login(make_staff(role))
        client.post(url, {"resolution_note": "not mine to close"})
        task.refresh_from_db()
        assert task.status == CoordinatorTaskStatus.OPEN, role
    client.force_login(make_staff("trial_manager"))
    assert client.post(url, {"resolution_note": "PI followed up with the site."}).status_code == 302
    task.refresh_from_db()
    assert task.status == CoordinatorTaskStatus.DONE
