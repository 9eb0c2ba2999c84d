"""Benchmark: the participant app (/app/) beside a blank static page, in the same run, same server.

Run: .venv/bin/python -m trialsite.localstack -- .venv/bin/python bench/app.py [TAPS]

Creates a throw-away database (bench_app) with one consented participant and an open survey, collects the
static files (compressed, as in production), starts gunicorn on 127.0.0.1 and drives headless Chromium:
1. the first load's transferred bytes (fresh profile; goal: the whole shell <= 100 KB compressed), and the
   shell's compressed size as the service worker caches it;
2. the time to the first usable screen under CDP CPU throttling x4 and a slow-4G profile (first visit, and a
   returning visit opened by the service worker), beside the blank page's load time;
3. the time from a tap on "I took today's dose" to "Saved" on loopback (median of TAPS), beside a tap that only
   changes a text on the blank page.
Prints each figure, the blank page's, and their ratio. Drops the database.
"""

from __future__ import annotations

import gzip
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trialsite.settings.test")
os.environ["TEST_DB_NAME"] = "bench_app"

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

# Lighthouse's devtools "slow 4G": 562.5 ms latency, 1.47 Mbit/s down, 675 kbit/s up.
SLOW_4G = {"offline": False, "latency": 562.5, "downloadThroughput": 184320, "uploadThroughput": 84375}
BLANK = "<!doctype html><html lang=en><head><meta charset=utf-8><title>blank</title></head><body></body></html>"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build() -> str:
    from django.contrib.auth import get_user_model

    from conftest import DEMO_PROTOCOL
    from participants.models import ConsentDocument, ConsentSignature, Participant, ParticipantStatus
    from surveys.models import Instrument, SurveyInstance
    from trialsite.api.auth import token_issue
    from trialsite.protocol.services import protocol_load_file
    from trialsite.services import site_create

    trial = protocol_load_file(path=DEMO_PROTOCOL).trial
    site = site_create(code="LDN", name="London", timezone="Europe/London", trials=[trial])
    user = get_user_model().objects.create_user("bench-app-phone", password=None)
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
    opens = now - timedelta(minutes=5)
    SurveyInstance.objects.create(
        participant=p,
        instrument=Instrument.objects.get(trial=trial, slug="daily-mood"),
        schedule_key="bench",
        study_day=1,
        timezone="Europe/London",
        local_date=opens.date(),
        opens_at=opens,
        closes_at=opens + timedelta(hours=4),
        grace_until=opens + timedelta(hours=4),
        protocol_version=trial.current_protocol,
    )
    key, _ = token_issue(user=user, kind="participant", ttl=timedelta(hours=2))
    return key


def database_url() -> str:
    s = connection.settings_dict
    return (
        f"postgresql://{s['USER']}:{quote(s['PASSWORD'] or '')}@{quote(s['HOST'] or '', safe='')}"
        f"{':' + str(s['PORT']) if s['PORT'] else ''}/{s['NAME']}"
    )


def shell_compressed_bytes(static_root: Path) -> tuple[int, int, int]:
    """(files, raw bytes, gzip bytes) of what the service worker caches (the HTML shell counted gzipped too)."""
    from trialsite.webapp import shell_files

    raw = packed = 0
    files = [f for f in shell_files() if f != "sw.js"]
    for rel in files:
        data = (static_root / "app" / rel).read_bytes()
        gz = static_root / "app" / f"{rel}.gz"
        raw += len(data)
        packed += gz.stat().st_size if gz.exists() else len(data)
    return len(files), raw, packed


TRANSFER = """return (() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource');
  return {bytes: nav.transferSize + res.reduce((a, r) => a + r.transferSize, 0), requests: 1 + res.length};
})()"""

MARK = """const [name, done] = arguments;
const poll = () => { const m = performance.getEntriesByName(name); if (m.length) done(m[0].startTime); else setTimeout(poll, 20); };
poll();"""

LOADED = """const done = arguments[0];
const poll = () => { const n = performance.getEntriesByType('navigation')[0];
  if (n && n.loadEventEnd > 0) done(n.loadEventEnd); else setTimeout(poll, 20); };
poll();"""

TAP_SAVED = """const done = arguments[0];
const msg = document.getElementById('dose-message');
msg.replaceChildren();
let t0 = 0;
const obs = new MutationObserver(() => {
  if (msg.textContent.includes('Saved')) { obs.disconnect(); requestAnimationFrame(() => done(performance.now() - t0)); }
});
obs.observe(msg, {childList: true, subtree: true, characterData: true});
t0 = performance.now();
document.getElementById('dose-submit').click();"""

TAP_BLANK = """const done = arguments[0];
let b = document.getElementById('b');
if (!b) { b = document.createElement('button'); b.id = 'b'; b.textContent = 'tap'; document.body.append(b);
  b.addEventListener('click', () => { b.textContent = 'Saved'; }); }
b.textContent = 'tap';
let t0 = 0;
const obs = new MutationObserver(() => {
  if (b.textContent === 'Saved') { obs.disconnect(); requestAnimationFrame(() => done(performance.now() - t0)); }
});
obs.observe(b, {childList: true, subtree: true, characterData: true});
t0 = performance.now();
b.click();"""

