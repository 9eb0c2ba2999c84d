"""Benchmark: the CPU one survey submission costs, against the bare Django view, measured in one process.

Run: .venv/bin/python -m trialsite.localstack -- .venv/bin/python bench/submit.py [REQUESTS] [--profile]

Creates a throw-away database (bench_submit), loads the demo protocol, one consented participant with enough open
survey instances, and calls, in process through the project's whole middleware stack (Django's test client, URLs of
bench/server: the project's plus /bench/bare), in turn REQUESTS times: the bare JSON view, POST
/api/v1/surveys/{id}/response (each with its own instance and Idempotency-Key) and POST /api/v1/sync with 10
responses per batch. For each it prints wall time and the CPU time per request of this process AND of its
PostgreSQL backend (read from /proc/<pg_backend_pid()>/stat), whose sum is what a server spends per request: on
a loaded machine the waits do not count, so the ratio bare/submission is the throughput ratio a CPU-bound
server would show (goal >= 0.2). bench/api.py measures the same over HTTP with wrk (req/s, p99).

--profile: cProfile (process CPU time) of the submissions, top entries by own time and by cumulative time.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trialsite.settings.test")
os.environ["TEST_DB_NAME"] = "bench_submit"

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

ANSWERS = {"mood": 60, "anxiety": 20, "energy": 55, "focus": 70, "dose_taken": True}
SYNC_BATCH = 10


def build(n: int) -> tuple[str, list[str]]:
    from django.contrib.auth import get_user_model

    from conftest import DEMO_PROTOCOL
    from participants.models import ConsentDocument, ConsentSignature, Participant, ParticipantStatus
    from surveys.models import Instrument, SurveyInstance
    from trialsite.api.auth import token_issue
    from trialsite.protocol.services import protocol_load_file, protocol_version_current
    from trialsite.services import site_create

    trial = protocol_load_file(path=DEMO_PROTOCOL).trial
    site = site_create(code="LDN", name="London", timezone="Europe/London", trials=[trial])
    user = get_user_model().objects.create_user("bench-phone", password=None)
    now = timezone.now()
    p = Participant.objects.create(
        study_id="BENCH-0001",
        trial=trial,
        site=site,
        user=user,
        status=ParticipantStatus.RANDOMISED,
        timezone="Europe/London",
        eligible=True,
        randomised_at=now,
        day0=now.date(),
        enrolled_at=now,
    )
    doc = ConsentDocument.objects.get(trial=trial, version="1.0")
    ConsentSignature.objects.create(participant=p, document=doc, method="electronic", sha256=doc.sha256, signed_at=now)
    inst = Instrument.objects.get(trial=trial, slug="daily-mood")
    version = protocol_version_current(trial)
    opens = now - timedelta(minutes=5)
    rows = SurveyInstance.objects.bulk_create(
        [
            SurveyInstance(
                participant=p,
                instrument=inst,
                schedule_key="bench",
                study_day=i,
                timezone="Europe/London",
                local_date=opens.date(),
                opens_at=opens,
                closes_at=opens + timedelta(hours=6),
                grace_until=opens + timedelta(hours=6),
                protocol_version_id=version.pk,
            )
            for i in range(n)
        ],
        batch_size=5000,
    )
    key, _ = token_issue(user=user, kind="participant", ttl=timedelta(hours=2))
    return key, [str(r.uuid) for r in rows]


def backend_cpu(pid: int) -> float:
    """CPU seconds (user + system) the PostgreSQL backend process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    import cProfile
    import io
    import pstats

    from django.test import Client, override_settings

    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    profile = "--profile" in sys.argv
    n = int(args[0]) if args else 500
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        token, instances = build(n * (1 + SYNC_BATCH) + 50)
        todo = iter(instances)
        client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR="127.0.0.1")

        def bare():
            assert client.get("/bench/bare").status_code == 200

        def submit():
            body = json.dumps({"answers": ANSWERS, "authored": timezone.now().isoformat()})
            r = client.post(
                f"/api/v1/surveys/{next(todo)}/response",
                body,
                "application/json",
                HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
            )
            assert r.status_code == 201, r.content

        def sync():
            items = [
                {"kind": "response", "idempotency_key": str(uuid.uuid4()), "instance": next(todo), "answers": ANSWERS}
                | {"authored": timezone.now().isoformat()}
                for _ in range(SYNC_BATCH)
            ]
            r = client.post("/api/v1/sync", json.dumps({"items": items}), "application/json")
            assert r.status_code == 200 and [x["status"] for x in r.json()["results"]] == [201] * SYNC_BATCH

        with override_settings(ROOT_URLCONF="bench.server.urls", DEBUG=False):
            for _ in range(20):  # warm-up: imports, the connection, the protocol and instrument caches
                bare()
                submit()
            sync()
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pid = cursor.fetchone()[0]
            results = {}
            for name, fn, count in (
                ("bare Django JSON view", bare, n),
                ("POST .../response", submit, n),
                (f"POST /sync ({SYNC_BATCH} responses)", sync, max(1, n // SYNC_BATCH)),
            ):
                profiler = cProfile.Profile(time.process_time) if profile and fn is submit else None
                wall, cpu, pg = time.perf_counter(), time.process_time(), backend_cpu(pid)
                if profiler:
                    profiler.enable()
                for _ in range(count):
                    fn()
                if profiler:
                    profiler.disable()
                wall, cpu, pg = time.perf_counter() - wall, time.process_time() - cpu, backend_cpu(pid) - pg
                results[name] = (wall / count, cpu / count, pg / count)
                if profiler:
                    profiler.dump_stats(Path(tempfile.gettempdir()) / "bench-submit.pstats")
                    for order in ("tottime", "cumulative"):
                        out = io.StringIO()
                        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(25)
                        print(out.getvalue().split("\n", 4)[-1])
        print(f"in process, Django test client, {n} requests each{' (submissions under cProfile)' if profile else ''}")
        print(f"{'':32s} {'wall ms':>8s} {'app CPU ms':>11s} {'pg CPU ms':>10s} {'total CPU ms':>13s}")
        for name, (wall, cpu, pg) in results.items():
            print(f"{name:32s} {wall * 1000:8.2f} {cpu * 1000:11.2f} {pg * 1000:10.2f} {(cpu + pg) * 1000:13.2f}")
        bare_cpu = sum(results["bare Django JSON view"][1:])
        sub_cpu = sum(results["POST .../response"][1:])
        sync_item = sum(results[f"POST /sync ({SYNC_BATCH} responses)"][1:]) / SYNC_BATCH
        print(f"CPU per response in /sync: {sync_item * 1000:.2f} ms")
        print(f"ratio bare CPU / submission CPU: {bare_cpu / sub_cpu:.2f} (goal >= 0.2)")
    finally:
        connection.close()
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
