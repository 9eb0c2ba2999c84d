"""Coordinators' blinding guesses: the service's rules, the database constraints and the admin flow."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from participants.models import Participant, StaffBlindingGuess
from participants.services import WorkflowError, blinding_time_points, staff_blinding_guess_record
from trialsite.protocol.services import protocol_current
from trialsite.tests.admin_data import arm_leaks

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)


def _participant(trial, site, study_id, *, randomised=True, day0=date(2026, 3, 1)):
    return Participant.objects.create(
        study_id=study_id,
        trial=trial,
        site=site,
        timezone=site.timezone,
        eligible=True,
        status="randomised" if randomised else "enrolled",
        randomised_at=datetime.combine(day0, datetime.min.time(), tzinfo=UTC) + timedelta(hours=10)
        if randomised
        else None,
        day0=day0 if randomised else None,
    )


@pytest.fixture
def people(trial, site_ldn, site_nyc):
    return {
        "ldn": _participant(trial, site_ldn, "LDN-90001"),
        "nyc": _participant(trial, site_nyc, "NYC-90001"),
        "enrolled": _participant(trial, site_ldn, "LDN-90002", randomised=False),
        # day 0 on 10 April: at NOW (20 April) study day 10, past day 7 but not day 42.
        "recent": _participant(trial, site_ldn, "LDN-90003", day0=date(2026, 4, 10)),
    }


@pytest.fixture
def at_now():
    """The clock at NOW (ticking), for the admin, which records with the clock: LDN-90001 (day 0 on 1 March) has
    reached day 42 then, whatever the date the suite runs on."""
    with time_machine.travel(NOW, tick=True):
        yield NOW


@pytest.fixture
def coordinator(make_staff, site_ldn):
    return make_staff("coordinator", site=site_ldn)


def _record(participant, user, time_point="day_42", guess="active", confidence=60):
    return staff_blinding_guess_record(
        participant=participant, actor=user, time_point=time_point, guess=guess, confidence=confidence, now=NOW
    )


def test_time_points_are_the_days_of_the_protocols_blinding_guess_schedule(trial):
    # protocols/microdose-mood.yaml: blinding_guess on days 7, 42 and 56 after randomisation.
    assert blinding_time_points(protocol_current(trial)) == ["day_7", "day_42", "day_56"]


def test_site_coordinator_records_a_guess_and_a_retry_is_idempotent(people, coordinator):
    guess = _record(people["ldn"], coordinator)
    assert (guess.participant, guess.rater, guess.time_point, guess.guess, guess.confidence) == (
        people["ldn"],
        coordinator,
        "day_42",
        "active",
        60,
    )
    assert guess.study_day == 42 and guess.recorded_at == NOW
    again = _record(people["ldn"], coordinator)
    assert again.pk == guess.pk and StaffBlindingGuess.objects.count() == 1


def test_a_different_guess_for_the_same_time_point_is_a_conflict(people, coordinator):
    _record(people["ldn"], coordinator, guess="placebo", confidence=30)
    with pytest.raises(WorkflowError) as exc:
        _record(people["ldn"], coordinator, guess="active", confidence=30)
    assert exc.value.status == 409
    with pytest.raises(WorkflowError):
        _record(people["ldn"], coordinator, guess="placebo", confidence=31)
    # Another time point is a new guess; another coordinator of the site is another rater.
    _record(people["ldn"], coordinator, time_point="day_7", guess="dont_know", confidence=10)
    assert StaffBlindingGuess.objects.filter(participant=people["ldn"]).count() == 2


def test_only_coordinators_of_the_site_or_trial_managers_record(people, coordinator, make_staff, site_nyc):
    with pytest.raises(PermissionDenied):
        _record(people["nyc"], coordinator)  # another site
    for role in ("safety_physician", "statistician", "unblinded_statistician", "monitor", "data_manager"):
        with pytest.raises(PermissionDenied):
            _record(people["ldn"], make_staff(role))
    superuser = make_staff()
    superuser.is_superuser = True
    superuser.save()
    with pytest.raises(PermissionDenied):
        _record(people["ldn"], superuser)  # no role: superusers are not raters
    assert _record(people["nyc"], make_staff("coordinator", site=site_nyc)).participant == people["nyc"]
    assert _record(people["nyc"], make_staff("trial_manager")).participant == people["nyc"]
    assert _record(people["nyc"], make_staff("coordinator")).participant == people["nyc"]  # all-sites grant
    assert not StaffBlindingGuess.objects.filter(participant=people["ldn"]).exists()


def test_only_randomised_participants_at_a_time_point_they_reached(people, coordinator):
    with pytest.raises(WorkflowError, match="randomised"):
        _record(people["enrolled"], coordinator)
    with pytest.raises(WorkflowError, match="not reached day_42"):
        _record(people["recent"], coordinator)
    assert _record(people["recent"], coordinator, time_point="day_7").time_point == "day_7"
    for bad in ("day_8", "7", "baseline", ""):
        with pytest.raises(ValidationError) as exc:
            _record(people["ldn"], coordinator, time_point=bad)
        assert "time_point" in exc.value.message_dict
    for field, value in (("guess", "arm_a"), ("confidence", 101), ("confidence", -1), ("confidence", "50")):
        with pytest.raises(ValidationError) as exc:
            _record(people["ldn"], coordinator, **{field: value})
        assert field in exc.value.message_dict
    assert StaffBlindingGuess.objects.count() == 1


def _insert(participant, rater, **overrides):
    values = {"time_point": "day_7", "guess": "active", "confidence": 50, **overrides}
    with transaction.atomic():
        return StaffBlindingGuess.objects.create(participant=participant, rater=rater, **values)


@pytest.mark.parametrize(
    ("overrides", "constraint"),
    [
        ({"guess": "arm_a"}, "staffguess_guess_valid"),
        ({"confidence": 101}, "staffguess_confidence_0_100"),
        ({"time_point": "week_1"}, "staffguess_time_point_format"),
    ],
)
def test_check_constraints_refuse_bad_rows_and_accept_good_ones(people, coordinator, overrides, constraint):
    with pytest.raises(IntegrityError, match=constraint):
        _insert(people["ldn"], coordinator, **overrides)
    edge = {"guess": "dont_know", "confidence": 100, "time_point": "day_56"}
    good = {k: edge[k] for k in overrides}
    assert _insert(people["ldn"], coordinator, **good).pk


def test_one_guess_per_participant_rater_and_time_point(people, coordinator, make_staff, site_ldn):
    _insert(people["ldn"], coordinator, confidence=0)
    with pytest.raises(IntegrityError, match="staffguess_once_per_rater_time_point"):
        _insert(people["ldn"], coordinator, guess="placebo")
    _insert(people["ldn"], make_staff("coordinator", site=site_ldn))  # another rater
    _insert(people["ldn"], coordinator, time_point="day_42")  # another time point
    assert StaffBlindingGuess.objects.count() == 3


def test_guesses_are_never_deleted(people, coordinator):
    from django.db.models import ProtectedError

    _record(people["ldn"], coordinator)
    with pytest.raises(ProtectedError):
        people["ldn"].delete()


# --- admin ---------------------------------------------------------------------------------------------------


def test_coordinator_records_a_guess_in_the_admin_for_own_site_only(at_now, client, people, coordinator):
    client.force_login(coordinator)
    add = reverse("admin:participants_staffblindingguess_add")
    page = client.get(add)
    assert page.status_code == 200
    html = page.content.decode()
    # The dropdown offers randomised participants of the coordinator's site only.
    assert "LDN-90001" in html and "LDN-90003" in html
    assert "NYC-90001" not in html and "LDN-90002" not in html
    assert 'value="day_7"' in html and 'value="day_56"' in html
    data = {"participant": people["ldn"].pk, "time_point": "day_42", "guess": "placebo", "confidence": 70}
    response = client.post(add, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    guess = StaffBlindingGuess.objects.get()
    assert (guess.rater, guess.guess, guess.confidence, guess.time_point) == (coordinator, "placebo", 70, "day_42")
    assert response["Location"] == reverse("admin:participants_staffblindingguess_changelist")
    # The list shows it; the recorded guess is read-only.
    listing = client.get(reverse("admin:participants_staffblindingguess_changelist"))
    assert listing.status_code == 200 and "LDN-90001" in listing.content.decode()
    # A "placebo" guess is shown as "inactive": no arm name next to a participant on the admin pages.
    change = client.get(reverse("admin:participants_staffblindingguess_change", args=[guess.pk]))
    for html in (listing.content.decode(), change.content.decode()):
        assert "inactive" in html
        assert arm_leaks(html, benign=[people["ldn"].trial.title]) == []
    # A different guess for the same time point: a form error, nothing changed.
    again = client.post(add, {**data, "guess": "active"})
    assert again.status_code == 200 and "already recorded a different guess" in again.content.decode()
    # Another site's participant is not a valid choice.
    other = client.post(add, {**data, "participant": people["nyc"].pk})
    assert other.status_code == 200 and "Select a valid choice" in other.content.decode()
    # A time point not reached yet: the service's refusal as a form error.
    today = timezone.localdate()
    fresh = _participant(people["ldn"].trial, people["ldn"].site, "LDN-90004", day0=today - timedelta(days=10))
    early = client.post(add, {**data, "participant": fresh.pk, "time_point": "day_56"})
    assert early.status_code == 200 and "not reached day_56" in early.content.decode()
    assert StaffBlindingGuess.objects.count() == 1


def test_roles_without_write_access_cannot_add_guesses_in_the_admin(client, people, make_staff, coordinator):
    _record(people["ldn"], coordinator)
    add = reverse("admin:participants_staffblindingguess_add")
    for role in ("statistician", "monitor", "safety_physician"):
        client.force_login(make_staff(role))
        assert client.get(add).status_code == 403
    client.force_login(make_staff("coordinator", site=people["nyc"].site))
    listing = client.get(reverse("admin:participants_staffblindingguess_changelist")).content.decode()
    assert "LDN-90001" not in listing  # another site's guesses are out of reach
