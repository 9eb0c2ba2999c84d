"""A trial at real scale, measured (issue 14 item 4).

Run: .venv/bin/python -m trialsite.localstack -- .venv/bin/python bench/scale.py [--participants 10000]
     [--small 100] [--days 90] [--samples 20] [--due 300] [--keep] [--no-export]

--keep keeps each size's database (`<db>_bench_scale_<participants>x<days>`) and reuses it in a later run with the
same sizes (migrations are applied to it first, so new indexes are measured without a rebuild); without --keep every
size is built afresh and dropped at the end.

Builds (or with --keep reuses) one database per size with the fast simulator (audit insert triggers skipped for
its own writes: analytics/simulation/writer.py): the small size (`--small`, default 1 % of `--participants`) and the
full size, and prints at both sizes, each figure measured in the same run (with the load average beside it):
- the due-reminder sweep (surveys.tasks.reminders_sweep, publishing to a private Redis queue) with the same
  number of due reminders (`--due`) planted at each size (then `VACUUM surveys_reminder`, as autovacuum would, so
  the dead row versions of the planting are not timed): its time at full size ÷ at the small size (goal <= 1.2 at 1 %), the claim
  step alone, and EXPLAIN (ANALYZE, BUFFERS) of the claim query at full size;
- p95 and query count of the coordinator's participant changelist and of the trial dashboard (goal < 300 ms,
  the same number of queries at both sizes), the dashboard as a user sees it: its completion by site and week
  stored by the beat task (analytics.completion_snapshots) just before sampling, that task's own time printed;
- p95 and query count of the CONSORT/completion/adherence summary API (GET /api/v1/staff/analytics/{trial}/summary)
  as a blinded and as an unblinded statistician read it (its completion, adherence and latency from the snapshot
  the task just stored, the unblinded statistician's blinding figures from theirs), beside the p95 of the unblinded
  summary with its blinding figures computed per request (as before they were stored), and the time to compute the
  summary live, without and with the blinding figures (what a stale snapshot costs one request);
- at full size, the CSV export bundle ÷ its floor: `psql` COPY (same SELECTs) TO STDOUT > /dev/null.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.simulate import fresh_database  # noqa: E402


def p95(samples: list[float]) -> float:
    s = sorted(samples)
    return s[max(0, int(round(0.95 * len(s))) - 1)]


def timed_gets(client, url: str, n: int) -> tuple[float, float, int]:
    """(p95 ms, median ms, queries of one request)."""
    from django.db import connections

    queries = []

    def count(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    assert client.get(url).status_code == 200  # warm the per-process caches (the parsed protocol) first
    with ExitStack() as stack:  # every connection alias, in case a router sends reads elsewhere
        for alias in connections:
            stack.enter_context(connections[alias].execute_wrapper(count))
        r = client.get(url)
    assert r.status_code == 200, (url, r.status_code)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200
    return p95(times), statistics.median(times), len(queries)


def plant_due(k: int, now) -> int:
    """Make k reminders pending and due (the same amount of due work at every size; bench data only)."""
    from django.db import connection

    from surveys.models import Reminder

    # Reminders of participants still in the study: all k are claimed and sent at every size (a withdrawn
    # participant's would be cancelled instead, a different amount of work).
    live = Reminder.objects.filter(instance__participant__withdrawn_at__isnull=True)
    ids = list(live.order_by("pk").values_list("pk", flat=True)[:k])
    planted = Reminder.objects.filter(pk__in=ids).update(
        status="pending", queued_at=None, due_at=now - timedelta(minutes=1)
    )
    with connection.cursor() as cur:  # the dead row versions this planting (not the sweep) made: autovacuum's job
        cur.execute("VACUUM surveys_reminder")
    return planted


def sweep(now, queue: str) -> tuple[float, float, float, dict, list[str]]:
    """(wall s, SQL s, claim query alone s, stats, claim SQL): the SQL time is the database's share of the sweep
    (the rest is publishing to Redis, the same at every size), the figure that says "indexes, not scans"."""
    from django.db import connection, transaction

    from surveys.reminders import services
    from surveys.tasks import reminders_sweep

    sqls: list[str] = []
    spent = [0.0]

    def keep(execute, sql, params, many, context):
        if "SKIP LOCKED" in sql and "surveys_reminder" in sql:
            sqls.append(connection.ops.compose_sql(sql, params) if params else sql)
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            spent[0] += time.perf_counter() - t0

    t0 = time.perf_counter()
    with connection.execute_wrapper(keep):
        stats = reminders_sweep(now=now, queue=queue)
    wall = time.perf_counter() - t0
    claims = []
    for _ in range(5):
        t0 = time.perf_counter()
        with transaction.atomic():
            services.reminders_claim_due(now=now)  # nothing left: the claim query's cost alone
        claims.append(time.perf_counter() - t0)
    return wall, spent[0], statistics.median(claims), stats, sqls


def export_ratio(trial) -> str:
    """CSV bundle wall time ÷ psql COPY of the same SELECTs to /dev/null."""
    try:
        from analytics.export import bundle_tables, write_bundle
    except ImportError as exc:  # the export package is being rewritten: say so rather than guess
        return f"n/a ({exc})"
    from trialsite.protocol.schema import Protocol

    protocol = Protocol.model_validate(trial.current_protocol.definition)
    sqls = [t.sql(trial_id=trial.pk, blinded=True) for t in bundle_tables(protocol=protocol, blinded=True)]
    psql = shutil.which("psql")
    script = "\n".join(f"\\copy ({' '.join(s.split()).rstrip(';')}) TO '/dev/null'" for s in sqls)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if psql:
            subprocess.run(
                [psql, os.environ["DATABASE_URL"], "-q", "-v", "ON_ERROR_STOP=1"],
                input=script,
                text=True,
                check=True,
            )
        floor = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_bundle(trial=trial, out=Path(tmp) / "bundle.zip", blinded=True, formats=["csv"])
        bundle = time.perf_counter() - t0
    return f"bundle {bundle:.2f} s, psql floor {floor:.2f} s, ratio {bundle / floor:.2f}"


def sweeps(sizes: list[tuple[str, str]], args, queue: str) -> dict:
    """The sweeps of every size, interleaved (small, full, small, full, …) so that the machine's load weighs on both
    alike: label → median wall, SQL and claim times, the last sweep's stats and claim SQL."""
    from django.utils import timezone

    now = timezone.now()
    runs: dict[str, list] = {label: [] for label, _ in sizes}
    for _label, url in sizes:
        use_database(url)
        sweep(now, queue)  # drain what the simulated trial left due (and warm the broker connection)
    for i in range(args.sweeps):
        at = now + timedelta(seconds=1 + i)
        for label, url in sizes:
            use_database(url)
            planted = plant_due(args.due, at)
            runs[label].append((*sweep(at, queue), planted))
    out = {}
    for label, rs in runs.items():
        _, _, _, stats, claims, planted = rs[-1]
        out[label] = {
            "sweep": statistics.median(r[0] for r in rs),
            "sql": statistics.median(r[1] for r in rs),
            "claim": statistics.median(r[2] for r in rs),
            "claims": claims,
            "at": now + timedelta(seconds=args.sweeps),
        }
        print(
            f"[{label}] sweep {out[label]['sweep']:.3f} s (of which SQL {out[label]['sql'] * 1000:.1f} ms), median of "
            f"{args.sweeps} (planted {planted} due, claimed {stats['claimed']}, planned {stats['planned']}, missed "
            f"{stats['missed']}); claim query alone {out[label]['claim'] * 1000:.1f} ms",
            flush=True,
        )
    return out


