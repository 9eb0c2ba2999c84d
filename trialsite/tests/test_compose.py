"""docker-compose.yml: the production shape, validated against the Compose specification's JSON schema
(compose_spec.json, from the compose-spec project, as shipped with docker-compose 1.29)."""

import json
from pathlib import Path

import jsonschema
import yaml
from django.conf import settings

DATA = Path(__file__).parent / "data"


def load_compose() -> dict:
    return yaml.safe_load((Path(settings.BASE_DIR) / "docker-compose.yml").read_text())


def test_compose_file_is_valid_compose_spec():
    schema = json.loads((DATA / "compose_spec.json").read_text())
    jsonschema.Draft201909Validator(schema).validate(load_compose())


def test_compose_runs_the_production_shape():
    compose = load_compose()
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "migrate", "web", "worker", "worker-exports", "beat"}
    for name, service in services.items():
        if name != "migrate":  # the one-shot migration service exits; the rest must say whether they are healthy
            assert "healthcheck" in service, f"{name} has no health check"
    assert "gunicorn" in " ".join(services["web"]["command"])
    assert services["worker"]["command"][:4] == ["celery", "-A", "trialsite", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "trialsite", "beat"]
    for name in ("web", "worker", "worker-exports", "beat"):
        assert services[name]["env_file"] == ".env"
        assert services[name]["image"] == "trialsite:latest"
    assert set(compose["volumes"]) == {"pgdata", "redisdata", "appdata"}


def test_web_worker_and_beat_wait_for_migrations():
    services = load_compose()["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert migrate["restart"] == "no"  # a one-shot: never restarted in a loop
    assert "migrate" not in migrate["depends_on"]
    for name in ("web", "worker", "worker-exports", "beat"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
        assert "migrate" not in " ".join(services[name]["command"]), f"{name} migrates itself"


def test_each_worker_pool_takes_its_own_queues():
    """Reminders, outbox e-mails and sweeps (the default queue) never wait behind exports (their own pool)."""
    from trialsite.celery import app

    services = load_compose()["services"]

    def queues(name):
        command = services[name]["command"]
        return set(command[command.index("-Q") + 1].split(","))

    router = app.amqp.router
    export_queue = router.route({}, "analytics.tasks.export_job_run")["queue"].name
    assert export_queue == settings.EXPORT_QUEUE == "exports"
    default = {router.route({}, name)["queue"].name for name in ("surveys.reminders.send", "trialsite.outbox.deliver")}
    assert default == {app.conf.task_default_queue} == {"celery"}
    assert queues("worker") == {"celery"}
    assert queues("worker-exports") == {"exports"}


def test_env_example_documents_every_production_variable():
    text = (Path(settings.BASE_DIR) / ".env.example").read_text()
    for var in ("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL", "FIELD_ENCRYPTION_KEY"):
        assert f"{var}=" in text
