"""Export benchmark: the CSV bundle against the real floor, `psql` COPY of the same SELECTs, and memory vs. size.

Run: .venv/bin/python -m trialsite.localstack -- .venv/bin/python bench/export.py [--fresh] [--answers N]
     [--workers N] [--runs N]

Builds its own database (`<db>_bench`) with a simulated trial of >= 1,000,000 item answers and a second trial
of about a tenth of that, then prints, all measured in the same run (best of --runs, alternating):
- the floor: `psql` running `COPY (SELECT …) TO STDOUT` of every bundle table (the same SELECTs, one connection,
  one REPEATABLE READ READ ONLY transaction) with its output to /dev/null;
- the serial CSV bundle (one connection) ÷ the floor (goal <= 1.5);
- the parallel CSV bundle (--workers connections on one exported snapshot) ÷ the floor (goal <= 0.75 on 2 cores);
- peak RSS of the (parallel) export, each in a fresh subprocess, at ~1,000,000 vs ~100,000 answers (goal <= 1.05),
  and tracemalloc's Python heap peak.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIG, SMALL = "microdose-mood", "microdose-mood-small"


def bench_url(url: str) -> str:
    parts = urlsplit(url)
    name = parts.path.lstrip("/") or "postgres"
    return urlunsplit(parts._replace(path=f"/{name}_bench"))


def ensure_database(url: str, fresh: bool) -> None:
    import psycopg

    target = urlsplit(url).path.lstrip("/")
    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [target]).fetchone()
        if exists and fresh:
            conn.execute(f'DROP DATABASE "{target}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{target}"')


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trialsite.settings.development")
    import django

    django.setup()


def build(answers: int) -> None:
    from django.core.management import call_command

    from analytics.simulation import simulate_trial
    from surveys.models import ItemAnswer
    from trialsite.models import Trial
    from trialsite.protocol.services import protocol_load
    from trialsite.services import site_create

    call_command("migrate", verbosity=0)
    source = (ROOT / "protocols" / "microdose-mood.yaml").read_text(encoding="utf-8")
    for slug in (BIG, SMALL):
        text = source.replace(f"slug: {BIG}", f"slug: {slug}")
        if slug == SMALL:  # dose-unit labels are unique across trials: give the second trial its own prefix
            text = text.replace("prefix: MD", "prefix: MS")
        trial = protocol_load(source=text).trial
        site_create(code="LDN", name="London", timezone="Europe/London", trials=[trial])
        site_create(code="NYC", name="New York", timezone="America/New_York", trials=[trial])
    # About 275 item answers per simulated participant over 56 days of follow-up (some screen-fail).
    for slug, target in ((BIG, answers), (SMALL, answers // 10)):
        trial = Trial.objects.get(slug=slug)
        have = ItemAnswer.objects.filter(response__participant__trial=trial).count()
        if have >= target:
            continue
        started = time.monotonic()
        n = int((target - have) / 250) + 10
        result = simulate_trial(trial=trial, participants=n, days=56, seed=2026 if slug == BIG else 7)
        print(
            f"simulated {slug}: {result.participants} participants, {result.item_answers} item answers "
            f"in {time.monotonic() - started:.1f}s",
            flush=True,
        )


PSQL = os.environ.get("PSQL", "/usr/bin/psql")


def floor_script(slug: str) -> str:
    """The psql script: every blinded bundle table's SELECT, COPY'd to stdout in one read-only snapshot."""
    from analytics.export import bundle_tables
    from trialsite.models import Trial
    from trialsite.protocol.schema import Protocol

    trial = Trial.objects.get(slug=slug)
    protocol = Protocol.model_validate(trial.current_protocol.definition)
    lines = ["\\set ON_ERROR_STOP on", "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;"]
    for table in bundle_tables(protocol=protocol, blinded=True):
        sql = " ".join(table.sql(trial_id=trial.pk, blinded=True).split())
        lines.append(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true);")
    lines.append("COMMIT;")
    return "\n".join(lines) + "\n"


def psql_floor(url: str, script_path: str) -> float:
    """Wall time of psql running the script with stdout to /dev/null."""
    started = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        subprocess.run([PSQL, "-X", "-q", "-d", url, "-f", script_path], stdout=sink, check=True)
    return time.perf_counter() - started


def bundle_time(slug: str, out: Path, workers: int) -> tuple[float, dict]:
    from analytics.export import write_bundle
    from trialsite.models import Trial

    trial = Trial.objects.get(slug=slug)
    started = time.perf_counter()
    result = write_bundle(trial=trial, out=out, blinded=True, formats=["csv"], workers=workers)
    elapsed = time.perf_counter() - started
    return elapsed, {f["table"]: (f["rows"], f["bytes"]) for f in result.files}


def child(slug: str, out: str, traced: bool, workers: int) -> None:
    """Run one export in this (fresh) process and print its memory figures as JSON."""
    import resource
    import tracemalloc

    if traced:
        tracemalloc.start()
    from analytics.export import write_bundle
    from trialsite.models import Trial

    trial = Trial.objects.get(slug=slug)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if traced:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
    write_bundle(trial=trial, out=out, blinded=True, formats=["csv"], workers=workers)
    figures = {"maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "rss_before_kb": rss_before}
    if traced:
        _, peak = tracemalloc.get_traced_memory()
        figures["py_peak_bytes"] = peak - base
    print(json.dumps(figures))


def run_child(url: str, slug: str, out: Path, traced: bool, workers: int) -> dict:
    env = {**os.environ, "DATABASE_URL": url}
    args = [sys.executable, __file__, "--child", slug, "--out", str(out), "--workers", str(workers)]
    proc = subprocess.run(args + (["--traced"] if traced else []), env=env, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fresh", action="store_true", help="drop and rebuild the bench database")
    parser.add_argument("--reuse", action="store_true", help=argparse.SUPPRESS)  # the default; kept for old scripts
    parser.add_argument("--answers", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=None, help="parallel connections (default: the setting)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child")
    parser.add_argument("--out")
    parser.add_argument("--traced", action="store_true")
    args = parser.parse_args()
    if args.child:
        setup_django(os.environ["DATABASE_URL"])
        child(args.child, args.out, args.traced, args.workers)
        return
    url = bench_url(os.environ["DATABASE_URL"])
    # An existing bench database is migrated and topped up, not rebuilt (building 1M answers takes minutes).
    ensure_database(url, fresh=args.fresh)
    setup_django(url)
    build(args.answers)
    from django.conf import settings

    workers = args.workers or settings.EXPORT_COPY_WORKERS
    out_dir = ROOT / ".local" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", dir=out_dir, delete=False) as fh:
        fh.write(floor_script(BIG))
    script = fh.name

    # Warm the cache once, then alternate floor, serial and parallel runs; report the best of each.
    psql_floor(url, script)
    floors, serials, parallels = [], [], []
    for _ in range(args.runs):
        floors.append(psql_floor(url, script))
        serials.append(bundle_time(BIG, out_dir / "big-serial.zip", workers=1)[0])
        parallels.append(bundle_time(BIG, out_dir / "big.zip", workers=workers))
    os.unlink(script)
    floor_s, serial_s = min(floors), min(serials)
    parallel_s, counts = min(parallels, key=lambda b: b[0])
    size = (out_dir / "big.zip").stat().st_size
    rows = sum(r for r, _ in counts.values() if r)
    csv_bytes = sum(b for _, b in counts.values() if b)
    load = os.getloadavg()[0]
    print(f"cores: {os.cpu_count()}; load average (1 min) after the runs: {load:.1f}; workers: {workers}")
    print(
        f"rows exported: {rows} (responses {counts['responses'][0]}); CSV {csv_bytes / 1e6:.1f} MB; "
        f"bundle {size / 1e6:.1f} MB"
    )
    print(
        f"floor: psql COPY of the same SELECTs to /dev/null: {floor_s:.2f}s (runs: {', '.join(f'{x:.2f}' for x in floors)})"
    )
    print(f"serial CSV bundle (1 connection): {serial_s:.2f}s; ratio {serial_s / floor_s:.2f} (goal <= 1.5)")
    print(
        f"parallel CSV bundle ({workers} connections, one snapshot): {parallel_s:.2f}s; "
        f"ratio {parallel_s / floor_s:.2f} (goal <= 0.75)"
    )

    big = run_child(url, BIG, out_dir / "big-mem.zip", traced=False, workers=workers)
    small = run_child(url, SMALL, out_dir / "small-mem.zip", traced=False, workers=workers)
    big_t = run_child(url, BIG, out_dir / "big-mem.zip", traced=True, workers=workers)
    small_t = run_child(url, SMALL, out_dir / "small-mem.zip", traced=True, workers=workers)
    from surveys.models import ItemAnswer

    n_big = ItemAnswer.objects.filter(response__participant__trial__slug=BIG).count()
    n_small = ItemAnswer.objects.filter(response__participant__trial__slug=SMALL).count()
    print(
        f"peak RSS: {big['maxrss_kb'] / 1024:.1f} MB at {n_big} answers vs {small['maxrss_kb'] / 1024:.1f} MB at "
        f"{n_small} answers; ratio {big['maxrss_kb'] / small['maxrss_kb']:.3f} (goal <= 1.05)"
    )
    print(
        f"Python heap peak during the export (tracemalloc): {big_t['py_peak_bytes'] / 1e6:.2f} MB vs "
        f"{small_t['py_peak_bytes'] / 1e6:.2f} MB; ratio {big_t['py_peak_bytes'] / small_t['py_peak_bytes']:.3f}"
    )


if __name__ == "__main__":
    main()
