"""Benchmark: the survey submission endpoint vs. a trivial authenticated endpoint (GET /api/v1/me).

Run: .venv/bin/python -m trialsite.localstack -- .venv/bin/python bench/submit.py [REQUESTS] [CLIENTS]

Creates a throw-away database (bench_submit), loads the demo protocol, one consented participant with
REQUESTS open survey instances, starts gunicorn on 127.0.0.1 against that database and drives both
endpoints with CLIENTS concurrent keep-alive clients (bounded load, local only). Prints requests/s, p50 and
p99 latency of each, and the ratio submit/me (goal >= 0.5, submission p99 < 100 ms). Drops the database.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trialsite.settings.test")
os.environ["TEST_DB_NAME"] = "bench_submit"

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(n: int) -> tuple[str, list[str]]:
    from django.contrib.auth import get_user_model

    from conftest import DEMO_PROTOCOL
    from participants.models import ConsentDocument, ConsentSignature, Participant, ParticipantStatus
    from surveys.models import Instrument, SurveyInstance
    from trialsite.api.auth import token_issue
    from trialsite.protocol.services import protocol_load_file
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
                protocol_version=trial.current_protocol,
            )
            for i in range(n)
        ],
        batch_size=2000,
    )
    key, _ = token_issue(user=user, kind="participant", ttl=timedelta(hours=2))
    return key, [str(r.uuid) for r in rows]


def database_url() -> str:
    s = connection.settings_dict
    return (
        f"postgresql://{s['USER']}:{quote(s['PASSWORD'] or '')}@{quote(s['HOST'] or '', safe='')}"
        f"{':' + str(s['PORT']) if s['PORT'] else ''}/{s['NAME']}"
    )


def drive(
    port: int, requests: list[tuple[str, str, dict | None, dict]], clients: int
) -> tuple[float, list[float], dict]:
    """Send the requests split over `clients` keep-alive connections; → (wall seconds, latencies, status counts)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    chunks = [requests[i::clients] for i in range(clients)]

    def worker(chunk):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, codes = [], {}
        for method, path, body, headers in chunk:
            payload = json.dumps(body).encode() if body is not None else None
            t0 = time.perf_counter()
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            resp.read()
            mine.append(time.perf_counter() - t0)
            codes[resp.status] = codes.get(resp.status, 0) + 1
        conn.close()
        with lock:
            latencies.extend(mine)
            for k, v in codes.items():
                statuses[k] = statuses.get(k, 0) + v

    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, latencies, statuses


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    server = None
    try:
        token, instances = build(n + clients * 5)
        env = dict(
            os.environ,
            DATABASE_URL=database_url(),
            DJANGO_SETTINGS_MODULE="trialsite.settings.development",
            DJANGO_DEBUG="0",
            DB_CONN_MAX_AGE="600",
            LOG_LEVEL="ERROR",
        )
        port = free_port()
        connection.close()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "trialsite.wsgi",
                "-b",
                f"127.0.0.1:{port}",
                "-w",
                "2",
                "--keep-alive",
                "30",
                "--log-level",
                "error",
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        for _ in range(150):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                c.request("GET", "/health")
                if c.getresponse().status in (200, 503):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit("gunicorn did not start")
        auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        answers = {"mood": 60, "anxiety": 20, "energy": 55, "focus": 70, "dose_taken": True}

        def submissions(ids):
            return [
                (
                    "POST",
                    f"/api/v1/surveys/{i}/response",
                    {"answers": answers, "authored": timezone.now().isoformat()},
                    auth | {"Idempotency-Key": str(uuid.uuid4())},
                )
                for i in ids
            ]

        # Warm up both endpoints (connections, imports, caches) before measuring.
        drive(port, [("GET", "/api/v1/me", None, auth)] * (clients * 5), clients)
        drive(port, submissions(instances[n:]), clients)
        me_wall, me_lat, me_codes = drive(port, [("GET", "/api/v1/me", None, auth)] * n, clients)
        sub_wall, sub_lat, sub_codes = drive(port, submissions(instances[:n]), clients)
        me_rps, sub_rps = n / me_wall, n / sub_wall
        print(f"requests per endpoint: {n}, concurrent clients: {clients}, gunicorn workers: 2")
        print(
            f"GET  /api/v1/me                 {me_rps:8.1f} req/s  p50 {pct(me_lat, 50):6.1f} ms  "
            f"p99 {pct(me_lat, 99):6.1f} ms  status {me_codes}"
        )
        print(
            f"POST /api/v1/surveys/{{id}}/response {sub_rps:8.1f} req/s  p50 {pct(sub_lat, 50):6.1f} ms  "
            f"p99 {pct(sub_lat, 99):6.1f} ms  status {sub_codes}"
        )
        print(
            f"ratio submit/me: {sub_rps / me_rps:.2f} (goal >= 0.5); submission p99 {pct(sub_lat, 99):.1f} ms "
            f"(goal < 100 ms); mean {statistics.mean(sub_lat) * 1000:.1f} ms"
        )
        if sub_codes.get(201) != n:
            raise SystemExit(f"unexpected submission statuses: {sub_codes}")
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
        connection.close()
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
