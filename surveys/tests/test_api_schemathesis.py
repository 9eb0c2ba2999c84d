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
    # Like Django's test client: keep the test's connection (and its transaction) across WSGI requests.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        _run(participant)
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def _run(participant):
    schema = from_wsgi("/api/schema/?format=json", get_wsgi_application())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9  # every surveys endpoint at least
    labels = {op.label for op in operations}
    assert {"POST /api/v1/surveys/{instance_id}/response", "GET /api/v1/surveys", "POST /api/v1/sync"} <= labels
    failures: dict[str, str] = {}
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
            key, _ = token_issue(user=participant.user, kind="participant", ttl=timedelta(hours=1))
            response = case.call(headers={"Authorization": f"Bearer {key}"})
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collect every failure, report all
            failures[operation.label] = str(exc)[:1500]
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
