import time

import pytest
from django.test import override_settings

from trialsite.celery import app
from trialsite.models import Heartbeat


@pytest.mark.django_db
def test_health_ok(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"database": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_health_broker_down_is_503_naming_it(client):
    from trialsite.localstack import free_port

    with override_settings(CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0"):
        response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "ok"
    assert body["broker"].startswith("down")


def test_health_database_down_is_503(client, monkeypatch):
    from trialsite.api import health

    monkeypatch.setattr(health, "check_database", lambda: "down: OperationalError")
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["database"].startswith("down")


def test_celery_is_configured_for_safe_at_least_once():
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.task_time_limit and conf.task_soft_time_limit < conf.task_time_limit
    assert conf.broker_transport_options["visibility_timeout"] >= 3600
    assert conf.worker_prefetch_multiplier == 1
    assert "heartbeat" in conf.beat_schedule


@pytest.mark.worker
def test_a_real_worker_runs_a_task(celery_worker_process):
    queue, start, _stop = celery_worker_process
    start()
    app.send_task("trialsite.tasks.heartbeat", kwargs={"source": queue}, queue=queue)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if Heartbeat.objects.filter(source=queue, count=1).exists():
            break
        time.sleep(0.2)
    assert Heartbeat.objects.get(source=queue).count == 1
