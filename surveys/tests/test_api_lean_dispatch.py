"""GET /api/v1/me and GET /api/v1/surveys take a shorter DRF dispatch for plain JSON requests (trialsite.api.lean):
the same status, headers and body as DRF's full dispatch, for good and refused requests alike (a revoked or
expired token, a deactivated user, a staff token, a withdrawn or unconsented participant, a throttled client, a bad
filter); anything else (another Accept header, ?format=) takes DRF's own dispatch, with its answers."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.throttling import BaseThrottle

from participants.api.views.phone import MeApi
from participants.models import ConsentSignature, Participant, ParticipantStatus
from surveys.api.views.surveys import SurveyListApi
from trialsite.api import lean
from trialsite.api.auth import token_issue
from trialsite.models import ApiToken

pytestmark = pytest.mark.django_db

ME, SURVEYS = "/api/v1/me", "/api/v1/surveys?status=open"


@pytest.fixture
def negotiations(monkeypatch):
    """How many requests went through DRF's content negotiation (the full dispatch)."""
    from rest_framework.views import APIView

    calls = []
    original = APIView.perform_content_negotiation

    def counted(self, request, force=False):
        calls.append(request.path)
        return original(self, request, force)

    monkeypatch.setattr(APIView, "perform_content_negotiation", counted)
    return calls


def answer(response) -> tuple:
    headers = {k: v for k, v in response.headers.items() if k != "X-Request-ID"}  # a new id per request
    return response.status_code, headers, response.content


def both_ways(client, path, monkeypatch, negotiations, **extra) -> tuple:
    """The answer of the lean dispatch, checked equal to DRF's full dispatch for the same request."""
    before = len(negotiations)
    lean_answer = answer(client.get(path, **extra))
    assert len(negotiations) == before  # it was the lean path
    with monkeypatch.context() as m:
        m.setattr(lean, "_PLAIN_ACCEPT", frozenset())  # every request takes APIView.dispatch
        full_answer = answer(client.get(path, **extra))
    assert len(negotiations) == before + 1
    assert lean_answer == full_answer
    return lean_answer


def error_code(answer_) -> str:
    import json

    return json.loads(answer_[2])["error"]["code"]


@pytest.mark.parametrize("accept", [None, "*/*", "application/json"])
def test_plain_json_gets_answer_as_drf_does(phone, monkeypatch, negotiations, accept):
    extra = {} if accept is None else {"HTTP_ACCEPT": accept}
    for path in (ME, SURVEYS, "/api/v1/surveys", "/api/v1/surveys?limit=1&offset=1"):
        status, headers, body = both_ways(phone, path, monkeypatch, negotiations, **extra)
        assert status == 200 and headers["Content-Type"] == "application/json" and body.startswith(b"{")
    status, headers, _ = both_ways(phone, ME, monkeypatch, negotiations, **extra)
    assert headers["Allow"] == "GET, PATCH, HEAD, OPTIONS"
    assert "Content-Security-Policy" in headers or "X-Frame-Options" in headers  # the middleware's, unchanged
    bad = both_ways(phone, "/api/v1/surveys?status=nope", monkeypatch, negotiations, **extra)
    assert bad[0] == 400 and error_code(bad) == "validation_error"


def test_refusals_are_the_same(phone, api_client, make_staff, site_ldn, monkeypatch, negotiations):
    token = ApiToken.objects.get(key_hash=ApiToken.hash_key(phone.token))
    user = phone.participant.user

    def refused(path):
        status, headers, body = both_ways(phone, path, monkeypatch, negotiations)
        assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="api"'
        assert error_code((status, headers, body)) == "not_authenticated"

    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    refused(ME), refused(SURVEYS)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() + timedelta(hours=1))
    user.is_active = False
    user.save(update_fields=["is_active"])
    refused(ME), refused(SURVEYS)
    user.is_active = True
    user.save(update_fields=["is_active"])
    assert both_ways(phone, ME, monkeypatch, negotiations)[0] == 200
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    refused(ME), refused(SURVEYS)

    # No token at all, an unknown one, a malformed header.
    for header in ({}, {"HTTP_AUTHORIZATION": "Bearer not-a-token"}, {"HTTP_AUTHORIZATION": "Bearer a b"}):
        api_client.credentials(**header)
        status, headers, _ = both_ways(api_client, ME, monkeypatch, negotiations)
        assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="api"'
    # A staff token: 403, the one permission policy.
    key, _ = token_issue(user=make_staff("coordinator", site=site_ldn), kind="staff", ttl=timedelta(hours=1))
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    for path in (ME, SURVEYS):
        forbidden = both_ways(api_client, path, monkeypatch, negotiations)
        assert forbidden[0] == 403 and error_code(forbidden) == "permission_denied"


def test_withdrawn_and_unconsented_participants_read_as_before(phone, monkeypatch, negotiations):
    import json

    p = phone.participant
    ConsentSignature.objects.filter(participant=p).delete()
    status, _, body = both_ways(phone, ME, monkeypatch, negotiations)
    assert status == 200 and json.loads(body)["consent"]["needs_consent"] is True
    Participant.objects.filter(pk=p.pk).update(status=ParticipantStatus.WITHDRAWN)
    status, _, body = both_ways(phone, ME, monkeypatch, negotiations)
    assert status == 200 and json.loads(body)["status"] == "withdrawn"
    assert both_ways(phone, SURVEYS, monkeypatch, negotiations)[0] == 200


class _Refuse(BaseThrottle):
    def allow_request(self, request, view):
        return False

    def wait(self):
        return 30


def test_throttles_still_run(phone, monkeypatch, negotiations):
    for view in (MeApi, SurveyListApi):
        monkeypatch.setattr(view, "throttle_classes", [_Refuse])
    for path in (ME, SURVEYS):
        status, headers, body = both_ways(phone, path, monkeypatch, negotiations)
        assert status == 429 and headers["Retry-After"] == "30" and error_code((status, headers, body)) == "throttled"


def test_other_requests_take_drf_dispatch(phone, negotiations):
    def negotiated(response):
        before = len(negotiations)
        negotiations.clear()
        assert before > 0  # DRF's negotiation ran for it
        return response

    negotiations.clear()
    assert negotiated(phone.get(ME, HTTP_ACCEPT="text/html")).status_code == 406  # refused by DRF, as before
    assert negotiated(phone.get(ME, {"format": "json"})).status_code == 200
    assert negotiated(phone.get(ME, HTTP_ACCEPT="application/json; indent=2")).content.startswith(b'{\n  "id"')
    assert negotiated(phone.options(ME)).status_code == 200
