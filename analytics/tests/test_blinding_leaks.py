"""The blinding leak test across every interface: API responses (phone and staff), admin pages, export
bundles and notifications (e-mail, SMS/push outbox), rendered as every blinded role, find no arm.

The trial is the demo protocol with distinctive arm names and codes, so that any occurrence is a leak
(the demo's "placebo" also appears, legitimately, in the consent text and the blinding-guess options).
A positive control shows the same probes do find the arm where it is allowed (the unblinded statistician).
"""

import json
import re
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from django.core import mail
from django.test import override_settings
from django.urls import reverse

from participants.blinding import REGISTRY
from participants.models import Allocation, DoseUnit, Participant, SafetyAlert
from trialsite import policy
from trialsite.api.auth import token_issue
from trialsite.protocol.services import protocol_load
from trialsite.services import site_create

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)
SECRET_ARMS = {"A": "Zetaquin active arm", "B": "Zetaquin control arm"}
SECRET_CODES = {"ZQACT", "ZQCTL"}
BLINDED_ROLES = ["coordinator", "trial_manager", "safety_physician", "data_manager", "monitor", "statistician"]


def leaks(text: str) -> list[str]:
    found = [name for name in SECRET_ARMS.values() if name.lower() in text.lower()]
    found += [code for code in SECRET_CODES if re.search(rf"(?<![A-Za-z0-9]){code}(?![A-Za-z0-9])", text)]
    return found


@pytest.fixture
def secret_trial(db, demo_protocol_source):
    data = yaml.safe_load(demo_protocol_source)
    data["arms"][0].update(code="ZQACT", name=SECRET_ARMS["A"])
    data["arms"][1].update(code="ZQCTL", name=SECRET_ARMS["B"])
    trial = protocol_load(source=yaml.safe_dump(data, sort_keys=False)).trial
    site_create(code="LDN", name="London", timezone="Europe/London", trials=[trial])
    site_create(code="NYC", name="New York", timezone="America/New_York", trials=[trial])
    from analytics.simulation import simulate_trial

    simulate_trial(trial=trial, participants=16, days=21, seed=5, now=NOW)
    assert Allocation.objects.filter(participant__trial=trial).exists()
    return trial


def staff_get(api_client, user, path):
    key, _ = token_issue(user=user, kind="staff", ttl=timedelta(hours=1))
    return api_client.get(path, HTTP_AUTHORIZATION=f"Bearer {key}")


def test_registry_names_the_arm_bearing_models():
    assert {
        "participants.Arm",
        "participants.AllocationSlot",
        "participants.Allocation",
        "participants.DoseUnit",
    } <= set(REGISTRY)
    # Every arm-bearing table names the path to its trial: a page mixing trials asks the policy about each row's
    # trial (the audit trail, the participant list's arm column); one without a path is shown there to nobody.
    from participants.blinding import TRIAL_PATHS

    assert {label for label in REGISTRY if not label.endswith("Event")} == set(TRIAL_PATHS)


