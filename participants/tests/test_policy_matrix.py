"""Role × action × interface: the admin and the staff API give every role the same answer, the README's.

One table (`MAY`) states who may do each action on a participant of site LDN; it mirrors the README "Roles"
table and trialsite.policy.RULES (both checked below). Each case runs the action through the real admin
pages and through the staff API, on a participant of its own, and asserts the effect in the database: done
when the table allows it, nothing changed when it does not.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from participants.models import Allocation, EnrolmentCode, Participant, ParticipantStatus
from trialsite import policy

from .conftest import ELIGIBLE, sign_consent

# Who is acting: role and the site of the grant (None: a trial-wide grant). The participant is at LDN.
ACTORS = {
    "coordinator LDN": ("coordinator", "LDN"),
    "coordinator NYC": ("coordinator", "NYC"),
    "trial_manager": ("trial_manager", None),
    "safety_physician LDN": ("safety_physician", "LDN"),
    "data_manager": ("data_manager", None),
    "monitor": ("monitor", None),
    "statistician": ("statistician", None),
    "unblinded_statistician": ("unblinded_statistician", None),
}
CLINICAL = {"coordinator LDN", "trial_manager"}  # README: coordinators of the site; the PI everything they can
MAY = {
    "register": CLINICAL,
    "issue_code": CLINICAL,
    "randomise": CLINICAL,
    "withdraw": CLINICAL,
}
POLICY_ACTION = {
    "register": policy.PARTICIPANT_REGISTER,
    "issue_code": policy.ENROLMENT_CODE_ISSUE,
    "randomise": policy.PARTICIPANT_RANDOMISE,
    "withdraw": policy.PARTICIPANT_WITHDRAW,
}
README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_table_is_the_readme_and_the_policy():
    text = README.read_text(encoding="utf-8")
    coordinator_row = re.search(r"^\| `coordinator` \|.*$", text, re.M).group(0)
    manager_row = re.search(r"^\| `trial_manager` \(PI\) \|.*$", text, re.M).group(0)
    for verb in ("register", "randomise", "withdraw", "enrolment code"):
        assert verb in coordinator_row
    assert "everything a coordinator can, at all sites" in manager_row
    for action, allowed in MAY.items():
        roles = {ACTORS[label][0] for label in allowed}
        assert policy.RULES[POLICY_ACTION[action]] == roles, action


@pytest.fixture
def world(trial, site_ldn, site_nyc, register, baseline, call, make_staff):
    call("allocation_generate", "--trial", trial.slug, "--seed", "3", "--per-stratum", "8")
    sites = {"LDN": site_ldn, "NYC": site_nyc}

    def actor(label):
        role, site = ACTORS[label]
        return make_staff(role, site=sites[site] if site else None)

    def participant(ready_to_randomise=False):
        p, _ = register()
        if ready_to_randomise:
            sign_consent(p)
            baseline[p.pk] = 12
        return p

    return {"trial": trial, "site": site_ldn, "actor": actor, "participant": participant}


# --- the two interfaces: each returns whether the action took effect ----------------------------------------
def _admin_action(client, participant, action, **extra):
    data = {"action": action, ACTION_CHECKBOX_NAME: [participant.pk], **extra}
    return client.post(reverse("admin:participants_participant_changelist"), data)


def admin_do(client, user, world, action) -> bool:
    client.force_login(user)
    if action == "register":
        before = Participant.objects.count()
        data = {"trial": world["trial"].pk, "site": world["site"].pk, "timezone": "Europe/London"}
        data.update({f"elig_{key}": "on" for key in ELIGIBLE})
        client.post(reverse("admin:participants_participant_add"), data)
        return Participant.objects.count() == before + 1
    p = world["participant"](ready_to_randomise=action == "randomise")
    if action == "issue_code":
        before = EnrolmentCode.objects.filter(participant=p).count()
        client.post(reverse("admin:participants_participant_code", args=[p.pk]))
        return EnrolmentCode.objects.filter(participant=p).count() == before + 1
    if action == "randomise":
        _admin_action(client, p, "randomise")
        return Allocation.objects.filter(participant=p).exists()
    if action == "withdraw":
        _admin_action(client, p, "withdraw", confirm="1", scope="all", reason="moving abroad")
        p.refresh_from_db()
        return p.status == ParticipantStatus.WITHDRAWN
    raise AssertionError(action)


def api_do(api_client, user, world, action) -> bool:
    api_client.force_authenticate(user)
    base = "/api/v1/staff/participants"
    if action == "register":
        body = {"trial": world["trial"].slug, "site": "LDN", "timezone": "Europe/London", "eligibility": ELIGIBLE}
        r = api_client.post(base, body, format="json")
    else:
        p = world["participant"](ready_to_randomise=action == "randomise")
        path = {"issue_code": "enrolment-code", "randomise": "randomise", "withdraw": "withdraw"}[action]
        body = {"scope": "all", "reason": "moving abroad"} if action == "withdraw" else None
        r = api_client.post(f"{base}/{p.uuid}/{path}", body, format="json")
    assert r.status_code in (201, 403, 404), (r.status_code, r.content)
    if r.status_code != 201:
        assert r.json()["error"]["code"] in ("permission_denied", "not_found")
    return r.status_code == 201


@pytest.mark.parametrize("label", list(ACTORS))
@pytest.mark.parametrize("action", list(MAY))
def test_admin_and_api_agree_with_the_table(world, client, api_client, action, label):
    expected = label in MAY[action]
    via_admin = admin_do(client, world["actor"](label), world, action)
    via_api = api_do(api_client, world["actor"](label), world, action)
    assert (via_admin, via_api) == (expected, expected)
