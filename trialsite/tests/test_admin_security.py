"""Staff security in the admin: TOTP when required, lock-out, session expiry, password rules, sign-in audit,
and the audit trail (filters, CSV export, blinding)."""

from __future__ import annotations

import csv
import io
import time

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from trialsite.models import StaffLoginEvent

PASSWORD = "correct-horse-battery-9"


def _login(client, username, password=PASSWORD, **extra):
    return client.post(reverse("admin:login"), {"username": username, "password": password, "next": "/admin/", **extra})


@pytest.fixture
def coordinator(trial, site_ldn, make_staff):
    return make_staff("coordinator", site=site_ldn, username="coord")


@override_settings(TRIALSITE_REQUIRE_2FA=False)
def test_password_login_works_when_2fa_is_optional(client, coordinator):
    response = _login(client, "coord")
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


@override_settings(TRIALSITE_REQUIRE_2FA=True, OTP_TOTP_THROTTLE_FACTOR=0)
def test_2fa_required_refuses_password_only_and_accepts_a_totp_token(client, coordinator):
    device = TOTPDevice.objects.create(user=coordinator, name="phone", confirmed=True)
    page = client.get(reverse("admin:login"))
    assert "otp_token" in page.content.decode()
    refused = _login(client, "coord")
    assert refused.status_code == 200  # form re-shown with an error, no session
    assert client.get("/admin/").status_code == 302
    wrong = _login(client, "coord", otp_device=device.persistent_id, otp_token="000000")
    assert wrong.status_code == 200 and client.get("/admin/").status_code == 302
    token = f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"
    accepted = _login(client, "coord", otp_device=device.persistent_id, otp_token=token)
    assert accepted.status_code == 302
    assert client.get("/admin/").status_code == 200


@override_settings(TRIALSITE_REQUIRE_2FA=True)
def test_2fa_required_rejects_an_unverified_session(client, coordinator):
    client.force_login(coordinator)  # a session without an OTP verification
    response = client.get("/admin/")
    assert response.status_code == 302 and reverse("admin:login") in response["Location"]


@override_settings(AXES_FAILURE_LIMIT=3)
def test_lockout_after_repeated_failures_even_with_the_right_password(client, coordinator):
    for _ in range(3):
        assert _login(client, "coord", password="wrong-password-xx").status_code in (200, 429)
    locked = _login(client, "coord")
    assert locked.status_code == 429
    assert client.get("/admin/").status_code == 302
    kinds = list(StaffLoginEvent.objects.filter(username="coord").values_list("kind", flat=True))
    assert kinds.count("failed") >= 3 and "locked_out" in kinds


def test_logins_logouts_and_failures_are_recorded(client, coordinator):
    _login(client, "coord", password="nope-nope-nope")
    _login(client, "coord")
    client.post(reverse("admin:logout"))
    events = list(StaffLoginEvent.objects.filter(username="coord").order_by("at", "id"))
    assert [e.kind for e in events] == ["failed", "login", "logout"]
    assert events[1].user == coordinator and events[1].ip_address == "127.0.0.1"


def test_login_events_admin_visible_to_monitor_only(client, coordinator, make_staff):
    _login(client, "coord")
    client.post(reverse("admin:logout"))
    url = reverse("admin:trialsite_staffloginevent_changelist")
    client.force_login(coordinator)
    assert client.get(url).status_code == 403
    client.force_login(make_staff("monitor"))
    html = client.get(url).content.decode()
    assert "coord" in html and "login" in html


def test_session_expires_when_idle_and_after_the_absolute_limit(client, coordinator, settings):
    assert settings.SESSION_COOKIE_AGE == 30 * 60 and settings.SESSION_SAVE_EVERY_REQUEST
    assert settings.SESSION_ABSOLUTE_MAX_AGE == 12 * 60 * 60
    client.force_login(coordinator)
    assert client.get("/admin/").status_code == 200
    session = client.session
    session["_trialsite_started"] = int(time.time()) - 12 * 60 * 60 - 5
    session.save()
    response = client.get("/admin/")
    assert response.status_code == 302 and reverse("admin:login") in response["Location"]


@pytest.mark.parametrize("password", ["short-1", "password1234", "123456789012"])
def test_weak_staff_passwords_are_refused(password):
    with pytest.raises(ValidationError):
        validate_password(password)


def test_a_long_uncommon_password_is_accepted():
    validate_password("violet-kettle-orbit-52")


# --- audit trail -------------------------------------------------------------------------------------------------


