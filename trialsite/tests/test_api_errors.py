"""Bad input anywhere in the API is a 4xx in the contract's shape, never a 500."""

import pytest
from django.utils import timezone

from trialsite.api.auth import token_issue

pytestmark = pytest.mark.django_db


@pytest.fixture
def coordinator_auth(make_staff, site_ldn):
    key, _ = token_issue(user=make_staff("coordinator", site=site_ldn), kind="staff", ttl=timezone.timedelta(hours=1))
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def test_nul_in_query_string_is_400_not_500(client, coordinator_auth):
    # Found by schemathesis: PostgreSQL text cannot hold NUL, so this reached the database as a 500.
    response = client.get("/api/v1/staff/participants?site=%00", **coordinator_auth)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_nul_in_json_body_is_400_not_500(client, coordinator_auth, trial):
    body = (
        '{"trial": "microdose-mood", "site": "LDN", "timezone": "Europe/London", '
        '"eligibility": {"adult": true}, "contact": {"name": "A\\u0000B"}}'
    )
    response = client.post("/api/v1/staff/participants", body, content_type="application/json", **coordinator_auth)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    from participants.models import Participant

    assert not Participant.objects.exists()


def test_unknown_api_path_is_404_in_the_error_shape(client):
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}


def test_malformed_json_is_400(client, coordinator_auth):
    response = client.post(
        "/api/v1/staff/participants", "{not json", content_type="application/json", **coordinator_auth
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_missing_token_is_401_in_the_error_shape(client):
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
