"""The bearer token lookup, compiled to SQL once per process (trialsite.compiled_query), still decides on every
request: a revoked or expired token, or a deactivated user, is refused at once (401 in the error shape); a
staff token finds no participant; the compiled query refuses inputs the ORM would have changed; PostgreSQL
runs it as a statement prepared once per connection, except behind a transaction pooler."""

from datetime import timedelta

import pytest
from django.utils import timezone

from trialsite.api.auth import token_issue
from trialsite.compiled_query import CompiledQuery
from trialsite.models import ApiToken

pytestmark = pytest.mark.django_db


def refused(response):
    return response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"


def test_revocation_expiry_and_deactivation_take_effect_on_the_next_request(phone):
    assert phone.get("/api/v1/me").status_code == 200
    token = ApiToken.objects.get(key_hash=ApiToken.hash_key(phone.token))

    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert refused(phone.get("/api/v1/me"))
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() + timedelta(hours=1))
    assert phone.get("/api/v1/me").status_code == 200

    user = phone.participant.user
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert refused(phone.get("/api/v1/me"))
    user.is_active = True
    user.save(update_fields=["is_active"])
    assert phone.get("/api/v1/me").status_code == 200

    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    assert refused(phone.get("/api/v1/me")) and refused(phone.get("/api/v1/surveys"))


def test_an_unknown_token_and_a_staff_token(phone, api_client, make_staff, site_ldn):
    api_client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert refused(api_client.get("/api/v1/me"))
    key, _ = token_issue(user=make_staff("coordinator", site=site_ldn), kind="staff", ttl=timedelta(hours=1))
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api_client.get("/api/v1/me").status_code == 403  # a staff token: no participant behind it
    assert api_client.get("/api/v1/staff/participants").status_code == 200


def test_a_compiled_query_refuses_placeholders_the_orm_prepares():
    # A JSON value reaches the driver wrapped (adapted), not as given: its placeholder is not found.
    query = CompiledQuery(lambda device: ApiToken.objects.filter(device=device), placeholders={"device": {"p": 1}})
    with pytest.raises(ValueError, match="placeholder"):
        query(device={"platform": "ios"})


def token_lookup_executions():
    """How often this database session ran its prepared token lookup (PostgreSQL's own count)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(generic_plans + custom_plans), 0) FROM pg_prepared_statements WHERE statement LIKE %s",
            ["%key_hash%"],
        )
        return cursor.fetchone()[0]


def test_the_token_lookup_is_prepared_on_the_connection_except_behind_a_transaction_pooler(phone, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    before = token_lookup_executions()
    assert phone.get("/api/v1/me").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert phone.get("/api/v1/me").status_code == 200
    assert token_lookup_executions() == before + 2  # the server ran the prepared statement, not a new query
    # A read: no audit-context set_config() in front of it (pghistory adds none to a SELECT either).
    assert queries.captured_queries[0]["sql"].startswith("EXECUTE trialsite_compiled_")

    # Behind PgBouncer in transaction pooling a prepared statement would not follow the client: plain queries.
    monkeypatch.setitem(connection.settings_dict, "DISABLE_SERVER_SIDE_CURSORS", True)
    before = token_lookup_executions()
    assert phone.get("/api/v1/me").status_code == 200
    assert token_lookup_executions() == before
    ApiToken.objects.filter(key_hash=ApiToken.hash_key(phone.token)).update(revoked_at=timezone.now())
    assert refused(phone.get("/api/v1/me"))