PLANT_TOKEN = """const [token, done] = arguments;
const r = indexedDB.open('trialsite-app');
r.onsuccess = () => { const tx = r.result.transaction('kv', 'readwrite'); tx.objectStore('kv').put(token, 'token');
  tx.oncomplete = () => { r.result.close(); done(true); }; };"""


def main() -> None:
    taps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    from trialsite.tests.browser import chromium

    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    server = None
    static_root = Path(tempfile.mkdtemp(prefix="bench-app-static-"))
    try:
        token = build()
        env = dict(
            os.environ,
            DATABASE_URL=database_url(),
            DJANGO_SETTINGS_MODULE="trialsite.settings.development",
            DJANGO_DEBUG="0",
            DB_CONN_MAX_AGE="600",
            STATIC_ROOT=str(static_root),
            LOG_LEVEL="ERROR",
        )
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
        )
        (static_root / "blank.html").write_text(BLANK, encoding="utf-8")
        (static_root / "blank.html.gz").write_bytes(gzip.compress(BLANK.encode()))
        port = free_port()
        connection.close()
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "trialsite.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2"]
            + ["--log-level", "error"],
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
        base = f"http://127.0.0.1:{port}"
        app, blank = f"{base}/app/", f"{base}/static/blank.html"

        files, raw, packed = shell_compressed_bytes(static_root)
        print(
            f"shell as cached by the service worker: {files} files, {raw / 1024:.1f} KB raw, {packed / 1024:.1f} KB gzip"
        )

        # 1. first load, fresh profiles, no throttling
        with chromium(width=390, height=844, mobile=True) as d:
            d.set_script_timeout(60)
            d.get(blank)
            d.execute_async_script(LOADED)
            blank_t = d.execute_script(TRANSFER)
        with chromium(width=390, height=844, mobile=True) as d:
            d.set_script_timeout(60)
            d.get(app)
            d.execute_async_script(MARK, "screen:enrol")
            app_t = d.execute_script(TRANSFER)
        print(
            f"first load transferred: app {app_t['bytes'] / 1024:.1f} KB in {app_t['requests']} requests "
            f"(goal <= 100 KB), blank {blank_t['bytes'] / 1024:.2f} KB in {blank_t['requests']}; "
            f"ratio {app_t['bytes'] / max(1, blank_t['bytes']):.1f}"
        )

        # 2. first usable screen under CPU x4 + slow 4G
        def throttled(d):
            d.execute_cdp_cmd("Network.enable", {})
            d.execute_cdp_cmd("Network.emulateNetworkConditions", SLOW_4G)
            d.execute_cdp_cmd("Emulation.setCPUThrottlingRate", {"rate": 4})

        with chromium(width=390, height=844, mobile=True) as d:
            d.set_script_timeout(120)
            throttled(d)
            d.get(blank)
            blank_ms = d.execute_async_script(LOADED)
        with chromium(width=390, height=844, mobile=True) as d:
            d.set_script_timeout(120)
            throttled(d)
            d.get(app)
            first_ms = d.execute_async_script(MARK, "screen:enrol")
            d.execute_script("return navigator.serviceWorker.ready.then(() => true)")
            d.execute_async_script(
                "const done = arguments[0]; const poll = () => navigator.serviceWorker.controller ? done(true) : "
                "setTimeout(poll, 50); navigator.serviceWorker.ready.then(poll);"
            )
            d.execute_async_script(PLANT_TOKEN, token)
            d.get(app)
            home_ms = d.execute_async_script(MARK, "screen:home")
            d.get(blank)
            blank_again_ms = d.execute_async_script(LOADED)
        print(
            f"first usable screen (CPU x4, slow 4G): first visit {first_ms:.0f} ms (enrol), returning visit "
            f"{home_ms:.0f} ms (home with its data), blank page {blank_ms:.0f} ms (again {blank_again_ms:.0f} ms); "
            f"ratios {first_ms / blank_ms:.1f} and {home_ms / blank_again_ms:.1f}"
        )

        # 3. tap to "Saved" on loopback
        with chromium(width=390, height=844, mobile=True) as d:
            d.set_script_timeout(60)
            d.get(app)
            d.execute_async_script(MARK, "screen:enrol")
            d.execute_async_script(PLANT_TOKEN, token)
            d.get(f"{base}/app/dose")
            d.execute_async_script(MARK, "screen:dose")
            app_taps = [d.execute_async_script(TAP_SAVED) for _ in range(taps)]
            d.get(blank)
            blank_taps = [d.execute_async_script(TAP_BLANK) for _ in range(taps)]
        a, b = statistics.median(app_taps), statistics.median(blank_taps)
        print(
            f"tap to 'Saved' (median of {taps}): app {a:.1f} ms (p90 {sorted(app_taps)[int(0.9 * taps) - 1]:.1f}), "
            f"blank page {b:.1f} ms; ratio {a / max(b, 0.1):.1f}"
        )
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
        connection.close()
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
