from django.conf import settings
from django.db import connection
from django.http import JsonResponse


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "down"; the message is reported
        return f"down: {type(exc).__name__}"


def check_broker() -> str:
    import redis

    try:
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        return "ok"
    except Exception as exc:  # noqa: BLE001
        return f"down: {type(exc).__name__}"


def health(request):
    """GET /health → 200 {"database": "ok", "broker": "ok"} or 503 naming what is down."""
    result = {"database": check_database(), "broker": check_broker()}
    ok = all(v == "ok" for v in result.values())
    return JsonResponse(result, status=200 if ok else 503)
