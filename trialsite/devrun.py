"""`make run`: migrate, load the demo, then run web + Celery worker + Celery beat until Ctrl-C.

Runs inside `python -m trialsite.localstack` (which provides DATABASE_URL and REDIS_URL).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def run(*args: str) -> None:
    subprocess.run([PY, "manage.py", *args], cwd=ROOT, check=True)


def main() -> int:
    port = os.environ.get("PORT", "8000")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trialsite.settings.development")
    local = Path(os.environ.get("TRIALSITE_LOCAL_DIR", ROOT / ".local"))
    if not os.environ.get("WEBPUSH_VAPID_PRIVATE_KEY"):
        # Web Push works locally with no setup: a development VAPID pair under .local/webpush/ (made once).
        from trialsite.vapid import dev_keys_ensure

        os.environ.update(dev_keys_ensure(local))
    run("migrate", "--noinput")
    run("collectstatic", "--noinput", "-v", "0")
    # DEMO_DESIGNS=crossover,self-blinding (or all): also load those designs as demo trials (manage.py demo --design).
    designs = [d.strip() for d in os.environ.get("DEMO_DESIGNS", "").split(",") if d.strip()]
    run("demo", *(arg for d in (["parallel", *designs] if designs else []) for arg in ("--design", d)))
    (local / "beat").mkdir(parents=True, exist_ok=True)
    procs = [
        subprocess.Popen(
            [
                PY,
                "-m",
                "gunicorn",
                "trialsite.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--access-logfile",
                "-",
            ],
            cwd=ROOT,
        ),
        subprocess.Popen(
            # One development worker consumes both queues (production runs a pool for each: docker-compose.yml).
            [PY, "-m", "celery", "-A", "trialsite", "worker", "-Q", "celery,exports", "--loglevel", "INFO"]
            + ["--concurrency", "2"],
            cwd=ROOT,
        ),
        subprocess.Popen(
            [
                PY,
                "-m",
                "celery",
                "-A",
                "trialsite",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(local / "beat" / "celerybeat-schedule"),
            ],
            cwd=ROOT,
        ),
    ]
    # `python manage.py …` in another terminal finds these servers (trialsite.localstack.development_environment).
    from trialsite.localstack import stack_remove, stack_write

    stack_write(database_url=os.environ["DATABASE_URL"], redis_url=os.environ["REDIS_URL"])
    print(f"\ntrialsite is running: http://127.0.0.1:{port}/admin/  (API docs: /api/docs/, health: /health)")
    print("Ctrl-C stops the web server, the worker, beat and the embedded PostgreSQL and Redis.\n", flush=True)

    stopping = False

    def stop(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping and all(p.poll() is None for p in procs):
            time.sleep(0.5)
    finally:
        stack_remove()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
