"""The bearer token lookup, one statement prepared once per connection (trialsite.api.auth), still decides on every
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


def test_last_used_at_is_written_by_the_lookup_at_most_once_per_refresh_interval(phone):
    """The lookup's own statement refreshes last_used_at, only when it is older than LAST_USED_REFRESH (one write a
    minute per phone, not one per request); the clock is injected."""
    from trialsite.api.auth import LAST_USED_REFRESH, token_lookup

    token = ApiToken.objects.get(key_hash=ApiToken.hash_key(phone.token))
    t0 = token.expires_at - timedelta(days=1)

    def last_used():
        return ApiToken.objects.values_list("last_used_at", flat=True).get(pk=token.pk)

    found = token_lookup(key=phone.token, now=t0)
    assert found.token.pk == token.pk and found.user.pk == phone.participant.user_id
    assert found.joined["phone"].participant.pk == phone.participant.pk
    assert last_used() == t0
    assert token_lookup(key=phone.token, now=t0 + LAST_USED_REFRESH - timedelta(seconds=1)) is not None
    assert last_used() == t0  # within the interval: no write
    later = t0 + LAST_USED_REFRESH + timedelta(seconds=1)
    assert token_lookup(key=phone.token, now=later) is not None
    assert last_used() == later

    # Expiry is decided on the same injected clock; a refused token is not touched.
    assert token_lookup(key=phone.token, now=token.expires_at) is None
    assert last_used() == later
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=t0)
    assert token_lookup(key=phone.token, now=later + timedelta(hours=1)) is None
    assert last_used() == later


def test_a_staff_token_reads_no_participant_and_gets_403_in_one_query(
    phone, api_client, make_staff, site_ldn, django_assert_num_queries
):
    from trialsite.api.auth import token_lookup

    staff = make_staff("coordinator", site=site_ldn)
    key, _ = token_issue(user=staff, kind="staff", ttl=timedelta(hours=1))
    found = token_lookup(key=key, now=timezone.now())
    assert found.user.pk == staff.pk and found.joined["phone"].participant is None
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api_client.get("/api/v1/me").status_code == 403  # warm
    with django_assert_num_queries(1):  # the token statement; it found no participant, nothing else is asked
        assert api_client.get("/api/v1/me").status_code == 403


def test_the_lookup_builds_the_same_instances_as_the_orm(phone):
    """The token statement reads times as UTC wall times and builds instances without Model.__init__
    (trialsite.api.auth._Columns): every column of the token, user, participant, trial and site, and the consent
    rows, equal what the ORM reads, timestamps with the same tzinfo; the instances are saved rows of the default
    database and behave as ORM instances (deferred nothing, related objects cached)."""
    from django.contrib.auth import get_user_model

    from participants.models import ConsentSignature, Participant
    from trialsite.api.auth import token_lookup
    from trialsite.models import Site, Trial

    p = phone.participant
    now = timezone.now()
    ApiToken.objects.filter(key_hash=ApiToken.hash_key(phone.token)).update(last_used_at=now - timedelta(seconds=5))
    found = token_lookup(key=phone.token, now=now)
    joined = found.joined["phone"]
    pairs = [
        (found.token, ApiToken.objects.get(key_hash=ApiToken.hash_key(phone.token))),
        (found.user, get_user_model().objects.get(pk=p.user_id)),
        (joined.participant, Participant.objects.get(pk=p.pk)),
        (joined.participant.trial, Trial.objects.get(pk=p.trial_id)),
        (joined.participant.site, Site.objects.get(pk=p.site_id)),
    ]
    for built, orm in pairs:
        assert type(built) is type(orm) and built.get_deferred_fields() == set()
        assert not built._state.adding and built._state.db == "default"
        for field in orm._meta.concrete_fields:
            got, want = getattr(built, field.attname), getattr(orm, field.attname)
            assert got == want and type(got) is type(want), field.attname
            if hasattr(want, "tzinfo"):
                assert got.tzinfo is want.tzinfo, field.attname
    assert found.token.last_used_at == now - timedelta(seconds=5)  # not refreshed within the interval
    assert found.token.user is found.user and joined.participant.user is found.user
    signature = ConsentSignature.objects.get(participant=p)
    (row,) = joined.consent_signatures
    assert (row.pk, row.document_id, row.signed_at) == (signature.pk, signature.document_id, signature.signed_at)
    assert row.signed_at.tzinfo is signature.signed_at.tzinfo
    # An ORM instance still: it saves the one field asked, and refreshes.
    joined.participant.timezone = "Europe/Paris"
    joined.participant.save(update_fields=["timezone"])
    assert Participant.objects.get(pk=p.pk).timezone == "Europe/Paris"
