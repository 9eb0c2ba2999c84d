"""Registration, screening, enrolment codes and the enrol/logout endpoints (API.md)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from participants.models import ContactDetails, EnrolmentCode, Participant
from participants.tests.factories import ELIGIBLE

CODE_RE = re.compile(r"^[ACDEFGHJKMNPQRTUVWXY345679]{4}-[ACDEFGHJKMNPQRTUVWXY345679]{4}$")


def bearer(client, token):
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def coordinator(make_staff, site_ldn):
    return make_staff("coordinator", site=site_ldn)


@pytest.fixture
def staff_client(api_client, coordinator):
    api_client.force_authenticate(coordinator)
    return api_client


def create(client, **overrides):
    body = {"trial": "microdose-mood", "site": "LDN", "timezone": "Europe/London", "eligibility": dict(ELIGIBLE)}
    body.update(overrides)
    return client.post("/api/v1/staff/participants", body, format="json")


def test_register_gives_study_id_code_and_qr(staff_client):
    r1 = create(staff_client, contact={"name": "Ada Lovelace", "email": "ada@example.org", "phone": "+44 20 7946 0000"})
    r2 = create(staff_client)
    assert r1.status_code == 201, r1.content
    body = r1.json()
    assert body["study_id"] == "LDN-0001" and r2.json()["study_id"] == "LDN-0002"
    assert CODE_RE.match(body["enrolment_code"])
    assert body["status"] == "registered"
    qr = staff_client.get(body["enrolment_qr_url"])
    assert qr.status_code == 200 and qr["Content-Type"] == "image/svg+xml" and b"<svg" in qr.content
    # Contact details are encrypted at rest and the code is stored only hashed.
    contact = ContactDetails.objects.get(participant__uuid=body["id"])
    assert "ada@example.org" not in contact.email_encrypted and contact.email_encrypted
    stored = EnrolmentCode.objects.get(participant__uuid=body["id"])
    assert body["enrolment_code"].replace("-", "") not in (stored.code_hash + stored.code_encrypted)
    assert Participant.objects.get(uuid=body["id"]).channels == ["email", "sms"]


def test_a_false_criterion_is_a_screen_failure_without_code(staff_client):
    r = create(staff_client, eligibility={**ELIGIBLE, "not_pregnant": False})
    assert r.status_code == 201
    assert r.json()["status"] == "screen_failed" and r.json()["enrolment_code"] is None
    p = Participant.objects.get(uuid=r.json()["id"])
    assert p.status == "screen_failed" and not p.eligible and p.study_id == "LDN-0001"


@pytest.mark.parametrize(
    "overrides,field",
    [
        ({"eligibility": {"adult": True}}, "eligibility.no_psychosis_history"),
        ({"eligibility": {**ELIGIBLE, "made_up": True}}, "eligibility.made_up"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"trial": "nope"}, "trial"),
        ({"site": "ZZZ"}, "site"),
        ({"contact": {"email": "not-an-email"}}, "contact.email"),
    ],
)
def test_bad_registration_is_a_400_naming_the_field(staff_client, overrides, field):
    r = create(staff_client, **overrides)
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == "validation_error"
    assert field in r.json()["error"]["fields"]


def test_coordinator_cannot_register_at_another_site(api_client, make_staff, site_nyc, trial):
    api_client.force_authenticate(make_staff("coordinator", site=site_nyc))
    r = create(api_client)
    assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
    assert not Participant.objects.exists()


def test_unauthenticated_staff_call_is_401(api_client, trial):
    r = create(api_client)
    assert r.status_code == 401 and r.json()["error"]["code"] == "not_authenticated"


def test_enrol_with_code_lower_case_without_dash(staff_client, api_client):
    code = create(staff_client).json()["enrolment_code"]
    phone = api_client
    phone.force_authenticate(None)
    r = phone.post(
        "/api/v1/enrol",
        {"code": code.replace("-", "").lower(), "device": {"platform": "ios", "timezone": "Europe/London"}},
        format="json",
    )
    assert r.status_code == 201, r.content
    assert r.json()["participant"]["study_id"] == "LDN-0001"
    assert "arm" not in r.json()["participant"]
    me = bearer(phone, r.json()["token"]).get("/api/v1/me")
    assert me.status_code == 200 and me.json()["status"] == "enrolled"


def test_used_unknown_and_expired_codes_get_the_same_400(staff_client, api_client, coordinator):
    code = create(staff_client).json()["enrolment_code"]
    staff_client.force_authenticate(None)
    assert api_client.post("/api/v1/enrol", {"code": code}, format="json").status_code == 201
    used = api_client.post("/api/v1/enrol", {"code": code}, format="json")
    unknown = api_client.post("/api/v1/enrol", {"code": "AAAA-AAAA"}, format="json")
    garbage = api_client.post("/api/v1/enrol", {"code": "0O1I"}, format="json")
    missing = api_client.post("/api/v1/enrol", {}, format="json")
    staff_client.force_authenticate(coordinator)
    expired_code = create(staff_client).json()["enrolment_code"]
    EnrolmentCode.objects.filter(participant__study_id="LDN-0002").update(
        issued_at=timezone.now() - timedelta(days=15), expires_at=timezone.now() - timedelta(days=1)
    )
    staff_client.force_authenticate(None)
    expired = api_client.post("/api/v1/enrol", {"code": expired_code}, format="json")
    bodies = [r.json() for r in (used, unknown, garbage, missing, expired)]
    assert all(r.status_code == 400 for r in (used, unknown, garbage, missing, expired))
    assert all(b["error"]["code"] == "invalid_enrolment_code" for b in bodies)
    assert len({b["error"]["message"] for b in bodies}) == 1


def test_code_expires_after_protocol_days(register):
    participant, _code = register()
    row = EnrolmentCode.objects.get(participant=participant)
    assert row.expires_at - row.issued_at == timedelta(days=14)  # protocol enrolment.code_valid_days


def test_reissued_code_kills_the_old_one(staff_client, api_client):
    created = create(staff_client).json()
    old = created["enrolment_code"]
    r = staff_client.post(f"/api/v1/staff/participants/{created['id']}/enrolment-code")
    assert r.status_code == 201
    new = r.json()["enrolment_code"]
    assert new != old and CODE_RE.match(new)
    staff_client.force_authenticate(None)
    assert api_client.post("/api/v1/enrol", {"code": old}, format="json").status_code == 400
    assert api_client.post("/api/v1/enrol", {"code": new}, format="json").status_code == 201


def enrol_rate_limit() -> int:
    """Requests per period allowed by the configured "enrol" rate (DRF's REST_FRAMEWORK setting, env-tunable)."""
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    allowed, _period = SimpleRateThrottle.parse_rate(None, api_settings.DEFAULT_THROTTLE_RATES["enrol"])
    assert 1 <= allowed <= 100  # a rate the test can exhaust
    return allowed


def test_enrol_is_throttled_per_client_address(api_client, trial, settings):
    rate_limit = enrol_rate_limit()
    answers = [api_client.post("/api/v1/enrol", {"code": "AAAA-AAAA"}, format="json") for _ in range(rate_limit + 1)]
    assert [a.status_code for a in answers[:rate_limit]] == [400] * rate_limit
    assert answers[-1].status_code == 429 and answers[-1].json()["error"]["code"] == "throttled"
    # Another address is not affected, and a forged X-Forwarded-For does not escape the limit.
    forged = api_client.post("/api/v1/enrol", {"code": "AAAA-AAAA"}, format="json", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert forged.status_code == 429
    other = api_client.post("/api/v1/enrol", {"code": "AAAA-AAAA"}, format="json", REMOTE_ADDR="10.250.250.250")
    assert other.status_code == 400


def test_enrol_throttle_behind_a_trusted_proxy_counts_the_client_address(api_client, trial, settings):
    # TRUSTED_PROXY_COUNT=1: one load balancer (REMOTE_ADDR 10.0.0.2) appends the address it saw.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}

    def enrol(client_address):
        return api_client.post(
            "/api/v1/enrol",
            {"code": "AAAA-AAAA"},
            format="json",
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR=f"6.6.6.6, {client_address}",  # the first entry is the client's own claim
        )

    rate_limit = enrol_rate_limit()
    assert [enrol("203.0.113.7").status_code for _ in range(rate_limit + 1)] == [400] * rate_limit + [429]
    # Another client behind the same proxy is counted on its own.
    assert enrol("203.0.113.8").status_code == 400


def test_logout_revokes_the_token(staff_client, api_client):
    code = create(staff_client).json()["enrolment_code"]
    staff_client.force_authenticate(None)
    token = api_client.post("/api/v1/enrol", {"code": code}, format="json").json()["token"]
    bearer(api_client, token)
    assert api_client.post("/api/v1/logout").status_code == 204
    r = api_client.get("/api/v1/me")
    assert r.status_code == 401 and r.json()["error"]["code"] == "not_authenticated"
