"""Every admin page, for every role, with data from two sites: it renders (200), shows only the user's
sites, never names an arm to a blinded user, and changelists cost a fixed number of queries."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from trialsite.tests.admin_data import ROLES_AT_LDN, TRIAL_WIDE, add_participant, allocate, arm_leaks

ROLES = (*ROLES_AT_LDN, *TRIAL_WIDE)


@pytest.fixture
def world(trial, site_ldn, site_nyc, make_staff):
    from participants.models import ConsentDocument
    from surveys.data_queries import data_query_raise
    from surveys.models import Response

    coordinator = make_staff("coordinator", site=site_ldn, username="coord-ldn")
    p_ldn = add_participant(trial=trial, site=site_ldn, coordinator=coordinator)
    p_nyc = add_participant(trial=trial, site=site_nyc, coordinator=coordinator)
    allocate(p_ldn, trial=trial)
    allocate(p_nyc, trial=trial)
    users = {"coordinator": coordinator}
    for role in ROLES:
        if role not in users:
            users[role] = make_staff(role, site=site_ldn if role in ROLES_AT_LDN else None, username=f"u-{role}")
    from django.contrib.auth import get_user_model

    users["superuser"] = get_user_model().objects.create_superuser("root", "root@example.org", "x-long-password-1")
    data_query_raise(
        response=Response.objects.filter(participant=p_ldn).first(),
        user=users["data_manager"],
        subject="mood looks odd",
        message="please confirm with the participant",
    )
    benign = [trial.title] + list(ConsentDocument.objects.values_list("body", flat=True))
    return {"trial": trial, "ldn": p_ldn, "nyc": p_nyc, "users": users, "benign": benign}


def _request(user):
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def _pages(model_admin, request):
    opts = model_admin.model._meta
    base = f"admin:{opts.app_label}_{opts.model_name}"
    yield "changelist", reverse(f"{base}_changelist"), model_admin.has_view_permission(request)
    if model_admin.has_add_permission(request):
        yield "add", reverse(f"{base}_add"), True
    if opts.label == "pghistory.Events" or not model_admin.has_view_permission(request):
        return
    obj = model_admin.get_queryset(request).order_by("pk").first()
    if obj is not None:
        yield "change", reverse(f"{base}_change", args=[obj.pk]), True
        yield "history", reverse(f"{base}_history", args=[obj.pk]), True


@pytest.mark.parametrize("role", [*ROLES, "superuser"])
def test_every_admin_page_renders_scoped_and_blinded(client, world, role):
    user = world["users"][role]
    client.force_login(user)
    request = _request(user)
    blinded = role != "unblinded_statistician"
    site_scoped = role in ROLES_AT_LDN
    rendered = 0
    assert client.get(reverse("admin:index")).status_code == 200
    for model, model_admin in admin.site._registry.items():
        for kind, url, allowed in _pages(model_admin, request):
            response = client.get(url)
            where = f"{role} {model._meta.label} {kind} {url}"
            if not allowed:
                assert response.status_code == 403, where
                continue
            assert response.status_code == 200, where
            rendered += 1
            html = response.content.decode()
            if blinded:
                assert arm_leaks(html, benign=world["benign"]) == [], where
            if site_scoped:
                assert world["nyc"].study_id not in html, where
    assert rendered >= 10


@pytest.mark.parametrize("role", ROLES_AT_LDN)
def test_site_staff_cannot_open_another_sites_participant(client, world, role):
    client.force_login(world["users"][role])
    own = client.get(reverse("admin:participants_participant_change", args=[world["ldn"].pk]))
    other = client.get(reverse("admin:participants_participant_change", args=[world["nyc"].pk]))
    assert own.status_code == 200 and world["ldn"].study_id in own.content.decode()
    assert other.status_code == 302  # "does not exist" for rows outside the user's sites
    changelist = client.get(reverse("admin:participants_participant_changelist")).content.decode()
    assert world["ldn"].study_id in changelist and world["nyc"].study_id not in changelist
    # The site filter offers only the user's own sites.
    assert "?site=" in changelist and f"?site={world['nyc'].site_id}" not in changelist


def test_trial_wide_roles_see_both_sites(client, world):
    client.force_login(world["users"]["monitor"])
    html = client.get(reverse("admin:participants_participant_changelist")).content.decode()
    assert world["ldn"].study_id in html and world["nyc"].study_id in html


@pytest.mark.parametrize("role", ["coordinator", "trial_manager", "monitor", "statistician", "superuser"])
def test_arm_tables_are_closed_to_blinded_users(client, world, role):
    client.force_login(world["users"][role])
    for name in ["arm", "allocationslot", "allocation", "doseunit"]:
        assert client.get(reverse(f"admin:participants_{name}_changelist")).status_code == 403
    events = client.get(reverse("admin:pghistory_events_changelist") + "?table=participants.arm")
    if role == "statistician":  # not an audit-trail reader at all
        assert events.status_code == 403
        return
    # The audit trail opens (it lists their participants' changes) and names no arm even when asked for.
    assert events.status_code == 200
    own = client.get(reverse("admin:pghistory_events_changelist"), {"participant": world["ldn"].study_id})
    assert own.status_code == 200 and "Europe/London" in own.content.decode()  # the participant's insert event
    assert arm_leaks(events.content.decode(), benign=world["benign"]) == []


def test_unblinded_statistician_sees_the_arms(client, world):
    """Positive control for the leak checks above: the same pages do show arm names to the unblinded role."""
    client.force_login(world["users"]["unblinded_statistician"])
    html = client.get(reverse("admin:participants_arm_changelist")).content.decode()
    assert "placebo" in html and "psilocybin micro-dose" in html
    audit = client.get(reverse("admin:pghistory_events_changelist") + "?table=participants.arm").content.decode()
    assert "psilocybin micro-dose" in audit


CHANGELISTS = [
    "admin:participants_participant_changelist",
    "admin:participants_safetyalert_changelist",
    "admin:participants_consentsignature_changelist",
    "admin:surveys_response_changelist",
    "admin:surveys_surveyinstance_changelist",
    "admin:surveys_reminder_changelist",
]


@pytest.mark.parametrize("url_name", CHANGELISTS)
def test_changelist_query_count_does_not_grow(client, trial, site_ldn, make_staff, django_assert_num_queries, url_name):
    coordinator = make_staff("coordinator", site=site_ldn)
    client.force_login(coordinator)
    add_participant(trial=trial, site=site_ldn, coordinator=coordinator, n_instances=2)
    url = reverse(url_name)
    client.get(url)  # warm caches (content types, sessions)
    with CaptureQueriesContext(connection) as one:
        assert client.get(url).status_code == 200
    for _ in range(49):
        add_participant(trial=trial, site=site_ldn, coordinator=coordinator, n_instances=2)
    with django_assert_num_queries(len(one.captured_queries)):
        response = client.get(url)
    assert response.status_code == 200
