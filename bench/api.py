"""Benchmark: the phone API against Django's own floor, in one gunicorn, driven by one load generator (wrk).

Run: .venv/bin/python -m trialsite.localstack -- .venv/bin/python bench/api.py [SECONDS] [CLIENTS]
     .venv/bin/python -m trialsite.localstack -- .venv/bin/python bench/api.py --profile|--cpu [REQUESTS] [ENDPOINTS]

Creates a throw-away database (bench_api), loads the demo protocol, one consented participant with enough open
survey instances, starts gunicorn (2 sync workers, development settings with DEBUG off, persistent database
connections) with bench/server/settings.py, which adds one bench-only URL: /bench/bare, a trivial JSON view behind
the project's whole middleware stack. wrk (Debian's; installed when missing and root) drives, in turn, the bare
view, GET /api/v1/me, GET /api/v1/surveys?status=open (a second participant, 90 daily instances) and
POST /api/v1/surveys/{id}/response (a Lua script gives every request its own instance and Idempotency-Key) for
SECONDS each with CLIENTS connections. Prints req/s and p99 of each, the ratios to the bare view (goals: /me >= 0.5,
submission >= 0.2) and the submission's p99 (goal < 50 ms at 4 clients). Also the server
CPU per request (gunicorn processes + the PostgreSQL backends of the bench database, from /proc, around each run)
and the same ratios by it: on a shared, loaded machine req/s moves with the others' load, CPU per request much less.

--profile: no server; pyinstrument over REQUESTS in-process calls of each endpoint (Django's test client, same
middleware, DEBUG off as in the gunicorn run), printing where the (wall) time goes.
--cpu: the same calls under cProfile timed by process CPU time (a loaded machine's waits do not count), printing
the top entries by own CPU time and by cumulative CPU time. ENDPOINTS (comma-separated: bare, me, surveys, submit;
default all) limits the profile to some of them. Each endpoint is first timed without a profiler (the "unprofiled" CPU
per request). /surveys is GET /api/v1/surveys?status=open of a second participant with a 90-day history.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trialsite.settings.test")
os.environ["TEST_DB_NAME"] = "bench_api"

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

SURVEYS = "/api/v1/surveys?status=open"
ANSWERS = {"mood": 60, "anxiety": 20, "energy": 55, "focus": 70, "dose_taken": True}

POST_LUA = r"""
-- Each wrk thread takes every Nth line of the file: "instance-uuid idempotency-key".
local counter = 1
local lines = {}
local threads = {}
local n_threads = 0

function setup(thread)
  thread:set("tid", n_threads)
  n_threads = n_threads + 1
  table.insert(threads, thread)
end

function init(args)
  local path, total = args[1], tonumber(args[2])
  local i = 0
  for line in io.lines(path) do
    if i % total == tid then table.insert(lines, line) end
    i = i + 1
  end
  body = args[3]
end

