"""Encryption and key rotation, PROTECT, constraints both ways, contact-view audit, blinding registry,
query count of the staff list, adverse events, emergency unblinding, staff token sign-in."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from cryptography.fernet import Fernet
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from participants import blinding, crypto
from participants.models import (
    AdverseEvent,
    Allocation,
    ContactAccess,
    ContactDetails,
    EnrolmentCode,
    Participant,
    SafetyAlert,
    UnblindingRequest,
)
from participants.services import (
    adverse_event_create,
    contact_rotate_keys,
    contact_view,
    participant_randomise,
    unblinding_decide,
    unblinding_request,
    unblinding_reveal,
)
from participants.tests.conftest import sign_consent
from trialsite.models import OutboxMessage
from trialsite.outbox import outbox_deliver_pending


def test_encryption_round_trip_and_key_rotation(register, settings):
    old = settings.FIELD_ENCRYPTION_KEY
    participant, _ = register(contact={"name": "Ada Lovelace", "email": "ada@example.org", "phone": "+441234567"})
    stored = ContactDetails.objects.get(participant=participant)
    assert crypto.decrypt(stored.email_encrypted) == "ada@example.org"
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEY = f"{new_key},{old}"  # new key first; old still decrypts
    assert crypto.decrypt(stored.name_encrypted) == "Ada Lovelace"
    assert contact_rotate_keys() == 1
    settings.FIELD_ENCRYPTION_KEY = new_key  # old key dropped after rotation
    stored.refresh_from_db()
    assert crypto.decrypt(stored.phone_encrypted) == "+441234567"
    settings.FIELD_ENCRYPTION_KEY = old
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured):
        crypto.decrypt(stored.phone_encrypted)


def test_contact_rotate_keys_command(register, settings, call):
    old = settings.FIELD_ENCRYPTION_KEY
    participant, _ = register(contact={"name": "Ada Lovelace", "email": "ada@example.org"})
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEY = f"{new_key},{old}"
    assert "re-encrypted contact details of 1 participants" in call("contact_rotate_keys")
    settings.FIELD_ENCRYPTION_KEY = new_key
    stored = ContactDetails.objects.get(participant=participant)
    assert crypto.decrypt(stored.email_encrypted) == "ada@example.org"


def test_contact_view_is_recorded_and_site_scoped(register, make_staff, site_ldn, site_nyc):
    participant, _ = register(contact={"email": "ada@example.org"})
    coordinator = make_staff("coordinator", site=site_ldn)
    assert contact_view(participant=participant, actor=coordinator, purpose="phone call")["email"] == "ada@example.org"
    assert ContactAccess.objects.filter(participant=participant, user=coordinator).count() == 1
    with pytest.raises(PermissionDenied):
        contact_view(participant=participant, actor=make_staff("coordinator", site=site_nyc), purpose="curious")
    with pytest.raises(PermissionDenied):
        contact_view(participant=participant, actor=make_staff("statistician"), purpose="curious")


def test_nothing_clinical_can_be_deleted(register):
    participant, _ = register(contact={"email": "a@example.org"})
    sign_consent(participant)
    with pytest.raises(ProtectedError):
        participant.delete()
    with pytest.raises(ProtectedError):
        participant.user.delete()
    with pytest.raises(ProtectedError):
        participant.trial.delete()


def test_enrolment_code_one_live_per_participant_constraint(register):
    participant, _ = register()
    now = timezone.now()
    duplicate = EnrolmentCode(participant=participant, code_hash="x" * 64, expires_at=now + timedelta(days=1))
    with pytest.raises(ValidationError):
        duplicate.full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        duplicate.save()


def test_allocation_constraints_both_ways(register, baseline, call):
    call("allocation_generate", "--trial", "microdose-mood", "--seed", "1", "--per-stratum", "4")
    participant, _ = register()
    sign_consent(participant)
    baseline[participant.pk] = 3
    allocation = participant_randomise(participant=participant, actor=participant.registered_by)
    other, _ = register()
    second_slot = Allocation(
        participant=participant, slot=allocation.slot.__class__.objects.exclude(pk=allocation.slot_id).first()
    )
    with pytest.raises(ValidationError):
        second_slot.full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        second_slot.save()
    same_slot = Allocation(participant=other, slot=allocation.slot)
    with pytest.raises(ValidationError):
        same_slot.full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        same_slot.save()


def test_ae_constraints_and_serious_event_raises_alert(register, make_staff, site_ldn):
    participant, _ = register()
    physician = make_staff("safety_physician", site=site_ldn)
    common = dict(
        participant=participant,
        onset=date(2026, 2, 1),
        description="Headache",
        relatedness="possible",
        action_taken="none",
        outcome="recovering",
        actor=physician,
    )
    mild = adverse_event_create(severity_grade=1, serious=False, **common)
    assert not SafetyAlert.objects.exists()
    with pytest.raises(ValidationError):
        adverse_event_create(severity_grade=6, serious=False, **common)
    with pytest.raises(ValidationError):
        adverse_event_create(severity_grade=3, serious=True, seriousness_criteria=[], **common)
    serious = adverse_event_create(
        severity_grade=3, serious=True, seriousness_criteria=["hospitalisation"], previous=mild, **common
    )
    assert serious.previous == mild
    alert = SafetyAlert.objects.get()
    assert alert.source_kind == "adverse_event" and alert.source_id == str(serious.uuid)
    with pytest.raises(IntegrityError), transaction.atomic():
        AdverseEvent.objects.filter(pk=mild.pk).update(severity_grade=0)
    with pytest.raises(ProtectedError):
        mild.delete()


def test_emergency_unblinding_needs_the_other_role(
    register, baseline, call, make_staff, site_ldn, django_capture_on_commit_callbacks
):
    call("allocation_generate", "--trial", "microdose-mood", "--seed", "5", "--per-stratum", "4")
    participant, _ = register()
    sign_consent(participant)
    baseline[participant.pk] = 20
    participant_randomise(participant=participant, actor=participant.registered_by)
    physician = make_staff("safety_physician", site=site_ldn)
    manager = make_staff("trial_manager")
    other_physician = make_staff("safety_physician", site=site_ldn)
    with pytest.raises(PermissionDenied):
        unblinding_request(participant=participant, actor=make_staff("coordinator", site=site_ldn), reason="x" * 20)
    with django_capture_on_commit_callbacks(execute=True):
        req = unblinding_request(participant=participant, actor=physician, reason="Severe reaction, treating in A&E")
    with pytest.raises(PermissionDenied):
        unblinding_decide(request=req, actor=physician, approve=True)
    with pytest.raises(PermissionDenied):
        unblinding_decide(request=req, actor=other_physician, approve=True)  # same role as the requester
    with pytest.raises(Exception, match="not been approved"):
        unblinding_reveal(request=req, actor=physician)
    with django_capture_on_commit_callbacks(execute=True):
        unblinding_decide(request=req, actor=manager, approve=True)
    with pytest.raises(PermissionDenied):
        unblinding_reveal(request=req, actor=manager)  # revealed to the requester only
    with django_capture_on_commit_callbacks(execute=True):
        revealed = unblinding_reveal(request=req, actor=physician)
    assert revealed["arm"] in ("psilocybin micro-dose", "placebo")
    req.refresh_from_db()
    assert req.status == "revealed" and req.revealed_at is not None
    # The notices are recorded with each step and sent by a worker, never inside the request.
    assert mail.outbox == []
    # The requester's role is re-checked at every reveal: once it is revoked, the allocation stays hidden.
    from trialsite.models import RoleGrant
    from trialsite.services import role_revoke

    role_revoke(grant=RoleGrant.objects.get(user=physician))
    with pytest.raises(PermissionDenied, match="still holding the role"):
        unblinding_reveal(request=req, actor=type(physician).objects.get(pk=physician.pk))
    assert OutboxMessage.objects.filter(dedupe_key__startswith=f"unblinding:{req.uuid}:").count() == 3
    assert outbox_deliver_pending() == {"sent": 3}
    assert outbox_deliver_pending() == {}  # delivered once
    assert [m.to for m in mail.outbox] == [[manager.email]] * 3
    # The four-eyes rule is a DB constraint too.
    with pytest.raises(IntegrityError), transaction.atomic():
        UnblindingRequest.objects.filter(pk=req.pk).update(decided_by=physician)


def test_blinding_registry_and_leak_helper(trial):
    from participants.models import AllocationSlot, Arm, DoseUnit

    assert blinding.is_arm_bearing(Arm) and blinding.is_arm_bearing(AllocationSlot, "arm")
    assert blinding.is_arm_bearing(DoseUnit, "slot") and not blinding.is_arm_bearing(DoseUnit, "code")
    assert not blinding.is_arm_bearing(Participant)
    assert set(blinding.arm_names(trial)) == {"psilocybin micro-dose", "placebo"}
    blinding.assert_no_arm("LDN-0001 randomised, units MD-ACDEFG", trial)
    with pytest.raises(AssertionError):
        blinding.assert_no_arm("allocated to Placebo", trial)


def test_staff_list_is_site_scoped_with_constant_queries(
    api_client, register, make_staff, site_ldn, site_nyc, django_assert_num_queries
):
    for _ in range(3):
        sign_consent(register()[0])
    register(site=site_nyc)
    coordinator = make_staff("coordinator", site=site_ldn)
    api_client.force_authenticate(coordinator)

    def listing():
        return api_client.get("/api/v1/staff/participants?status=registered")

    r = listing()
    assert r.status_code == 200
    ids = [p["study_id"] for p in r.json()["results"]]
    assert ids == ["LDN-0001", "LDN-0002", "LDN-0003"] and r.json()["next"] is None
    assert r.json()["results"][0]["consented_at"] is not None
    # role grants, page (no count); adherence: two aggregates and the trial's protocol version
    with django_assert_num_queries(5):
        listing()
    for _ in range(5):
        register()
    with django_assert_num_queries(5):
        listing()
    bad = api_client.get("/api/v1/staff/participants?status=nonsense")
    assert bad.status_code == 400
    api_client.force_authenticate(make_staff("coordinator", site=site_nyc))
    assert [p["study_id"] for p in api_client.get("/api/v1/staff/participants").json()["results"]] == ["NYC-0001"]


# --- staff token -------------------------------------------------------------------------------------------


def test_staff_token_issue_and_wrong_password(api_client, make_staff):
    make_staff("coordinator", username="alice", password="correct-horse-battery-9")
    r = api_client.post(
        "/api/v1/staff/token", {"username": "alice", "password": "correct-horse-battery-9"}, format="json"
    )
    assert r.status_code == 201, r.content
    assert set(r.json()) == {"token", "expires_at"}
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {r.json()['token']}")
    assert api_client.get("/api/v1/staff/participants").status_code == 200
    api_client.credentials()
    r = api_client.post("/api/v1/staff/token", {"username": "alice", "password": "wrong"}, format="json")
    assert r.status_code == 401 and r.json()["error"]["code"] == "not_authenticated"
    assert api_client.post("/api/v1/staff/token", {"username": "alice"}, format="json").status_code == 400


def test_staff_token_lockout_after_repeated_failures(api_client, make_staff, settings):
    make_staff("coordinator", username="bob", password="correct-horse-battery-9")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        r = api_client.post("/api/v1/staff/token", {"username": "bob", "password": "nope"}, format="json")
        assert r.status_code in (401, 403)
    r = api_client.post(
        "/api/v1/staff/token", {"username": "bob", "password": "correct-horse-battery-9"}, format="json"
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"


def test_staff_token_requires_totp_when_device_confirmed(api_client, make_staff, settings):
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = make_staff("coordinator", username="carol", password="correct-horse-battery-9")
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    creds = {"username": "carol", "password": "correct-horse-battery-9"}
    r = api_client.post("/api/v1/staff/token", creds, format="json")
    assert r.status_code == 401 and "otp" in r.json()["error"]["fields"]
    code = f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"
    r = api_client.post("/api/v1/staff/token", {**creds, "otp": code}, format="json")
    assert r.status_code == 201, r.content
    r = api_client.post("/api/v1/staff/token", {**creds, "otp": code}, format="json")
    assert r.status_code == 401  # a used one-time password does not work twice


def test_staff_without_device_gets_403_when_2fa_required(api_client, make_staff, settings):
    settings.TRIALSITE_REQUIRE_2FA = True
    make_staff("coordinator", username="dave", password="correct-horse-battery-9")
    r = api_client.post(
        "/api/v1/staff/token", {"username": "dave", "password": "correct-horse-battery-9"}, format="json"
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"


def test_participant_account_cannot_get_a_staff_token(api_client, register):
    participant, _ = register()
    r = api_client.post("/api/v1/staff/token", {"username": participant.user.username, "password": ""}, format="json")
    assert r.status_code in (400, 401)