def test_staff_api_responses_carry_no_arm_for_blinded_roles(secret_trial, make_staff, api_client, site_ldn):
    sample = Participant.objects.filter(trial=secret_trial, status="randomised").first()
    paths = [
        "/api/v1/staff/participants",
        "/api/v1/staff/participants?site=LDN&status=randomised",
        f"/api/v1/staff/analytics/{secret_trial.slug}/summary",
        f"/api/v1/staff/analytics/{secret_trial.slug}/summary?outcome=phq9.total",
        "/api/schema/",
    ]
    assert sample is not None
    answered: dict[str, list[str]] = {}
    for role in BLINDED_ROLES:
        user = make_staff(role, site=site_ldn if role in ("coordinator", "safety_physician") else None)
        for path in paths:
            response = staff_get(api_client, user, path)
            assert response.status_code in (200, 403), (role, path, response.status_code)
            assert not leaks(response.content.decode()), (role, path)
            if response.status_code == 200 and path != "/api/schema/":
                answered.setdefault(role, []).append(path)
            if response.status_code == 200 and "/summary" in path:  # per-arm figures carry no arm name
                blinding = response.json()["blinding"]
                assert not {"indices", "coordinator_indices"} & set(blinding), (role, path)
    # A probe that only met 403s proves nothing: every blinded role read trial data on at least one surface.
    assert sorted(answered) == sorted(BLINDED_ROLES), answered
    # The stored figures the summary (and the dashboard) read for every role carry no arm either.
    from analytics.models import CompletionSnapshot

    stored = CompletionSnapshot.objects.get(trial=secret_trial)
    assert stored.rows and stored.figures["adherence"]
    assert not leaks(json.dumps([stored.rows, stored.figures]))
    # Positive control: the unblinded statistician's summary does carry the per-arm blinding indices.
    unblinded = make_staff("unblinded_statistician")
    summary = staff_get(api_client, unblinded, f"/api/v1/staff/analytics/{secret_trial.slug}/summary")
    assert summary.status_code == 200 and summary.json()["blinding"]["indices"]
    # Positive control: the per-session blinding figures name the arms behind "active" and "placebo".
    assert summary.json()["blinding"]["sessions"]["time_points"] and leaks(summary.content.decode())


def test_stored_unblinded_blinding_figures_reach_only_unblinded_roles(secret_trial, make_staff, api_client, site_ldn):
    """The unblinded summary's stored figures (analytics.BlindingSnapshot) are arm-bearing, registered, and read by
    no blinded request: not in any response, not even queried."""
    from django.contrib import admin
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from analytics.completion_snapshots import completion_snapshot_refresh
    from analytics.models import BlindingSnapshot

    assert REGISTRY["analytics.BlindingSnapshot"] == ("*",) and BlindingSnapshot not in admin.site._registry
    completion_snapshot_refresh(trial=secret_trial)  # the beat task, at the wall clock as the API reads it
    stored = BlindingSnapshot.objects.get(trial=secret_trial)
    assert leaks(json.dumps(stored.figures))  # positive control: the probe finds the arms in the stored row
    url = f"/api/v1/staff/analytics/{secret_trial.slug}/summary"
    answered = set()
    for role in BLINDED_ROLES:
        user = make_staff(role, site=site_ldn if role in ("coordinator", "safety_physician") else None)
        for path in (url, url + "?outcome=gad7"):
            with CaptureQueriesContext(connection) as ctx:
                response = staff_get(api_client, user, path)
            assert response.status_code in (200, 403), (role, path, response.status_code)
            assert not leaks(response.content.decode()), (role, path)
            assert not any("analytics_blindingsnapshot" in q["sql"] for q in ctx.captured_queries), (role, path)
            if response.status_code == 200:
                answered.add(role)
    assert answered == set(BLINDED_ROLES)  # every blinded role read the summary: the probe looked at real data
    # Positive control: the unblinded statistician's request reads the stored row and shows its arms.
    with CaptureQueriesContext(connection) as ctx:
        response = staff_get(api_client, make_staff("unblinded_statistician"), url)
    assert response.status_code == 200 and leaks(response.content.decode())
    assert any("analytics_blindingsnapshot" in q["sql"] for q in ctx.captured_queries)
    assert response.json()["blinding"]["sessions"] == stored.figures["sessions"]


def test_phone_api_responses_carry_no_arm(secret_trial, api_client):
    participants = Participant.objects.filter(trial=secret_trial, status="randomised", user__isnull=False)[:4]
    assert participants
    for participant in participants:
        key, _ = token_issue(user=participant.user, kind="participant", ttl=timedelta(hours=1))
        auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
        for path in [
            "/api/v1/me",
            "/api/v1/consent",
            "/api/v1/doses",
            "/api/v1/surveys?status=completed",
            "/api/v1/surveys?status=missed",
            "/api/v1/surveys?status=upcoming",
            "/api/v1/instruments/blinding-guess",
            "/api/v1/instruments/blinding-guess?lang=es",
            "/api/v1/me?lang=es",
            "/api/v1/fhir/Questionnaire/phq9",
        ]:
            response = api_client.get(path, **auth)
            assert response.status_code == 200, (path, response.status_code)
            assert not leaks(response.content.decode()), path


