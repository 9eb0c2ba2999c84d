"""Export benchmark: CSV bundle time vs. a bare PostgreSQL COPY of the same rows, and memory vs. data size.

Run: .venv/bin/python -m trialsite.localstack -- .venv/bin/python bench/export.py [--fresh] [--answers N]

Builds its own database (`<db>_bench`) with a simulated trial of >= 1,000,000 item answers and a second trial
of about a tenth of that, then prints:
- the CSV bundle's wall time ÷ the wall time of `COPY (same SELECTs) TO STDOUT` read into /dev/null (goal <= 1.5);
- peak memory of the export (each in a fresh subprocess: ru_maxrss and tracemalloc's Python peak) at
  ~1,000,000 vs ~100,000 answers (goal ratio <= 1.1).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
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


def copy_baseline(slug: str) -> tuple[float, int]:
    """Time of COPY (SELECT …) TO STDOUT of every bundle table, read and written to /dev/null."""
    from analytics.export import bundle_tables, copy_to
    from trialsite.models import Trial
    from trialsite.protocol.schema import Protocol

    trial = Trial.objects.get(slug=slug)
    protocol = Protocol.model_validate(trial.current_protocol.definition)
    rows = 0
    started = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        for table in bundle_tables(protocol=protocol, blinded=True):
            rows += copy_to(table.sql(trial_id=trial.pk, blinded=True), sink, threaded=False)
    return time.perf_counter() - started, rows


def bundle_time(slug: str, out: Path) -> tuple[float, dict]:
    from analytics.export import write_bundle
    from trialsite.models import Trial

    trial = Trial.objects.get(slug=slug)
    started = time.perf_counter()
    result = write_bundle(trial=trial, out=out, blinded=True, formats=["csv"])
    elapsed = time.perf_counter() - started
    return elapsed, {f["table"]: f["rows"] for f in result.files}


def child(slug: str, out: str, traced: bool) -> None:
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
    write_bundle(trial=trial, out=out, blinded=True, formats=["csv"])
    figures = {"maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "rss_before_kb": rss_before}
    if traced:
        _, peak = tracemalloc.get_traced_memory()
        figures["py_peak_bytes"] = peak - base
    print(json.dumps(figures))


def run_child(url: str, slug: str, out: Path, traced: bool) -> dict:
    env = {**os.environ, "DATABASE_URL": url}
    args = [sys.executable, __file__, "--child", slug, "--out", str(out)] + (["--traced"] if traced else [])
    proc = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fresh", action="store_true", help="drop and rebuild the bench database")
    parser.add_argument("--reuse", action="store_true", help=argparse.SUPPRESS)  # the default; kept for old scripts
    parser.add_argument("--answers", type=int, default=1_000_000)
    parser.add_argument("--child")
    parser.add_argument("--out")
    parser.add_argument("--traced", action="store_true")
    args = parser.parse_args()
    if args.child:
        setup_django(os.environ["DATABASE_URL"])
        child(args.child, args.out, args.traced)
        return
    url = bench_url(os.environ["DATABASE_URL"])
    # An existing bench database is migrated and topped up, not rebuilt (building 1M answers takes minutes).
    ensure_database(url, fresh=args.fresh)
    setup_django(url)
    build(args.answers)
    out_dir = ROOT / ".local" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)

    # Warm the cache once, then alternate baseline and bundle runs; report the best of each.
    copy_baseline(BIG)
    copies, bundles = [], []
    for _ in range(3):
        copies.append(copy_baseline(BIG))
        bundles.append(bundle_time(BIG, out_dir / "big.zip"))
    copy_s, rows = min(copies)
    bundle_s, counts = min(bundles, key=lambda b: b[0])
    size = (out_dir / "big.zip").stat().st_size
    print(f"rows exported: {rows} (responses {counts['responses']}), bundle {size / 1e6:.1f} MB")
    print(f"COPY to /dev/null: {copy_s:.2f}s; CSV bundle: {bundle_s:.2f}s; ratio {bundle_s / copy_s:.2f} (goal <= 1.5)")

    big = run_child(url, BIG, out_dir / "big-mem.zip", traced=False)
    small = run_child(url, SMALL, out_dir / "small-mem.zip", traced=False)
    big_t = run_child(url, BIG, out_dir / "big-mem.zip", traced=True)
    small_t = run_child(url, SMALL, out_dir / "small-mem.zip", traced=True)
    from surveys.models import ItemAnswer

    n_big = ItemAnswer.objects.filter(response__participant__trial__slug=BIG).count()
    n_small = ItemAnswer.objects.filter(response__participant__trial__slug=SMALL).count()
    print(
        f"peak RSS: {big['maxrss_kb'] / 1024:.1f} MB at {n_big} answers vs {small['maxrss_kb'] / 1024:.1f} MB at "
        f"{n_small} answers; ratio {big['maxrss_kb'] / small['maxrss_kb']:.3f} (goal <= 1.1)"
    )
    print(
        f"Python heap peak during the export (tracemalloc): {big_t['py_peak_bytes'] / 1e6:.2f} MB vs "
        f"{small_t['py_peak_bytes'] / 1e6:.2f} MB; ratio {big_t['py_peak_bytes'] / small_t['py_peak_bytes']:.3f}"
    )


if __name__ == "__main__":
    main()
