"""TRIALSITE_TEST_CLOCK: run the tests as if the real clock read another instant (off unless set).

`make test TEST_CLOCK=2026-11-01T05:55:00Z` (or the variable itself) starts the test session at that instant, the
clock still ticking, so that a test whose outcome depends on the hour, the date, the weekday or a DST change of
the real clock can be caught before CI happens to run at that moment. Every process of the session moves by the
same offset:
- the pytest process (this module, from the root conftest), and with it the in-process live server;
- the Celery workers, beats and gunicorn processes it starts: they inherit TRIALSITE_TEST_CLOCK_OFFSET and the test
  settings call `start()` too;
- the pages in the tests' Chromium: `page_script()` shifts the page's `Date` (see trialsite/tests/browser.py).
PostgreSQL's and Redis's own clocks do not move; no decision in the code is taken on them (`statement_timestamp()`
in the export snapshot only labels it).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

CLOCK = "TRIALSITE_TEST_CLOCK"
OFFSET = "TRIALSITE_TEST_CLOCK_OFFSET"  # seconds, set by the first process for the processes it starts

_traveller = None


def offset() -> float | None:
    """Seconds between the session's clock and the real one, or None when the clock is the real one."""
    if os.environ.get(OFFSET):
        return float(os.environ[OFFSET])
    if not os.environ.get(CLOCK):
        return None
    instant = datetime.fromisoformat(os.environ[CLOCK].replace("Z", "+00:00"))
    if instant.tzinfo is None:
        raise ValueError(f"{CLOCK}={os.environ[CLOCK]!r} needs a UTC offset (e.g. 2026-11-01T05:55:00Z)")
    seconds = instant.timestamp() - time.time()
    os.environ[OFFSET] = repr(seconds)
    return seconds


def start() -> datetime | None:
    """Move this process's clock by the session's offset (once; ticking). Returns the moved 'now', or None."""
    global _traveller
    seconds = offset()
    if seconds is None:
        return None
    if _traveller is None:
        import time_machine

        _traveller = time_machine.travel(time.time() + seconds, tick=True)
        _traveller.start()
    return datetime.now(UTC)


def page_script() -> str | None:
    """JavaScript that shifts a page's `Date` by the session's offset (evaluated before the page's own scripts)."""
    seconds = offset()
    if seconds is None:
        return None
    shift = round(seconds * 1000)
    return (
        f"(() => {{ const shift = {shift}; const RealDate = Date;"
        " class ShiftedDate extends RealDate {"
        " constructor(...a) { if (a.length === 0) { super(RealDate.now() + shift); } else { super(...a); } }"
        " static now() { return RealDate.now() + shift; } }"
        " globalThis.Date = ShiftedDate; })();"
    )