function request()
  local line = lines[counter]
  if line == nil then line = lines[#lines] end  -- exhausted: replays (counted as non-2xx if any)
  counter = counter + 1
  local id, key = line:match("(%S+) (%S+)")
  return wrk.format("POST", "/api/v1/surveys/" .. id .. "/response",
    {["Authorization"] = wrk.headers["Authorization"], ["Content-Type"] = "application/json",
     ["Idempotency-Key"] = key}, body)
end
"""


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


def build_history(days: int = 90) -> str:
    """A second participant with a realistic history for GET /api/v1/surveys?status=open: one daily instance
    for `days` days (the last one open now), consented. Returns its token."""
    from django.contrib.auth import get_user_model

    from participants.models import ConsentDocument, ConsentSignature, Participant, ParticipantStatus
    from surveys.models import Instrument, SurveyInstance
    from trialsite.api.auth import token_issue
    from trialsite.models import Site
    from trialsite.protocol.services import protocol_version_current

    first = Participant.objects.get(study_id="BENCH-0001")
    user = get_user_model().objects.create_user("bench-phone-2", password=None)
    now = timezone.now()
    p = Participant.objects.create(
        study_id="BENCH-0002",
        trial=first.trial,
        site=Site.objects.get(pk=first.site_id),
        user=user,
        status=ParticipantStatus.RANDOMISED,
        timezone="Europe/London",
        eligible=True,
        randomised_at=now - timedelta(days=days),
        day0=(now - timedelta(days=days)).date(),
        enrolled_at=now - timedelta(days=days),
    )
    doc = ConsentDocument.objects.get(trial=first.trial, version="1.0")
    ConsentSignature.objects.create(participant=p, document=doc, method="electronic", sha256=doc.sha256, signed_at=now)
    inst = Instrument.objects.get(trial=first.trial, slug="daily-mood")
    version = protocol_version_current(first.trial)
    SurveyInstance.objects.bulk_create(
        [
            SurveyInstance(
                participant=p,
                instrument=inst,
                schedule_key="bench-history",
                study_day=day,
                timezone="Europe/London",
                local_date=(opens := now - timedelta(days=days - 1 - day, minutes=5)).date(),
                opens_at=opens,
                closes_at=opens + timedelta(hours=6),
                grace_until=opens + timedelta(hours=6),
                protocol_version_id=version.pk,
            )
            for day in range(days)
        ]
    )
    key, _ = token_issue(user=user, kind="participant", ttl=timedelta(hours=2))
    return key


def database_url() -> str:
    s = connection.settings_dict
    return (
        f"postgresql://{s['USER']}:{quote(s['PASSWORD'] or '')}@{quote(s['HOST'] or '', safe='')}"
        f"{':' + str(s['PORT']) if s['PORT'] else ''}/{s['NAME']}"
    )


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, capture_output=True)
        if not shutil.which("wrk"):
            subprocess.run(["apt-get", "update"], check=False, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)
        return shutil.which("wrk")
    raise SystemExit("wrk is missing: apt-get install -y wrk (as root)")


def to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(wrk: str, url: str, *, seconds: int, clients: int, token: str, lua: list[str] | None = None) -> dict:
    threads = min(2, clients)
    cmd = [wrk, f"-t{threads}", f"-c{clients}", f"-d{seconds}s", "--latency", "-H", f"Authorization: Bearer {token}"]
    if lua:
        cmd += ["-s", lua[0], url, "--", *lua[1:]]
    else:
        cmd.append(url)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50": to_ms(re.search(r"\s50%\s+(\S+)", out).group(1)),
        "p99": to_ms(re.search(r"\s99%\s+(\S+)", out).group(1)),
        "non2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def server_cpu_seconds(server_pid: int, database: str, postmaster: int) -> tuple[float, float]:
    """CPU (user + system) used so far by the server side of the benchmark: the gunicorn master and workers,
    and the PostgreSQL backends connected to the benchmark's database, children of this run's own server (another
    checkout's benchmark on the same machine has a database of the same name). Read around each wrk run, it gives
    the server CPU one request costs: a figure that other load on the machine changes much less than req/s.
    Returns (gunicorn, PostgreSQL) seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    web = db = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ppid, pgid = int(fields[1]), int(fields[2])
        used = int(fields[11]) + int(fields[12])  # utime, stime
        if pgid == server_pid or ppid == server_pid or int(entry.name) == server_pid:
            web += used
        elif ppid == postmaster and cmdline.startswith("postgres: ") and f" {database} " in cmdline:
            db += used
    return web / tick, db / tick


def start_gunicorn(port: int) -> subprocess.Popen:
    env = dict(
        os.environ,
        DATABASE_URL=database_url(),
        DJANGO_SETTINGS_MODULE="bench.server.settings",
        DJANGO_DEBUG="0",
        DB_CONN_MAX_AGE="600",
        LOG_LEVEL="ERROR",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "trialsite.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2"]
        + ["--keep-alive", "30", "--log-level", "error"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    import http.client

    for _ in range(300):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/bench/bare")
            if c.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.1)
    os.killpg(server.pid, signal.SIGTERM)
    raise SystemExit("gunicorn did not start")


def bench(seconds: int, clients: int) -> None:
    wrk = ensure_wrk()
    # Enough instances for every submission at a generous rate (each request needs its own open instance).
    n = max(4000, 900 * (seconds + 1))
    token, instances = build(n)
    history_token = build_history()
    database = connection.settings_dict["NAME"]
    with connection.cursor() as cursor:  # this run's PostgreSQL server: the parent of this connection's backend
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    postmaster = int((Path("/proc") / str(backend) / "stat").read_text().rsplit(")", 1)[1].split()[1])
    connection.close()
    port = free_port()
    server = start_gunicorn(port)

    def measured(url: str, **kwargs) -> dict:
        web, db = server_cpu_seconds(server.pid, database, postmaster)
        result = run_wrk(wrk, url, seconds=seconds, clients=clients, **kwargs)
        web_after, db_after = server_cpu_seconds(server.pid, database, postmaster)
        n = max(result["requests"], 1)
        result["web_ms"], result["db_ms"] = (web_after - web) * 1000 / n, (db_after - db) * 1000 / n
        result["cpu_ms"] = result["web_ms"] + result["db_ms"]
        return result

    base = f"http://127.0.0.1:{port}"
    body = json.dumps({"answers": ANSWERS, "authored": timezone.now().isoformat()})
    try:
        with tempfile.TemporaryDirectory() as tmp:
            lua = Path(tmp) / "post.lua"
            lua.write_text(POST_LUA)
            warm_ids, ids = Path(tmp) / "warm.txt", Path(tmp) / "ids.txt"
            warm_ids.write_text("".join(f"{i} {uuid.uuid4()}\n" for i in instances[:200]))
            ids.write_text("".join(f"{i} {uuid.uuid4()}\n" for i in instances[200:]))
            threads = str(min(2, clients))
            post = [str(lua), str(warm_ids), threads, body]
            # Warm-up: connections, imports, the protocol cache, in both workers.
            for url in (f"{base}/bench/bare", f"{base}/api/v1/me"):
                run_wrk(wrk, url, seconds=1, clients=clients, token=token)
            run_wrk(wrk, f"{base}{SURVEYS}", seconds=1, clients=clients, token=history_token)
            run_wrk(wrk, f"{base}/api/v1/surveys/x/response", seconds=1, clients=clients, token=token, lua=post)
            bare = measured(f"{base}/bench/bare", token=token)
            me = measured(f"{base}/api/v1/me", token=token)
            surveys = measured(f"{base}{SURVEYS}", token=history_token)
            post[1] = str(ids)
            sub = measured(f"{base}/api/v1/surveys/x/response", token=token, lua=post)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    print(f"wrk, {seconds} s per endpoint, {clients} connections; gunicorn 2 sync workers; {os.cpu_count()} CPUs")
    rows = (("bare Django JSON view", bare), ("GET /api/v1/me", me), ("GET /surveys?status=open", surveys))
    for name, r in (*rows, ("POST .../response", sub)):
        print(
            f"{name:24s} {r['rps']:8.1f} req/s  p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms  "
            f"server CPU {r['cpu_ms']:5.2f} ms/req (web {r['web_ms']:.2f}, db {r['db_ms']:.2f})  "
            f"({r['requests']} requests, non-2xx {r['non2xx']}{', socket errors ' + r['socket_errors'] if r['socket_errors'] else ''})"
        )
    print(f"ratio /me / bare:        {me['rps'] / bare['rps']:.2f} (goal >= 0.5)")
    print(f"ratio /surveys / bare:   {surveys['rps'] / bare['rps']:.2f} (90-day history, status=open)")
    print(f"ratio submission / bare: {sub['rps'] / bare['rps']:.2f} (goal >= 0.2)")
    print(f"ratio submission / /me:  {sub['rps'] / me['rps']:.2f}")
    print(
        "by server CPU per request (gunicorn + PostgreSQL; not moved by other load): "
        f"/me {bare['cpu_ms'] / me['cpu_ms']:.2f}, /surveys {bare['cpu_ms'] / surveys['cpu_ms']:.2f}, "
        f"submission {bare['cpu_ms'] / sub['cpu_ms']:.2f} of the bare view"
    )
    print(f"submission p99 at {clients} clients: {sub['p99']:.1f} ms (goal < 50 ms)")
    if me["non2xx"] or sub["non2xx"] or bare["non2xx"] or surveys["non2xx"]:
        raise SystemExit("some requests failed (non-2xx): the figures are not valid")
    if sub["requests"] + 200 > len(instances):
        raise SystemExit("ran out of open instances: raise n")


def profile(requests: int, *, cpu: bool = False, only: set[str] | None = None) -> None:
    import cProfile
    import io
    import pstats

    from django.test import Client, override_settings
    from pyinstrument import Profiler

    token, instances = build(requests * 3 + 20)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR="127.0.0.1")
    history = Client(HTTP_AUTHORIZATION=f"Bearer {build_history()}", REMOTE_ADDR="127.0.0.1")
    body = json.dumps({"answers": ANSWERS, "authored": timezone.now().isoformat()})
    todo = iter(instances)

    def submit():
        r = client.post(
            f"/api/v1/surveys/{next(todo)}/response", body, "application/json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4())
        )
        assert r.status_code == 201, r.content

    def me():
        assert client.get("/api/v1/me").status_code == 200

    def bare():
        assert client.get("/bench/bare").status_code == 200

    def surveys():
        assert history.get(SURVEYS).status_code == 200

    # DEBUG off as in the gunicorn run (DEBUG on logs every query through a debug cursor).
    with override_settings(ROOT_URLCONF="bench.server.urls", DEBUG=False):
        for _ in range(10):  # warm-up
            bare()
            me()
            surveys()
            submit()
        endpoints = (("bare view", bare), ("GET /api/v1/me", me), (f"GET {SURVEYS}", surveys))
        for name, fn in (*endpoints, ("POST /api/v1/surveys/{id}/response", submit)):
            if only and fn.__name__ not in only:
                continue
            # First unprofiled: the CPU a request costs without a profiler's overhead.
            used = time.process_time()
            for _ in range(requests):
                fn()
            plain = (time.process_time() - used) / requests * 1000
            profiler = cProfile.Profile(time.process_time) if cpu else Profiler(interval=0.0005)
            used, wall = time.process_time(), time.perf_counter()
            profiler.enable() if cpu else profiler.start()
            for _ in range(requests):
                fn()
            profiler.disable() if cpu else profiler.stop()
            used, wall = time.process_time() - used, time.perf_counter() - wall
            print(
                f"=== {name}: {requests} requests in process, per request {wall / requests * 1000:.2f} ms wall, "
                f"{used / requests * 1000:.2f} ms CPU{' (under cProfile)' if cpu else ''}; "
                f"unprofiled {plain:.2f} ms CPU ==="
            )
            if fn is bare:
                continue
            if cpu:
                profiler.dump_stats(Path(tempfile.gettempdir()) / f"bench-api-{fn.__name__}.pstats")
                for order in ("tottime", "cumulative"):
                    out = io.StringIO()
                    pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(30)
                    print(out.getvalue().split("\n", 4)[-1])
            else:
                print(profiler.output_text(unicode=True, color=False, show_all=False, short_mode=False))


def main() -> None:
    args = sys.argv[1:]
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        if args and args[0] in ("--profile", "--cpu"):
            only = set(args[2].split(",")) if len(args) > 2 else None
            profile(int(args[1]) if len(args) > 1 else 300, cpu=args[0] == "--cpu", only=only)
        else:
            bench(int(args[0]) if args else 5, int(args[1]) if len(args) > 1 else 4)
    finally:
        connection.close()
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
