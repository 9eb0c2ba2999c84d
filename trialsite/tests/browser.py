"""The one place browser tests get their Chromium (shared by every app's browser tests).

Rule (issue 10): the browser tests never skip silently. `make browser-deps` (called by `make test`) installs
Debian's chromium and chromium-driver when root; if the browser still cannot be had, the test FAILS saying how to
get it, unless SKIP_BROWSER=1 is set on purpose, in which case it skips with that reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOW_TO_GET_IT = (
    "Chromium for the browser tests is missing. Install it with `make browser-deps` (as root: "
    "`apt-get install -y chromium chromium-driver`), or set SKIP_BROWSER=1 to skip the browser tests on purpose."
)


def _present() -> bool:
    return os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)


def ensure_chromium() -> None:
    if os.environ.get("SKIP_BROWSER") == "1":
        pytest.skip("SKIP_BROWSER=1 is set: browser tests skipped on purpose")
    if _present():
        return
    detail = "not root or no apt-get here"
    if os.geteuid() == 0 and shutil.which("apt-get"):
        result = subprocess.run(
            ["apt-get", "install", "-y", "chromium", "chromium-driver"], capture_output=True, text=True, timeout=900
        )
        if _present():
            return
        detail = result.stderr[-500:]
    pytest.fail(f"{HOW_TO_GET_IT} ({detail})", pytrace=False)


@contextmanager
def chromium(*, width: int = 1400, height: int = 1000, mobile: bool = False, extra_flags: tuple[str, ...] = ()):
    """A fresh headless Chromium (own profile, removed afterwards). mobile=True: a phone with touch."""
    ensure_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="trialsite-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", *extra_flags]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        from trialsite.tests.clock import page_script

        if shift := page_script():  # TRIALSITE_TEST_CLOCK: the page's clock moves with the session's
            driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": shift})
        if mobile:
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 3, "mobile": True},
            )
            driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