def test_admin_pages_carry_no_arm_for_blinded_roles(secret_trial, make_staff, client, site_ldn):
    participant = Participant.objects.filter(trial=secret_trial, status="randomised", site=site_ldn).first()
    pages = [
        "/admin/",
        reverse("admin:participants_participant_changelist"),
        reverse("admin:participants_participant_change", args=[participant.pk]),
        "/admin/dashboard/",
        "/admin/blinding/",
        reverse("admin:pghistory_events_changelist"),
        reverse("admin:pghistory_events_changelist") + "?table=participants.allocation",
        reverse("admin:pghistory_events_export") + "?table=participants.arm",
        reverse("admin:pghistory_events_export") + "?table=participants.allocationslot",
        reverse("admin:pghistory_events_export") + "?table=participants.doseunit",
    ]
    answered: dict[str, list[str]] = {}
    for role in BLINDED_ROLES:
        user = make_staff(role, site=site_ldn if role in ("coordinator", "safety_physician") else None)
        client.force_login(user)
        for page in pages:
            response = client.get(page)  # no redirect following: a login page is not a page of data
            assert response.status_code in (200, 403), (role, page, response.status_code)
            body = b"".join(response.streaming_content) if response.streaming else response.content
            assert not leaks(body.decode()), (role, page)
            if response.status_code == 200 and participant.study_id in body.decode():
                answered.setdefault(role, []).append(page)
        client.logout()
    # Every blinded role saw the randomised participant on at least one page, so the probe looked at real data.
    assert sorted(answered) == sorted(BLINDED_ROLES), answered
    # Positive control: the same probe finds the arms where the unblinded statistician may look.
    client.force_login(make_staff("unblinded_statistician"))
    response = client.get(reverse("admin:participants_arm_changelist"))
    assert response.status_code == 200 and leaks(response.content.decode())
    response = client.get(reverse("admin:participants_participant_changelist"))  # the arm column
    assert response.status_code == 200 and leaks(response.content.decode())
    export = client.get(reverse("admin:pghistory_events_export") + "?table=participants.arm")
    assert export.status_code == 200 and leaks(b"".join(export.streaming_content).decode())
    response = client.get("/admin/blinding/")
    assert response.status_code == 200 and leaks(response.content.decode())


def test_blinded_export_bundle_carries_no_arm(secret_trial, tmp_path):
    from analytics.export import write_bundle

    result = write_bundle(trial=secret_trial, out=tmp_path / "b.zip", formats=["csv", "parquet", "spss", "stata"])
    with zipfile.ZipFile(result.path) as zf:
        assert "allocation.csv" not in zf.namelist()
        assert "guess_treatment.csv" not in zf.namelist() and "covariates.csv" in zf.namelist()
        for name in zf.namelist():
            text = zf.read(name).decode("latin-1")
            assert not leaks(text), name
        # Dose-unit labels are printed on envelopes; the blinded bundle never maps them to anything.
        everything = "".join(zf.read(n).decode("latin-1") for n in zf.namelist())
    some_unit = DoseUnit.objects.first()
    assert some_unit.code not in everything
    unblinded = write_bundle(trial=secret_trial, out=tmp_path / "u.zip", blinded=False, reason="DSMB")
    with zipfile.ZipFile(unblinded.path) as zf:
        assert leaks(zf.read("allocation.csv").decode())
        assert leaks(zf.read("guess_treatment.csv").decode())  # the treatment at each guess is an arm code


