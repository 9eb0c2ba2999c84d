"""GET/PATCH /me, consent, withdrawal (participant and staff), object-level access."""

from __future__ import annotations

import pytest

from participants.models import ConsentDocument, ConsentSignature, Withdrawal
from participants.services import participant_enrol


@pytest.fixture
def phone(register, api_client, events):
    participant, code = register(contact={"email": "p@example.org"})
    _, token = participant_enrol(code=code)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    api_client.participant = participant
    return api_client


def test_me_shows_own_record_and_never_the_arm(phone, trial):
    r = phone.get("/api/v1/me")
    assert r.status_code == 200
    body = r.json()
    assert body["study_id"] == "LDN-0001" and body["trial"] == "microdose-mood" and body["site"] == "LDN"
    assert body["study_day"] is None
    assert body["consent"] == {"version": "1.0", "signed_at": None, "needs_consent": True}
    assert body["quiet_hours"] == {"start": "22:00", "end": "07:30"}  # protocol default
    assert body["channels"] == ["email"]
    assert "arm" not in body
    for name in ("psilocybin micro-dose", "placebo"):
        assert name not in r.content.decode().lower()


def test_patch_me_zone_change_emits_event(phone, events):
    r = phone.patch(
        "/api/v1/me",
        {"timezone": "America/New_York", "quiet_hours": {"start": "23:00", "end": "06:00"}, "channels": ["sms"]},
        format="json",
    )
    assert r.status_code == 200, r.content
    assert r.json()["timezone"] == "America/New_York"
    assert r.json()["quiet_hours"] == {"start": "23:00", "end": "06:00"}
    assert r.json()["channels"] == ["sms"]
    changed = [e for e in events if e[0] == "timezone_changed"]
    assert changed == [("timezone_changed", phone.participant.pk, {"old": "Europe/London", "new": "America/New_York"})]


def test_push_token_adds_push_channel(phone):
    r = phone.patch("/api/v1/me", {"push_token": "abc123"}, format="json")
    assert r.status_code == 200 and r.json()["channels"] == ["email", "push"]


@pytest.mark.parametrize(
    "body,field",
    [
        ({"timezone": "Europe/Nowhere"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"channels": ["email", "pigeon"]}, "channels"),
        ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "quiet_hours.start"),
    ],
)
def test_patch_me_bad_input_is_400(phone, events, body, field):
    r = phone.patch("/api/v1/me", body, format="json")
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == "validation_error"
    assert any(k.startswith(field.split(".")[0]) for k in r.json()["error"]["fields"])
    assert not [e for e in events if e[0] == "timezone_changed"]


def test_staff_token_cannot_use_participant_endpoints(api_client, make_staff, site_ldn):
    api_client.force_authenticate(make_staff("coordinator", site=site_ldn))
    r = api_client.get("/api/v1/me")
    assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"


def test_participant_token_cannot_use_staff_endpoints(phone):
    r = phone.get("/api/v1/staff/participants")
    assert r.status_code == 403
    r = phone.post(f"/api/v1/staff/participants/{phone.participant.uuid}/randomise")
    assert r.status_code == 403


def test_consent_get_and_sign(phone, events):
    doc = phone.get("/api/v1/consent").json()
    assert doc["version"] == "1.0" and doc["signed_at"] is None and len(doc["sha256"]) == 64
    stored = ConsentDocument.objects.get(version="1.0")
    import hashlib

    assert doc["sha256"] == hashlib.sha256(doc["body"].encode()).hexdigest() == stored.sha256
    r = phone.post(
        "/api/v1/consent",
        {"version": "1.0", "sha256": doc["sha256"], "agree": True, "typed_name": "Ada Lovelace"},
        format="json",
    )
    assert r.status_code == 201, r.content
    signed_at = phone.participant.consents.get().signed_at
    assert ("consented", phone.participant.pk, {"document": stored, "now": signed_at}) in events
    assert phone.get("/api/v1/consent").json()["signed_at"] is not None
    assert phone.get("/api/v1/me").json()["consent"]["needs_consent"] is False
    again = phone.post(
        "/api/v1/consent",
        {"version": "1.0", "sha256": doc["sha256"], "agree": True, "typed_name": "Ada Lovelace"},
        format="json",
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    assert ConsentSignature.objects.count() == 1


@pytest.mark.parametrize(
    "body,status,code",
    [
        ({"version": "2.0"}, 409, "conflict"),
        ({"sha256": "0" * 64}, 409, "conflict"),
        ({"agree": False}, 400, "validation_error"),
        ({"typed_name": ""}, 400, "validation_error"),
    ],
)
def test_consent_wrong_version_hash_or_not_agreed(phone, body, status, code):
    good = {"version": "1.0", "sha256": ConsentDocument.objects.get().sha256, "agree": True, "typed_name": "Ada"}
    r = phone.post("/api/v1/consent", {**good, **body}, format="json")
    assert r.status_code == status and r.json()["error"]["code"] == code
    assert not ConsentSignature.objects.exists()


def test_participant_withdraws_then_cannot_again(phone, events):
    r = phone.post("/api/v1/withdraw", {"scope": "intervention", "reason": "side effects"}, format="json")
    assert r.status_code == 201 and r.json()["scope"] == "intervention"
    r = phone.post("/api/v1/withdraw", {"scope": "all"}, format="json")
    assert r.status_code == 201
    r = phone.post("/api/v1/withdraw", {"scope": "all"}, format="json")
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    assert [e[2]["scope"] for e in events if e[0] == "withdrawn"] == ["intervention", "all"]
    assert Withdrawal.objects.filter(participant=phone.participant).count() == 2
    phone.participant.refresh_from_db()
    assert phone.participant.is_withdrawn
    bad = phone.post("/api/v1/withdraw", {"scope": "everything"}, format="json")
    assert bad.status_code == 400


def test_staff_withdraw_by_site_coordinator_only(register, api_client, make_staff, site_ldn, site_nyc, events):
    participant, _ = register()
    api_client.force_authenticate(make_staff("coordinator", site=site_nyc))
    url = f"/api/v1/staff/participants/{participant.uuid}/withdraw"
    r = api_client.post(url, {"scope": "all", "reason": "moved away"}, format="json")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    api_client.force_authenticate(make_staff("trial_manager"))
    assert api_client.post(url, {"scope": "all"}, format="json").status_code == 403
    api_client.force_authenticate(make_staff("coordinator", site=site_ldn))
    r = api_client.post(url, {"scope": "all", "reason": "moved away"}, format="json")
    assert r.status_code == 201
    w = Withdrawal.objects.get(participant=participant)
    assert w.reason == "moved away" and not w.by_participant and w.recorded_by is not None
    assert ("withdrawn", participant.pk, {"scope": "all"}) in events


def test_unknown_participant_id_is_404(api_client, make_staff, site_ldn):
    api_client.force_authenticate(make_staff("coordinator", site=site_ldn))
    r = api_client.post("/api/v1/staff/participants/6f1c1f33-0000-4000-8000-000000000000/randomise")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
