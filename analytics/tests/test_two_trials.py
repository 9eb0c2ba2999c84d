"""Two trials in one deployment: the staff of trial A see nothing of trial B, through the admin, the staff API,
exports, the analytics summary and notifications. Trial B shares site LDN with trial A, so a site grant alone
would not keep them apart: every grant names its trial (trialsite.roles).

Each check is paired with a positive signal (the same probe finds trial A's data), so it cannot pass on an
empty page.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml
from django.contrib.admin.sites import site as admin_site
from django.core import mail
from django.test import RequestFactory
from django.urls import reverse

from analytics.simulation import simulate_trial
from participants.models import Participant, SafetyAlert
from participants.services.escalation import safety_alert_escalate
from participants.services.notices import safety_alert_notify_send
from participants.services.safety import safety_alert_raise
from trialsite import policy
from trialsite.admin_scoping import ScopedAdmin
from trialsite.models import OutboxMessage, Site
from trialsite.protocol.services import protocol_load
from trialsite.services import role_grant, site_create

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)
A_ROLES = {  # role → site code of the grant (None: trial-wide)
    "coordinator": "LDN",
    "statistician": None,
    "trial_manager": None,
    "safety_physician": "LDN",
}


@pytest.fixture
def two_trials(trial, site_ldn, demo_protocol_source, django_user_model):
    data = yaml.safe_load(demo_protocol_source)
    data["trial"].update(slug="second-trial", title="A second trial")
    b = protocol_load(source=yaml.safe_dump(data, sort_keys=False)).trial
    site_create(code="LDN", name="London", timezone="Europe/London", trials=[b])  # shared with trial A
    site_create(code="BER", name="Berlin", timezone="Europe/Berlin", trials=[b])
    simulate_trial(trial=trial, participants=8, days=10, seed=1, now=NOW)
    simulate_trial(trial=b, participants=8, days=10, seed=2, now=NOW)

    def staff(name, role, t, site_code):
        user = django_user_model.objects.create_user(name, f"{name}@example.org", "x" * 16, is_staff=True)
        role_grant(user=user, role=role, trial=t, site=Site.objects.get(code=site_code) if site_code else None)
        return user

    a_staff = {role: staff(f"a-{role}", role, trial, site) for role, site in A_ROLES.items()}
    b_staff = {role: staff(f"b-{role}", role, b, site) for role, site in A_ROLES.items()}
    return trial, b, a_staff, b_staff


def _trial_path(model_admin) -> str | None:
    if model_admin.trial_field:
        return model_admin.trial_field
    field = model_admin.site_field
    if field == "pk":
        return "trials"
    if field:
        return field[: -len("site")] + "trial"
    return None


@pytest.mark.parametrize("role", list(A_ROLES))
def test_admin_querysets_hold_no_row_of_the_other_trial(two_trials, role):
    a, b, a_staff, _ = two_trials
    request = RequestFactory().get("/admin/")
    request.user = a_staff[role]
    seen_a = 0
    checked = 0
    for model, model_admin in admin_site._registry.items():
        if not isinstance(model_admin, ScopedAdmin):
            continue
        path = _trial_path(model_admin)
        if path is None or path == "trials":  # sites: LDN belongs to both trials, and seeing it is right
            continue
        qs = model_admin.get_queryset(request)
        assert not qs.filter(**{path: b.pk}).exists(), f"{role} sees {model._meta.label} rows of trial B"
        seen_a += qs.filter(**{path: a.pk}).exists()
        checked += 1
    assert checked >= 15
    assert seen_a >= 1  # the same querysets do show trial A


@pytest.mark.parametrize("role", list(A_ROLES))
def test_admin_participant_list_and_dashboard_show_only_their_trial(client, two_trials, role):
    a, b, a_staff, _ = two_trials
    client.force_login(a_staff[role])
    page = client.get(reverse("admin:participants_participant_changelist") + "?all=").content.decode()
    b_ids = list(Participant.objects.filter(trial=b).values_list("study_id", flat=True))
    a_ids = list(Participant.objects.filter(trial=a, site__code="LDN").values_list("study_id", flat=True))
    assert any(s in page for s in a_ids)
    assert not [s for s in b_ids if s in page]
    dashboard = client.get(reverse("admin:trial_dashboard") + f"?trial={b.slug}")
    assert dashboard.status_code == 200
    assert f'value="{b.slug}"' not in dashboard.content.decode() and b.title not in dashboard.content.decode()


@pytest.mark.parametrize("role", list(A_ROLES))
def test_staff_api_lists_and_summaries_stay_in_their_trial(api_client, two_trials, role):
    a, b, a_staff, _ = two_trials
    api_client.force_authenticate(a_staff[role])
    listed = api_client.get("/api/v1/staff/participants?page_size=500").json()["results"]
    assert listed and {row["trial"] for row in listed} == {a.slug}
    assert api_client.get(f"/api/v1/staff/participants?trial={b.slug}").json()["results"] == []
    b_participant = Participant.objects.filter(trial=b, site__code="LDN").first()
    r = api_client.post(f"/api/v1/staff/participants/{b_participant.uuid}/withdraw", {"scope": "all", "reason": "x"})
    assert r.status_code == 404
    assert api_client.get(f"/api/v1/staff/analytics/{a.slug}/summary").status_code == 200
    denied = api_client.get(f"/api/v1/staff/analytics/{b.slug}/summary")
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "permission_denied"


def test_a_statistician_exports_only_their_trial(api_client, two_trials):
    a, b, a_staff, _ = two_trials
    api_client.force_authenticate(a_staff["statistician"])
    mine = api_client.post("/api/v1/staff/exports", {"trial": a.slug, "formats": ["csv"]}, format="json")
    assert mine.status_code == 202
    other = api_client.post("/api/v1/staff/exports", {"trial": b.slug, "formats": ["csv"]}, format="json")
    assert other.status_code == 403 and other.json()["error"]["code"] == "permission_denied"


def test_notifications_go_to_the_alerts_trial_only(two_trials, settings):
    a, b, a_staff, b_staff = two_trials
    participant = Participant.objects.filter(trial=b, site__code="LDN").first()  # LDN: a site of both trials
    alert = safety_alert_raise(
        participant=participant,
        rule="test_rule",
        title="Test alert",
        severity="urgent",
        source_kind="response",
        source_id="two-trials",
        now=NOW,
    )
    mail.outbox.clear()
    safety_alert_notify_send({"alert_id": alert.pk})
    notified = set(mail.outbox[0].to)
    assert b_staff["safety_physician"].email in notified and b_staff["coordinator"].email in notified
    assert not notified & {u.email for u in a_staff.values()}

    safety_alert_escalate(alert_id=alert.pk, actor=policy.SYSTEM, now=alert.due_at + timedelta(minutes=1))
    escalation = OutboxMessage.objects.get(dedupe_key=f"safety_alert_escalated:{alert.pk}")
    assert escalation.payload["to"] == [b_staff["trial_manager"].email]
    assert SafetyAlert.objects.get(pk=alert.pk).status == "escalated"


# --- arms: asked of the policy with the trial ---------------------------------------------------------------
ARM_TABLES = {  # admin changelist → lookup path to the trial
    "participants_arm": "trial",
    "participants_allocationlist": "trial",
    "participants_allocationslot": "allocation_list__trial",
    "participants_allocation": "participant__trial",
    "participants_doseunit": "slot__allocation_list__trial",
}
B_ARMS = ("zeta-active-b", "zeta-inert-b")  # trial B's arm names, so a page can be searched for them


@pytest.fixture
def unblinded_in_a(two_trials, django_user_model):
    """(mixed, only_a): the unblinded statistician of trial A who also coordinates trial B at LDN, and one who
    holds only the unblinded grant in A (the positive control)."""
    from participants.models import Arm

    a, b, _, _ = two_trials
    for arm, name in zip(Arm.objects.filter(trial=b).order_by("code"), B_ARMS, strict=True):
        arm.name = name
        arm.save(update_fields=["name"])
    ldn = Site.objects.get(code="LDN")
    mixed = django_user_model.objects.create_user("ab-mixed", "ab@example.org", "x" * 16, is_staff=True)
    role_grant(user=mixed, role="unblinded_statistician", trial=a)
    role_grant(user=mixed, role="coordinator", trial=b, site=ldn)
    only_a = django_user_model.objects.create_user("a-unblinded", "au@example.org", "x" * 16, is_staff=True)
    role_grant(user=only_a, role="unblinded_statistician", trial=a)
    return mixed, only_a


def test_arm_tables_hold_only_the_trials_where_the_user_is_unblinded(client, two_trials, unblinded_in_a):
    from participants.models import AllocationSlot, Arm

    a, b, _, _ = two_trials
    mixed, _ = unblinded_in_a
    client.force_login(mixed)
    shown_a = 0
    for name, path in ARM_TABLES.items():
        page = client.get(reverse(f"admin:{name}_changelist"))
        assert page.status_code == 200, name
        rows = page.context["cl"].queryset
        shown_a += rows.filter(**{path: a.pk}).exists()  # positive signal: trial A's rows are listed
        assert not rows.filter(**{path: b.pk}).exists(), f"{name}: rows of trial B, where the user is blinded"
        assert not [n for n in B_ARMS if n in page.content.decode()]
    assert shown_a == len(ARM_TABLES)
    arms = client.get(reverse("admin:participants_arm_changelist")).content.decode()
    assert "psilocybin micro-dose" in arms  # trial A's arms, by name
    # A change page of trial B's slot is not found; trial A's shows its arm.
    slot_b = AllocationSlot.objects.filter(allocation_list__trial=b).first()
    slot_a = AllocationSlot.objects.filter(allocation_list__trial=a).select_related("arm").first()
    assert client.get(reverse("admin:participants_allocationslot_change", args=[slot_b.pk])).status_code == 302
    page = client.get(reverse("admin:participants_allocationslot_change", args=[slot_a.pk]))
    assert page.status_code == 200 and str(slot_a.arm) in page.content.decode()
    arm_b = Arm.objects.filter(trial=b).first()
    assert client.get(reverse("admin:participants_arm_change", args=[arm_b.pk])).status_code == 302


def test_the_blinding_page_shows_arm_figures_only_for_the_trial_where_the_user_is_unblinded(
    client, two_trials, unblinded_in_a
):
    a, b, _, _ = two_trials
    mixed, _ = unblinded_in_a
    client.force_login(mixed)
    mine = client.get(reverse("admin:blinding_sessions"), {"trial": a.slug}).content.decode()
    assert 'id="blinding-sessions"' in mine  # positive control: unblinded figures of trial A
    other = client.get(reverse("admin:blinding_sessions"), {"trial": b.slug})
    assert other.status_code == 200 and 'id="blinding-sessions"' not in other.content.decode()


@pytest.fixture
def unblinded_in_a_monitoring_b(two_trials, django_user_model):
    """The unblinded statistician of trial A who also monitors trial B (trial-wide): the audit trail is not narrowed
    to participants for them, so every arm table's events of both trials would be in reach."""
    a, b, _, _ = two_trials
    user = django_user_model.objects.create_user("ab-wide", "abw@example.org", "x" * 16, is_staff=True)
    role_grant(user=user, role="unblinded_statistician", trial=a)
    role_grant(user=user, role="monitor", trial=b)
    return user