def test_notifications_carry_no_arm(secret_trial, tmp_path, make_staff, site_ldn):
    import uuid

    from participants.services import safety_alert_raise
    from participants.services.escalation import safety_alert_escalate
    from participants.services.notices import safety_alert_notify_send
    from surveys.models import Reminder, ReminderStatus
    from surveys.tasks import reminder_send
    from trialsite.outbox import outbox_deliver_pending

    make_staff("safety_physician")
    make_staff("coordinator")
    make_staff("trial_manager")
    # At least one alert whatever the simulation drew (it also raises its own from the protocol's rules).
    participant = Participant.objects.filter(trial=secret_trial, status="randomised").first()
    safety_alert_raise(
        participant=participant,
        rule="phq9_item9",
        title="PHQ-9 item 9 (thoughts of self-harm) above 0",
        severity="urgent",
        source_kind="response",
        source_id=str(uuid.uuid4()),
    )
    mail.outbox.clear()
    with override_settings(REMINDER_OUTBOX_DIR=str(tmp_path)):
        for alert in SafetyAlert.objects.filter(participant__trial=secret_trial)[:5]:
            safety_alert_notify_send({"alert_id": alert.pk})
            safety_alert_escalate(alert_id=alert.pk, actor=policy.SYSTEM, now=alert.due_at + timedelta(minutes=1))
        outbox_deliver_pending()  # the escalation e-mails (and any notification the simulation left pending)
        reminders = list(Reminder.objects.filter(instance__participant__trial=secret_trial)[:10])
        for reminder in reminders:
            Reminder.objects.filter(pk=reminder.pk).update(status=ReminderStatus.QUEUED)
            reminder_send(reminder.pk)
        outbox = "".join(p.read_text() for p in Path(tmp_path).glob("*.jsonl"))
    # Reminder texts as rendered for each participant (the sends above may skip closed windows).
    from surveys.models import SurveyInstance
    from surveys.reminders.services import protocol_of, reminder_message

    rendered = [
        "\n".join(reminder_message(protocol=protocol_of(i), instance=i, zone=i.participant.zone))
        for i in SurveyInstance.objects.filter(participant__trial=secret_trial).select_related("participant")[:20]
    ]
    assert rendered
    texts = [f"{m.subject}\n{m.body}" for m in mail.outbox] + [outbox] + rendered
    assert mail.outbox, "the notifications under test were not sent"
    for text in texts:
        assert not leaks(text)


def test_web_push_payloads_carry_no_arm(secret_trial, settings):
    """The decrypted Web Push payload, as the local push-service double received it, names no arm."""
    from participants.services.push import push_subscription_save
    from surveys.models import Reminder
    from surveys.reminders.channels import channel_get
    from surveys.reminders.services import reminder_send_prepare, reminder_send_record, reminders_plan_due
    from surveys.tests import push_double
    from surveys.tests.reminder_helpers import make_instance
    from trialsite import vapid

    settings.WEBPUSH_VAPID_PRIVATE_KEY, settings.WEBPUSH_VAPID_PUBLIC_KEY = vapid.generate()
    settings.WEBPUSH_VAPID_SUBJECT = "mailto:trial-team@example.org"
    settings.WEBPUSH_ALLOW_INSECURE_ENDPOINTS = True
    double = push_double.start()
    try:
        participants = list(Participant.objects.filter(trial=secret_trial, status="randomised")[:3])
        for participant in participants:
            Participant.objects.filter(pk=participant.pk).update(channels=["push"], quiet_hours_start=None)
            info = double.subscribe().info()
            push_subscription_save(participant=participant, endpoint=info["endpoint"], keys=info["keys"], now=NOW)
            make_instance(participant, opens_at=NOW + timedelta(days=30))
        later = NOW + timedelta(days=30, minutes=1)
        reminders_plan_due(now=later)
        for reminder in Reminder.objects.filter(instance__participant__in=participants, due_at__gt=NOW):
            plan = reminder_send_prepare(reminder_id=reminder.pk, now=later)
            if plan.action == "send" and plan.channel == "push":
                provider_id = channel_get("push").send(key=plan.key, to=plan.to, subject=plan.subject, body=plan.body)
                reminder_send_record(reminder_id=reminder.pk, provider_id=provider_id, now=later)
        assert double.deliveries, "no push payload reached the double"
        assert double.rejected == []
        for delivery in double.deliveries:
            assert not leaks(str(delivery.payload)), delivery.payload
    finally:
        push_double.stop(double)


