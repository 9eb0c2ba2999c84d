"""Property-based conformance of the whole API (schemathesis 4) against the served OpenAPI schema, with a
participant's token: no server errors; status codes, content types and bodies as documented.

Runs in-process through the WSGI application (same database transaction as the test), with a bounded
number of examples per operation so the whole run stays well under two minutes. Each case gets a fresh
token (some operations, like logout, revoke the token they were called with).
"""

from datetime import timedelta

import pytest
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.openapi import from_wsgi

from trialsite.api.auth import token_issue

from .factories import make_instance, make_participant, sign_consent

EXAMPLES_PER_OPERATION = 12
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.mark.timeout(240)
def test_whole_api_conforms_to_its_schema(trial, site_ldn):
    participant, _ = make_participant(trial=trial, site=site_ldn)
    sign_consent(participant, at=timezone.now() - timedelta(hours=1))
    make_instance(participant, slug="daily-mood", opens_at=timezone.now() - timedelta(minutes=5))

    def headers():
        key, _ = token_issue(user=participant.user, kind="participant", ttl=timedelta(hours=1))
        return {"Authorization": f"Bearer {key}"}

    seen = _in_process(headers)
    # The token really reached the participant endpoints (not only 401/403 answers were checked).
    assert 200 in seen["GET /api/v1/me"] and 200 in seen["GET /api/v1/surveys"]


@pytest.mark.timeout(240)
def test_whole_api_conforms_to_its_schema_as_staff(trial, site_ldn, make_staff):
    """The staff half of the API with a token that reaches it: a coordinator of LDN who is also a
    statistician (registration, lists, randomisation, exports, analytics)."""
    staff = make_staff("coordinator", site=site_ldn)
    from trialsite.services import role_grant

    role_grant(user=staff, role="statistician")
    make_participant(trial=trial, site=site_ldn)

    def headers():
        key, _ = token_issue(user=staff, kind="staff", ttl=timedelta(hours=1))
        return {"Authorization": f"Bearer {key}"}

    seen = _in_process(headers)
    print({label: sorted(codes) for label, codes in seen.items() if "staff" in label})  # noqa: T201
    assert 200 in seen["GET /api/v1/staff/participants"]


def _in_process(headers):
    # Like Django's test client: keep the test's connection (and its transaction) across WSGI requests.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        return _run(headers)
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def _run(headers):
    schema = from_wsgi("/api/schema/?format=json", get_wsgi_application())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9  # every surveys endpoint at least
    labels = {op.label for op in operations}
    assert {"POST /api/v1/surveys/{instance_id}/response", "GET /api/v1/surveys", "POST /api/v1/sync"} <= labels
    failures: dict[str, str] = {}
    seen: dict[str, set[int]] = {}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            response = case.call(headers=headers())
            # run() is called right below, within this iteration: the loop variable is the current one.
            seen.setdefault(operation.label, set()).add(response.status_code)  # noqa: B023
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collect every failure, report all
            failures[operation.label] = str(exc)[:1500]
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
    return seen