AUDIT_ARM_TABLES = {  # tracked table → lookup path to the trial
    "participants.Arm": "trial",
    "participants.AllocationSlot": "allocation_list__trial",
    "participants.Allocation": "participant__trial",
    "participants.DoseUnit": "slot__allocation_list__trial",
}


def _ids(label: str, path: str, trial) -> set[str]:
    from django.apps import apps

    model = apps.get_model(label)
    return {str(pk) for pk in model.objects.filter(**{path: trial.pk}).values_list("pk", flat=True)}


def _listed(page, label: str) -> set[str]:
    return set(page.context["cl"].queryset.filter(pgh_obj_model=label).values_list("pgh_obj_id", flat=True))


def test_the_audit_trail_shows_arm_tables_row_by_row_for_the_trials_where_the_user_is_unblinded(
    client, two_trials, unblinded_in_a, unblinded_in_a_monitoring_b, django_user_model
):
    """Events of every arm table, as the unblinded statistician of A who also reaches B (a coordinator at LDN, or a
    monitor of all of B): trial A's rows are listed with their arm fields, trial B's never, in the page and the CSV."""
    import csv
    import io

    a, b, _, _ = two_trials
    mixed, only_a = unblinded_in_a
    trail = reverse("admin:pghistory_events_changelist")
    for user in (only_a, mixed, unblinded_in_a_monitoring_b):
        client.force_login(user)
        # The trail does mix the trials: trial B's participants' own events are listed to the two who reach B.
        participants_b = _ids("participants.Participant", "trial", b)
        reached_b = _listed(client.get(trail, {"table": "participants.participant"}), "participants.Participant")
        assert bool(reached_b & participants_b) == (user is not only_a), user
        for label, path in AUDIT_ARM_TABLES.items():
            # Also who does not reach every trial (only_a, and mixed at LDN in B): arms, slots and dose units
            # reference no participant, and are placed by their trial.
            page = client.get(trail, {"table": label.lower()})
            assert page.status_code == 200
            listed = _listed(page, label)
            assert listed and listed <= _ids(label, path, a), (user, label)  # A's rows (positive control)
            assert not listed & _ids(label, path, b), (user, label)
            html = page.content.decode()
            assert not [n for n in B_ARMS if n in html], (user, label)
        html = client.get(trail, {"table": "participants.allocation"}).content.decode()
        assert "<b>slot_id</b>" in html  # trial A's allocations, with the slot they lead to
        export = client.get(reverse("admin:pghistory_events_export"), {"table": "participants.allocation"})
        rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
        exported = {r["object_id"] for r in rows if r["table"] == "participants.Allocation"}
        assert exported and exported <= _ids("participants.Allocation", "participant__trial", a)
        # The whole trail (no table filter), page and CSV: every arm table's events of A, none of B's.
        listed = client.get(trail).context["cl"].queryset
        export = client.get(reverse("admin:pghistory_events_export"))
        rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
        for label, path in AUDIT_ARM_TABLES.items():
            on_page = set(listed.filter(pgh_obj_model=label).values_list("pgh_obj_id", flat=True))
            in_csv = {r["object_id"] for r in rows if r["table"] == label}
            assert on_page and on_page <= _ids(label, path, a), (user, label)
            assert in_csv and in_csv <= _ids(label, path, a), (user, label)
        assert not [n for n in B_ARMS if n in str(rows)], user
    arms = client.get(trail, {"table": "participants.arm"}).content.decode()  # the trial-wide user, last
    assert "psilocybin micro-dose" in arms and not [n for n in B_ARMS if n in arms]

    # Blinded staff of one trial (trial-wide, or at a site) see no arm table's event at all, though the trail lists
    # their trial's participants' events; the unblinded statistician of B sees B's arm tables' events, never A's.
    _, _, a_staff, b_staff = two_trials
    only_b = django_user_model.objects.create_user("b-unblinded", "bu@example.org", "x" * 16, is_staff=True)
    role_grant(user=only_b, role="unblinded_statistician", trial=b)
    for user, shown in ((a_staff["trial_manager"], None), (a_staff["coordinator"], None), (only_b, b)):
        client.force_login(user)
        listed = client.get(trail).context["cl"].queryset
        assert listed.filter(pgh_obj_model="participants.Participant").exists(), user  # positive signal
        for label, path in AUDIT_ARM_TABLES.items():
            ids = set(listed.filter(pgh_obj_model=label).values_list("pgh_obj_id", flat=True))
            if shown is None:
                assert not ids, (user, label)
            else:
                assert ids and ids <= _ids(label, path, b) and not ids & _ids(label, path, a), (user, label)

    # The participant page's audit section: the allocation of A's participant is listed, B's is not.
    client.force_login(unblinded_in_a_monitoring_b)
    for trial, shown in ((a, True), (b, False)):
        participant = Participant.objects.filter(trial=trial, allocation__isnull=False).first()
        page = client.get(reverse("admin:participants_participant_change", args=[participant.pk]))
        assert page.status_code == 200 and "Audit history" in page.content.decode()
        assert ("<td>participants.Allocation</td>" in page.content.decode()) is shown, trial


