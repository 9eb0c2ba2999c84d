from celery import shared_task
from django.core.cache import cache  # noqa: F401  (imported so worker boot fails loudly on bad settings)

from .models import Heartbeat


@shared_task(name="trialsite.tasks.heartbeat")
def heartbeat(source: str = "beat") -> int:
    """Records that a worker ran a task (health and the worker smoke test). Idempotent per source."""
    return Heartbeat.beat(source=source)


# --- Transactional outbox (trialsite.outbox): thin tasks over its services ---------------------------------


@shared_task(name="trialsite.outbox.deliver", acks_late=True, ignore_result=True, soft_time_limit=50, time_limit=60)
def outbox_deliver(message_id: int) -> str:
    from . import outbox

    return outbox.outbox_deliver(message_id=message_id)


@shared_task(name="trialsite.outbox.sweep", acks_late=True, ignore_result=True)
def outbox_sweep() -> int:
    from . import outbox

    return outbox.outbox_sweep()
