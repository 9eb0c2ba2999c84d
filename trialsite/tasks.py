from celery import shared_task
from django.core.cache import cache  # noqa: F401  (imported so worker boot fails loudly on bad settings)

from .models import Heartbeat


@shared_task(name="trialsite.tasks.heartbeat")
def heartbeat(source: str = "beat") -> int:
    """Records that a worker ran a task (health and the worker smoke test). Idempotent per source."""
    return Heartbeat.beat(source=source)