def _arm_cells(html: str) -> dict[str, str]:
    """study id → the text of its row's arm cell, as rendered on the participant changelist."""
    import re

    cells = {}
    for row in re.findall(r"<tr>.*?</tr>", html, flags=re.S):
        study = re.search(r'class="field-study_id"><a [^>]*>([^<]+)</a>', row)
        arm = re.search(r'<td class="field-arm">([^<]*)</td>', row)
        if study and arm:
            cells[study.group(1)] = arm.group(1)
    return cells


def test_the_participant_list_shows_each_rows_arm_where_the_user_is_unblinded_and_blinded_elsewhere(
    client, two_trials, unblinded_in_a, unblinded_in_a_monitoring_b
):
    from participants.models import Allocation

    a, b, a_staff, _ = two_trials
    mixed, only_a = unblinded_in_a
    arm_of = dict(Allocation.objects.values_list("participant__study_id", "slot__arm__name"))
    study_ids = {t: set(Participant.objects.filter(trial=t).values_list("study_id", flat=True)) for t in (a, b)}
    url = reverse("admin:participants_participant_changelist")
    for user in (mixed, unblinded_in_a_monitoring_b):
        client.force_login(user)
        page = client.get(url)
        html = page.content.decode()
        cells = _arm_cells(html)
        shown_a = {s: c for s, c in cells.items() if s in study_ids[a]}
        shown_b = {s: c for s, c in cells.items() if s in study_ids[b]}
        assert shown_b and set(shown_b.values()) == {"blinded"}, shown_b  # trial B's rows: never their arm
        assert not [n for n in B_ARMS if n in html]
        # Positive control: trial A's rows carry their arm.
        assert {s: c for s, c in shown_a.items() if s in arm_of} == {s: arm_of[s] for s in shown_a if s in arm_of}
        assert any(c == "psilocybin micro-dose" for c in shown_a.values())
        # Not sortable by arm (the order would group B's rows by arm), nor filterable by it.
        assert 'class="column-arm"' in html and "sortable column-arm" not in html
        lookup = client.get(url, {"allocation__slot__arm__name": B_ARMS[0]})
        assert lookup.status_code == 400
    # Unblinded in every trial they reach: the column as is, sortable.
    client.force_login(only_a)
    html = client.get(url).content.decode()
    assert "sortable column-arm" in html and "psilocybin micro-dose" in _arm_cells(html).values()
    # Blinded everywhere: no arm column at all.
    client.force_login(a_staff["trial_manager"])
    html = client.get(url).content.decode()
    assert "column-arm" not in html and "psilocybin micro-dose" not in html and _arm_cells(html) == {}


