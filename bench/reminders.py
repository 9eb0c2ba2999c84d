"""Benchmark: sweep + enqueue of 10,000 due reminders vs. enqueuing 10,000 no-op tasks.

Run: .venv/bin/python -m trialsite.localstack -- .venv/bin/python bench/reminders.py [N]

Uses a throw-away database (bench_reminders, created and dropped here) and private Redis queues that are
deleted afterwards. Prints wall times, SQL query counts (total and per claim batch) and the ratio.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trialsite.settings.test")
os.environ["TEST_DB_NAME"] = "bench_reminders"

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402


def build(n: int, trial, site, now) -> None:
    from participants.models import Participant, ParticipantStatus
    from surveys.models import Instrument, SurveyInstance

    pv = trial.current_protocol
    inst = Instrument.objects.filter(trial=trial, slug="daily-mood").first() or Instrument.objects.create(
        trial=trial, slug="daily-mood", version=1, title="daily", definition={}, protocol_version=pv
    )
    tag = uuid.uuid4().hex[:6]
    people = Participant.objects.bulk_create(
        [
            Participant(
                study_id=f"B{tag}-{i:06d}",
                trial=trial,
                site=site,
                status=ParticipantStatus.RANDOMISED,
                timezone="Europe/London",
                channels=["push"],
                push_token=f"t{i}",
                randomised_at=now,
                day0=now.date(),
                eligible=True,
            )
            for i in range(n)
        ],
        batch_size=2000,
    )
    opens = now - timedelta(minutes=1)
    SurveyInstance.objects.bulk_create(
        [
            SurveyInstance(
                participant=p,
                instrument=inst,
                schedule_key=f"bench-{tag}",
                study_day=1,
                timezone="Europe/London",
                local_date=opens.date(),
                opens_at=opens,
                closes_at=opens + timedelta(hours=4),
                grace_until=opens + timedelta(hours=4),
                protocol_version=pv,
            )
            for p in people
        ],
        batch_size=2000,
    )


def main() -> None:
    from surveys.reminders import services
    from surveys.tasks import reminders_sweep
    from trialsite.celery import app
    from trialsite.protocol.services import protocol_load_file
    from trialsite.services import site_create

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    queues = [f"bench-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    try:
        result = protocol_load_file(path=Path(__file__).resolve().parent.parent / "protocols" / "microdose-mood.yaml")
        trial = result.trial
        site = site_create(code="BEN", name="Bench", timezone="Europe/London", trials=[trial])
        app.send_task("trialsite.tasks.heartbeat", queue=queues[2])  # warm the broker connection

        # Baseline: 10,000 no-op tasks, the plain way (one apply per task).
        t0 = time.perf_counter()
        for _ in range(n):
            app.send_task("bench.noop", kwargs={"reminder_id": 1}, queue=queues[0])
        baseline = time.perf_counter() - t0

        for size, label in ((n // 10, "small"), (n, "full")):
            now = timezone.now()
            build(size, trial, site, now)
            with CaptureQueriesContext(connection) as ctx:
                t0 = time.perf_counter()
                stats = reminders_sweep(now=now + timedelta(seconds=1), queue=queues[1])
                wall = time.perf_counter() - t0
            claims = [
                q
                for q in ctx.captured_queries
                if "FOR UPDATE SKIP LOCKED" in q["sql"] and "surveys_reminder" in q["sql"]
            ]
            print(
                f"[{label}] N={size:>6}: sweep+enqueue {wall:.3f} s, planned={stats['planned']}, "
                f"claimed={stats['claimed']}, SQL queries total={len(ctx.captured_queries)} (incl. BEGIN/COMMIT), "
                f"claim batches of {services.BATCH}: {len(claims)}, "
                "queries per batch: 4 (BEGIN, SELECT ... FOR UPDATE SKIP LOCKED, UPDATE, COMMIT)"
            )
            with app.connection_for_read() as conn:
                assert conn.default_channel.client.llen(queues[1]) >= stats["claimed"]
                conn.default_channel.client.delete(queues[1])
        print(f"baseline: enqueue {n} no-op tasks {baseline:.3f} s")
        print(
            f"ratio (sweep+enqueue of {n} due reminders / enqueue of {n} no-op tasks): {wall / baseline:.2f} (goal <= 2)"
        )
    finally:
        with app.connection_for_read() as conn:
            for q in queues:
                conn.default_channel.client.delete(q)
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