@pytest.fixture
def audited(trial, site_ldn, site_nyc, make_staff):
    from trialsite.tests.admin_data import add_participant, allocate

    coordinator = make_staff("coordinator", site=site_ldn, username="coord")
    ldn = add_participant(trial=trial, site=site_ldn, coordinator=coordinator, n_instances=1)
    nyc = add_participant(trial=trial, site=site_nyc, coordinator=coordinator, n_instances=1)
    allocate(ldn, trial=trial)
    return {"coordinator": coordinator, "ldn": ldn, "nyc": nyc}


def _csv(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_audit_trail_filters_and_csv_export(client, audited, make_staff):
    from trialsite.audit import audit_context

    monitor = make_staff("monitor")
    client.force_login(monitor)
    ldn = audited["ldn"]
    with audit_context(user=audited["coordinator"], reason="corrected zone after phone call"):
        ldn.timezone = "Europe/Paris"
        ldn.save(update_fields=["timezone"])
    url = reverse("admin:pghistory_events_changelist")
    assert client.get(url).status_code == 200
    html = client.get(url, {"participant": ldn.study_id, "table": "participants.participant"}).content.decode()
    assert "corrected zone after phone call" in html and "Europe/Paris" in html
    rows = _csv(client.get(reverse("admin:pghistory_events_export"), {"participant": ldn.study_id}))
    assert rows and {r["table"] for r in rows} >= {"participants.Participant"}
    assert any(r["reason"] == "corrected zone after phone call" for r in rows)
    by_user = _csv(client.get(reverse("admin:pghistory_events_export"), {"user": audited["coordinator"].pk}))
    assert by_user and all(r["user"] == str(audited["coordinator"].pk) for r in by_user)
    future = _csv(
        client.get(reverse("admin:pghistory_events_export"), {"pgh_created_at__gte": "2999-01-01 00:00:00+00:00"})
    )
    assert future == []
    # blinded: the arm tables never appear, even when asked for.
    everything = _csv(client.get(reverse("admin:pghistory_events_export")))
    tables = {r["table"] for r in everything}
    assert "participants.Participant" in tables
    assert not tables & {"participants.Arm", "participants.AllocationSlot", "participants.Allocation"}
    leaks = [(r["table"], r["changes"][:300]) for r in everything if "psilocybin micro-dose" in r["changes"]]
    assert leaks == []
    documents = {"participants.ConsentDocument", "trialsite.Trial", "trialsite.ProtocolVersion"}  # mention both arms
    assert all("placebo" not in r["changes"] for r in everything if r["table"] not in documents)


def test_site_staff_audit_trail_only_covers_their_sites(client, audited):
    client.force_login(audited["coordinator"])
    rows = _csv(client.get(reverse("admin:pghistory_events_export")))
    ids = {r["object_id"] for r in rows if r["table"] == "participants.Participant"}
    assert str(audited["ldn"].pk) in ids and str(audited["nyc"].pk) not in ids


def test_events_button_of_a_change_page_is_scoped(client, audited, make_staff):
    client.force_login(audited["coordinator"])
    url = reverse("admin:pghistory_events_changelist")
    own = client.get(url, {"method": "tracks", "obj": f"participants.Participant:{audited['ldn'].pk}", "back": "/x"})
    assert own.status_code == 200
    assert "Europe/London" in own.content.decode()  # the participant's insert event
    other = client.get(url, {"method": "tracks", "obj": f"participants.Participant:{audited['nyc'].pk}"})
    assert other.status_code == 200 and "America/New_York" not in other.content.decode()
    assert audited["nyc"].study_id not in other.content.decode()
    # The arm the LDN participant was allocated to: its own insert event names it, which the unblinded
    # statistician sees (the probe targets a real arm) and the coordinator does not.
    arm = audited["ldn"].allocation.slot.arm
    probe = {"method": "tracks", "obj": f"participants.Arm:{arm.pk}"}
    client.force_login(make_staff("unblinded_statistician"))
    shown = client.get(url, probe)
    assert shown.status_code == 200 and arm.name in shown.content.decode().split("<tbody>")[-1]
    client.force_login(audited["coordinator"])
    hidden = client.get(url, probe)
    assert hidden.status_code == 200 and arm.name not in hidden.content.decode()
    for bad in ("participants.Participant:abc", "participants.Participant:", "trialsite.Trial:1.5"):
        assert client.get(url, {"obj": bad}).status_code == 200  # a malformed id finds nothing, not a 500