MIXED_CHANGELIST_QUERIES = {"participants": 14, "audit": 12, "audit-one-trial": 12}


@pytest.mark.parametrize("page", ["participants", "audit", "audit-one-trial"])
def test_a_list_mixing_trials_asks_about_arms_once_per_request_not_per_row(
    client, two_trials, unblinded_in_a_monitoring_b, page, django_assert_num_queries, request
):
    """A page of one row and a page of every row cost the same queries (the arm column reads each row's trial from
    the row itself), and the figure is pinned. "audit-one-trial": the trail of the unblinded statistician of trial A
    alone (narrowed to A's participants and arm tables, one subquery per table)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    a, b, _, _ = two_trials
    if page == "audit-one-trial":
        client.force_login(request.getfixturevalue("unblinded_in_a")[1])
    else:
        client.force_login(unblinded_in_a_monitoring_b)
    if page == "participants":
        url = reverse("admin:participants_participant_changelist")
        one_row = {"q": Participant.objects.filter(trial=b).values_list("study_id", flat=True).first()}
    else:
        url = reverse("admin:pghistory_events_changelist")
        one_row = {"table": "participants.arm", "pgh_created_at__gte": "2100-01-01 00:00:00+00:00"}
    client.get(url)  # warm caches (content types, the session)
    with CaptureQueriesContext(connection) as few:
        small = client.get(url, one_row)
    assert small.status_code == 200 and len(small.context["cl"].result_list) <= 1
    with django_assert_num_queries(len(few.captured_queries)):
        full = client.get(url)
    rows = full.context["cl"].result_list
    assert len(rows) >= 16
    if page == "participants":
        assert "blinded" in full.content.decode() and "psilocybin micro-dose" in full.content.decode()
    assert len(few.captured_queries) == MIXED_CHANGELIST_QUERIES[page], [q["sql"][:120] for q in few.captured_queries]


# --- sign-in events and outbox messages ---------------------------------------------------------------------
def test_sign_in_events_and_outbox_messages_are_shown_to_the_staff_of_their_trial(
    client, two_trials, django_user_model
):
    """A sign-in event belongs to the trials of its user's grants; an outbox message to the trial it is about.
    Rows of no trial (an unknown username, a system housekeeping message) are the system admins' only."""
    from trialsite.outbox import mail_enqueue
    from trialsite.staff_security import staff_login_event_record

    a, b, a_staff, b_staff = two_trials
    events = {
        "a": staff_login_event_record(kind="login", user=a_staff["coordinator"]),
        "b": staff_login_event_record(kind="login", user=b_staff["coordinator"]),
        "none": staff_login_event_record(kind="failed", username="nobody-typed-this"),
    }
    for name, trial in (("a", a), ("b", b), ("none", None)):
        mail_enqueue(dedupe_key=f"scoping:{name}", subject=name, body=name, to=["x@example.org"], trial=trial)
    messages = {m.dedupe_key.split(":")[1]: m for m in OutboxMessage.objects.filter(dedupe_key__startswith="scoping:")}

    def listed(url_name, rows) -> set[str]:
        page = client.get(reverse(url_name))
        assert page.status_code == 200
        shown = set(page.context["cl"].queryset.values_list("pk", flat=True))
        return {name for name, row in rows.items() if row.pk in shown}

    client.force_login(a_staff["trial_manager"])
    assert listed("admin:trialsite_staffloginevent_changelist", events) == {"a"}
    assert listed("admin:trialsite_outboxmessage_changelist", messages) == {"a"}
    client.force_login(b_staff["trial_manager"])
    assert listed("admin:trialsite_staffloginevent_changelist", events) == {"b"}
    assert listed("admin:trialsite_outboxmessage_changelist", messages) == {"b"}
    admin_user = django_user_model.objects.create_superuser("root", "root@example.org", "x" * 16)
    client.force_login(admin_user)  # positive control: every row exists and the system admin sees them all
    assert listed("admin:trialsite_staffloginevent_changelist", events) == {"a", "b", "none"}
    assert listed("admin:trialsite_outboxmessage_changelist", messages) == {"a", "b", "none"}
    b_message = reverse("admin:trialsite_outboxmessage_change", args=[messages["b"].pk])
    client.force_login(a_staff["trial_manager"])
    assert client.get(b_message).status_code == 302  # another trial's message is not found
