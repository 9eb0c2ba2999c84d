"""Simulator benchmark: item answers per second written by `simulate_trial`, against a raw COPY floor.

Run: .venv/bin/python -m trialsite.localstack -- .venv/bin/python bench/simulate.py [--participants N] [--days D]
     [--audit]
     [--workers W] [--defer-indexes]

Builds a fresh database (`<db>_bench_sim`), loads the demo protocol, then prints:
- the simulator's wall time and item answers per second (goal >= 50,000/s), with the audit insert triggers
  skipped for its writes (`audit=False`, as bench/scale.py builds) or firing (`--audit`);
- with `--workers 2` (the default) the batches are written by two forked processes (same trial as serial);
  with `--defer-indexes` the secondary indexes are dropped for the load and rebuilt after (analytics/simulation/
  indexes.py), the rebuild inside the timed run;
- the CPU seconds of the simulator's processes and of the local PostgreSQL server, and answers per CPU-second
  (comparable across runs whatever the machine's load, unlike the wall time);
- the floor measured in the same run: the same item-answer rows, already serialised, COPYed into a table like
  surveys_itemanswer (same indexes, no triggers) — the ratio says how close the simulator gets to PostgreSQL.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def fresh_database(url: str, suffix: str) -> str:
    import psycopg

    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/') or 'postgres'}_{suffix}"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


def setup(url: str):
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trialsite.settings.development")
    import django

    django.setup()
    from django.core.management import call_command

    from trialsite.protocol.services import protocol_load_file
    from trialsite.services import site_create

    call_command("migrate", verbosity=0)
    trial = protocol_load_file(path=ROOT / "protocols" / "microdose-mood.yaml").trial
    site_create(code="LDN", name="London", timezone="Europe/London", trials=[trial])
    site_create(code="NYC", name="New York", timezone="America/New_York", trials=[trial])
    return trial


def copy_floor(rows: int) -> float:
    """Seconds to COPY `rows` already-serialised item-answer rows into a trigger-free table like the real one."""
    from django.db import connection, transaction

    buf = io.BytesIO()
    with connection.cursor() as cur:
        sql = "COPY (SELECT response_id, item_key, value, value_numeric, value_text FROM surveys_itemanswer) TO STDOUT"
        with cur.copy(sql) as copy:
            for chunk in copy:
                buf.write(chunk)
    data = buf.getvalue()
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("CREATE TEMP TABLE floor_itemanswer (LIKE surveys_itemanswer INCLUDING ALL) ON COMMIT DROP")
        started = time.perf_counter()
        with cur.copy(
            "COPY floor_itemanswer (response_id, item_key, value, value_numeric, value_text) FROM STDIN"
        ) as c:
            step = 1 << 20
            for i in range(0, len(data), step):
                c.write(data[i : i + step])
        elapsed = time.perf_counter() - started
    return elapsed


def server_cpu() -> float | None:
    """CPU seconds used so far by the (embedded, local) PostgreSQL server: its live processes plus the exited
    backends the postmaster has reaped (the workers' connections). None when /proc does not show it."""
    from django.db import connection

    try:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            backend = cur.fetchone()[0]
        tick = os.sysconf("SC_CLK_TCK")

        def stat(pid):
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()

        postmaster = int(stat(backend)[1])
        total = sum(int(x) for x in stat(postmaster)[11:15])  # its own and its reaped children's time
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    f = stat(entry.name)
                except OSError:
                    continue
                if int(f[1]) == postmaster:
                    total += int(f[11]) + int(f[12])
        return total / tick
    except (OSError, ValueError, IndexError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--participants", type=int, default=400)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--audit", action="store_true", help="let the audit insert triggers fire")
    parser.add_argument("--defer-indexes", action="store_true", help="drop secondary indexes, rebuild after")
    parser.add_argument("--workers", type=int, default=2, help="processes writing batches (1: serial)")
    args = parser.parse_args()
    trial = setup(fresh_database(os.environ["DATABASE_URL"], "bench_sim"))
    from analytics.simulation import TrialSimulator

    server0, client0 = server_cpu(), os.times()
    started = time.perf_counter()
    sim = TrialSimulator(trial=trial, seed=1, now=NOW, audit=args.audit)
    result = sim.run(
        participants=args.participants, days=args.days, workers=args.workers, defer_indexes=args.defer_indexes
    )
    elapsed = time.perf_counter() - started
    client1, server1 = os.times(), server_cpu()
    client = sum(client1[:4]) - sum(client0[:4])  # this process and its reaped workers, user + system
    copies = sum(sim.writer.seconds.values())
    rows = sum(sim.writer.written.values())
    floor = copy_floor(result.item_answers)
    rate, floor_rate = result.item_answers / elapsed, result.item_answers / floor
    print(
        f"simulate_trial {args.participants} participants x {args.days} days (audit={'on' if args.audit else 'off'}, "
        f"{args.workers} worker(s){', indexes rebuilt after' if args.defer_indexes else ''}): "
        f"{result.instances} instances, {result.responses} responses, {result.item_answers} item answers "
        f"in {elapsed:.1f} s = {rate:,.0f} answers/s (goal >= 50,000)"
    )
    print(
        f"of which COPY {copies:.1f} s for {rows} rows in {len(sim.writer.written)} tables "
        f"({', '.join(f'{k} {v:.1f}s' for k, v in sim.writer.seconds.items() if v >= 0.05)}); "
        f"the rest is drawing, production's planning/scoring functions, commits and the end-of-study sweep"
    )
    if server0 is not None and server1 is not None:
        cpu = client + server1 - server0
        print(
            f"CPU: simulator processes {client:.1f} s + PostgreSQL {server1 - server0:.1f} s = {cpu:.1f} s "
            f"= {result.item_answers / cpu:,.0f} answers per CPU-second (wall time depends on the machine's load)"
        )
    print(f"raw COPY floor of the same {result.item_answers} rows: {floor:.2f} s = {floor_rate:,.0f} rows/s")
    print(f"ratio simulator / floor: {rate / floor_rate:.3f}")


if __name__ == "__main__":
    main()