def pages(label: str, trial, args, clients, api_clients) -> None:
    from django.utils import timezone

    from analytics.summary import trial_summary as summary_live
    from analytics.tasks import completion_snapshots_refresh

    coordinator, manager = clients
    cl = timed_gets(coordinator, "/admin/participants/participant/", args.samples)
    # As a user sees the dashboard: its completion by site and week stored by the beat task (timed on its own).
    t0 = time.perf_counter()
    completion_snapshots_refresh.apply().get()
    refresh = time.perf_counter() - t0
    dash = timed_gets(manager, f"/admin/dashboard/?trial={trial.slug}", args.samples)
    print(
        f"[{label}] coordinator changelist p95 {cl[0]:.0f} ms (median {cl[1]:.0f}), {cl[2]} queries; "
        f"dashboard p95 {dash[0]:.0f} ms (median {dash[1]:.0f}), {dash[2]} queries (snapshot refresh task "
        f"{1000 * refresh:.0f} ms); {load()}",
        flush=True,
    )
    # The summary API as its users read it: the slow figures (for the unblinded statistician the blinding figures
    # too, stored apart: analytics.blinding_snapshots) from the snapshots the task just stored.
    url = f"/api/v1/staff/analytics/{trial.slug}/summary"
    blinded = timed_gets(api_clients[0], url, args.samples)
    unblinded = timed_gets(api_clients[1], url, args.samples)
    # The unblinded summary as it was computed before its blinding figures were stored: the blinded figures from the
    # snapshot, the per-arm indices and per-session figures (with the CGRC's simulations) computed per request.
    per_request = timed_calls(lambda: summary_per_request(trial), max(3, args.samples // 4))
    t0 = time.perf_counter()
    summary_live(trial=trial, now=timezone.now())  # every figure computed now: the stale-snapshot path
    live = time.perf_counter() - t0
    t0 = time.perf_counter()
    summary_live(trial=trial, now=timezone.now(), unblinded=True)  # the same, with the blinding figures
    live_unblinded = time.perf_counter() - t0
    print(
        f"[{label}] summary API p95 {blinded[0]:.0f} ms (median {blinded[1]:.0f}), {blinded[2]} queries "
        f"(statistician); p95 {unblinded[0]:.0f} ms (median {unblinded[1]:.0f}), {unblinded[2]} queries "
        f"(unblinded statistician; with its blinding figures computed per request instead: p95 of "
        f"{max(3, args.samples // 4)} {per_request[0]:.0f} ms, median {per_request[1]:.0f}; ratio of the p95s "
        f"{unblinded[0] / per_request[0]:.3f}); computed live {live:.2f} s, with the blinding figures "
        f"{live_unblinded:.2f} s; {load()}",
        flush=True,
    )


def timed_calls(call, n: int) -> tuple[float, float]:
    """(p95 ms, median ms) of n calls after one warm-up call."""
    call()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000)
    return p95(times), statistics.median(times)


def summary_per_request(trial) -> dict:
    """The unblinded summary with the blinded figures from the stored snapshot and the blinding figures computed
    now (what GET .../summary did for the unblinded statistician before analytics.blinding_snapshots)."""
    from django.utils import timezone

    from analytics.models import CompletionSnapshot
    from analytics.summary import trial_summary

    snapshot = CompletionSnapshot.objects.get(trial=trial)
    return trial_summary(
        trial=trial,
        unblinded=True,
        now=timezone.now(),
        figures={"completion": snapshot.rows, **snapshot.figures},
        as_of=snapshot.computed_at,
    )


def load() -> str:
    return f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"


def database(base_url: str, n: int, days: int, keep: bool) -> tuple[str, bool]:
    """(url, reused): the database of one size; reused when --keep and a complete build of it exists."""
    import psycopg

    suffix = f"bench_scale_{n}x{days}"
    if keep:
        parts = urlsplit(base_url)
        url = urlunsplit(parts._replace(path=f"/{parts.path.lstrip('/') or 'postgres'}_{suffix}"))
        try:
            with psycopg.connect(url) as conn:
                if conn.execute("SELECT to_regclass('bench_scale_built') IS NOT NULL").fetchone()[0]:
                    return url, True
        except psycopg.OperationalError:
            pass
    return fresh_database(base_url, suffix), False


def use_database(url: str) -> None:
    """Point Django's default connection (and psql in export_ratio) at another database."""
    from django.db import connections

    conn = connections["default"]
    conn.close()
    conn.settings_dict["NAME"] = urlsplit(url).path.lstrip("/")
    os.environ["DATABASE_URL"] = url


def prepare(url: str, reused: bool, args, n: int, seed: int):
    """Migrate (new indexes land on a kept database too), then build the trial unless reused."""
    from django.core.management import call_command
    from django.db import connection

    from analytics.simulation import simulate_trial
    from participants.services.allocation import allocation_list_generate
    from surveys.models import ItemAnswer, SurveyInstance
    from trialsite.models import Site, Trial
    from trialsite.protocol.services import protocol_load_file
    from trialsite.services import site_create

    use_database(url)
    t0 = time.perf_counter()
    call_command("migrate", verbosity=0)
    if reused:
        print(f"[{n}] reusing {url.rsplit('/', 1)[-1]} (migrated in {time.perf_counter() - t0:.1f} s)", flush=True)
    else:
        trial = protocol_load_file(path=ROOT / "protocols" / "microdose-mood.yaml").trial
        site_create(code="LDN", name="London", timezone="Europe/London", trials=[trial])
        site_create(code="NYC", name="New York", timezone="America/New_York", trials=[trial])
        allocation_list_generate(trial=trial, seed=11, per_stratum=n // 3 + 20)
        t0 = time.perf_counter()
        r = simulate_trial(trial=trial, participants=n, days=args.days, seed=seed, audit=False)
        took = time.perf_counter() - t0
        print(
            f"[{n}] built {n} participants x {args.days} days: {r.instances} instances, {r.item_answers} item "
            f"answers in {took:.1f} s ({r.item_answers / took:,.0f} answers/s)",
            flush=True,
        )
        with connection.cursor() as cur:
            cur.execute("CREATE TABLE bench_scale_built (built_at timestamptz DEFAULT now())")
            cur.execute("INSERT INTO bench_scale_built DEFAULT VALUES")
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    print(
        f"[{n}] {Trial.objects.count()} trial, {SurveyInstance.objects.count()} instances, "
        f"{ItemAnswer.objects.count()} item answers",
        flush=True,
    )
    return Trial.objects.get(), Site.objects.get(code="LDN")


def staff_clients(site):
    from django.contrib.auth import get_user_model
    from django.test import Client

    from trialsite.services import role_grant

    clients = []
    for name, role, at in (("coord", "coordinator", site), ("tm", "trial_manager", None)):
        user = get_user_model().objects.filter(username=f"bench-{name}").first()
        if user is None:
            user = get_user_model().objects.create_user(
                f"bench-{name}", f"{name}@example.org", "x-bench-password-1", is_staff=True
            )
            role_grant(user=user, role=role, site=at)
        c = Client()
        c.force_login(user)
        clients.append(c)
    return clients


def api_clients():
    """Staff API clients (bearer tokens) of a blinded and an unblinded statistician."""
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.test import Client

    from trialsite.api.auth import token_issue
    from trialsite.services import role_grant

    clients = []
    for role in ("statistician", "unblinded_statistician"):
        user = get_user_model().objects.filter(username=f"bench-{role}").first()
        if user is None:
            user = get_user_model().objects.create_user(
                f"bench-{role}", f"{role}@example.org", "x-bench-password-1", is_staff=True
            )
            role_grant(user=user, role=role)
        key, _ = token_issue(user=user, kind="staff", ttl=timedelta(hours=2))
        clients.append(Client(headers={"Authorization": f"Bearer {key}"}))
    return clients


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=None, help="the small size (default: 1 %% of --participants)")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--due", type=int, default=300)
    parser.add_argument("--sweeps", type=int, default=5, help="sweeps per size (the median is printed)")
    parser.add_argument("--keep", action="store_true", help="keep each size's database and reuse it next time")
    parser.add_argument("--no-export", action="store_true", help="skip the export bundle ÷ psql floor")
    args = parser.parse_args()
    base_url = os.environ["DATABASE_URL"]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trialsite.settings.development")
    import django

    django.setup()

    from django.conf import settings
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections, connection

    from trialsite.celery import app

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    settings.DEBUG = False  # no query log (and its cost) in the timings
    # As Django's test runner does: keep one connection across requests, so the queries of a request are counted.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    queue = f"bench-scale-{uuid.uuid4().hex[:8]}"
    small = args.small or max(1, args.participants // 100)
    built = []
    try:
        sizes = []
        for n, seed in ((small, 1), (args.participants, 2)):
            url, reused = database(base_url, n, args.days, args.keep)
            if not reused:
                built.append(url)
            trial, site = prepare(url, reused, args, n, seed)
            label = f"{n}x{args.days}"
            pages(label, trial, args, staff_clients(site), api_clients())
            sizes.append((label, url))
        swept = sweeps(sizes, args, queue)
        results = {"small": swept[sizes[0][0]], "full": swept[sizes[1][0]]}
        ratio = results["full"]["sweep"] / results["small"]["sweep"]
        print(f"sweep time {args.participants} / {small}: {ratio:.2f} (goal <= 1.2)")
        print(f"sweep SQL time {args.participants} / {small}: {results['full']['sql'] / results['small']['sql']:.2f}")
        print(f"claim query {args.participants} / {small}: {results['full']['claim'] / results['small']['claim']:.2f}")
        if results["full"]["claims"]:
            with connection.cursor() as cur:
                sql = results["full"]["claims"][0]
                plant_due(args.due, results["full"]["at"])  # the claim query with due rows to claim, as in the sweep
                cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)  # noqa: S608 - the captured claim query, composed
                print(
                    f"EXPLAIN of the sweep's claim query at full size ({args.due} due planted):\n  "
                    + "\n  ".join(r[0] for r in cur.fetchall())
                )
        if not args.no_export:
            print(f"export at full size: {export_ratio(trial)}")
    finally:
        with app.connection_for_read() as conn:
            conn.default_channel.client.delete(queue)
        if not args.keep:
            connection.close()
            for url in built:
                fresh_database_drop(url)


def fresh_database_drop(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}" WITH (FORCE)')


if __name__ == "__main__":
    main()