# --- Self-blinding envelopes: the condition of each envelope (and so of each period) is arm-bearing ----------


@pytest.fixture
def secret_kits(db):
    """The self-blinding demo with the secret arm names; three participants with envelopes recorded."""
    from participants.kit_models import KitEnvelope
    from participants.services.allocation import allocation_list_generate
    from participants.services.kits import kit_envelope_record
    from surveys.tests.kit_helpers import SELF_BLINDING, randomised_participant
    from trialsite.models import Site
    from trialsite.protocol.services import protocol_load as load

    data = yaml.safe_load(SELF_BLINDING.read_text(encoding="utf-8"))
    data["arms"][0].update(code="ZQACT", name=SECRET_ARMS["A"])
    data["arms"][1].update(code="ZQCTL", name=SECRET_ARMS["B"])
    trial = load(source=yaml.safe_dump(data, sort_keys=False)).trial
    site_create(code="LDN", name="London", timezone="Europe/London", trials=[trial])
    site = Site.objects.get(code="LDN")
    allocation_list_generate(trial=trial, seed=5, per_stratum=8)
    from django.utils import timezone

    people = []
    for _ in range(3):
        participant, key = randomised_participant(
            trial=trial, site=site, randomised_at=timezone.now() - timedelta(days=16)
        )
        for period, code in enumerate(
            KitEnvelope.objects.filter(participant=participant).values_list("code", flat=True)[:3], 1
        ):
            kit_envelope_record(participant=participant, code=code, period=period)
        people.append((participant, key))
    return trial, site, people


def test_envelope_conditions_reach_only_unblinded_roles(secret_kits, make_staff, client, api_client, tmp_path):
    from analytics.export import write_bundle

    trial, site, people = secret_kits
    participant, key = people[0]
    assert {"participants.KitEnvelope", "participants.KitEnvelopeEvent"} <= set(REGISTRY)

    # The phone: its kit status and a recorded envelope say nothing about conditions.
    for path in ["/api/v1/kit", "/api/v1/me", "/api/v1/surveys?status=completed"]:
        response = api_client.get(path, HTTP_AUTHORIZATION=f"Bearer {key}")
        assert response.status_code == 200 and not leaks(response.content.decode()), path

    change = reverse("admin:participants_participant_change", args=[participant.pk])
    sheet = reverse("admin:participants_participant_kit_sheet", args=[participant.pk])
    for role in BLINDED_ROLES:
        user = make_staff(role, site=site if role in ("coordinator", "safety_physician") else None)
        client.force_login(user)
        page = client.get(change)
        assert page.status_code in (200, 403), (role, page.status_code)
        assert not leaks(page.content.decode()), role
        if page.status_code == 200:
            assert "Envelope recorded" in page.content.decode()  # blinded staff see yes/no per period
        assert client.get(sheet).status_code == 403, role  # the kit sheet maps labels to conditions
        response = staff_get(api_client, user, "/api/v1/staff/participants")
        assert not leaks(response.content.decode()), role
        client.logout()

    blinded = write_bundle(trial=trial, out=tmp_path / "b.zip")
    with zipfile.ZipFile(blinded.path) as zf:
        assert "kit_envelopes.csv" not in zf.namelist()
        for name in zf.namelist():
            assert not leaks(zf.read(name).decode("latin-1")), name

    # Positive controls: the same probes find the conditions where the unblinded statistician may look.
    client.force_login(make_staff("unblinded_statistician"))
    response = client.get(sheet)
    assert response.status_code == 200 and leaks(response.content.decode())
    unblinded = write_bundle(trial=trial, out=tmp_path / "u.zip", blinded=False, reason="DSMB")
    with zipfile.ZipFile(unblinded.path) as zf:
        table = zf.read("kit_envelopes.csv").decode()
    assert leaks(table)
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(table)))
    assert len(rows) == 3 * 8  # every envelope of the three kits
    used = [r for r in rows if r["period"]]
    assert len(used) == 9 and {r["condition"] for r in used} <= {"ZQACT", "ZQCTL"}
