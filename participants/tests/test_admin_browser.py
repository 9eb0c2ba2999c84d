"""End to end in a real headless Chromium: the coordinator logs in, registers a participant, shows the code,
the phone enrols with it over the HTTP API and answers its first survey, and the coordinator sees it arrive."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid

import pytest
import requests
from django.utils import timezone

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


def _ensure_chromium() -> None:
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("chromium and chromium-driver are missing and cannot be installed here (needs root and apt-get)")
    result = subprocess.run(
        ["apt-get", "install", "-y", "chromium", "chromium-driver"], capture_output=True, text=True, timeout=900
    )
    if result.returncode != 0 or not os.path.exists(CHROMEDRIVER):
        pytest.skip(f"could not install chromium: {result.stderr[-500:]}")


@pytest.fixture
def browser():
    _ensure_chromium()
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="trialsite-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}", "--window-size=1400,1000"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.browser
def test_coordinator_main_flow_in_a_real_browser(live_server, trial, site_ldn, make_staff, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    make_staff("coordinator", site=site_ldn, username="coord", password="correct-horse-battery-9")
    base = live_server.url

    # 1. log in
    browser.get(f"{base}/admin/login/?next=/admin/")
    browser.find_element(By.NAME, "username").send_keys("coord")
    browser.find_element(By.NAME, "password").send_keys("correct-horse-battery-9")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "trialsite-pages"))
    assert "Trial administration" in browser.page_source

    # 2. register a participant (all eligibility criteria true)
    browser.get(f"{base}/admin/participants/participant/add/")
    for box in browser.find_elements(By.CSS_SELECTOR, "input[type=checkbox][name^=elig_]"):
        box.click()
    browser.find_element(By.NAME, "_register").click()

    # 3. the code and its QR are shown
    code = browser.find_element(By.ID, "enrolment-code").text.strip()
    study_id = browser.find_element(By.ID, "study-id").text.strip()
    assert len(code) == 9 and code[4] == "-"
    assert browser.find_elements(By.CSS_SELECTOR, ".enrolment-qr svg")

    # 4. the phone enrols, consents and answers its first survey through the HTTP API
    enrol = requests.post(
        f"{base}/api/v1/enrol",
        json={"code": code, "device": {"platform": "ios", "app_version": "1.0", "timezone": "Europe/London"}},
        timeout=10,
    )
    assert enrol.status_code == 201, enrol.text
    headers = {"Authorization": f"Bearer {enrol.json()['token']}"}
    consent = requests.get(f"{base}/api/v1/consent", headers=headers, timeout=10).json()
    signed = requests.post(
        f"{base}/api/v1/consent",
        json={"version": consent["version"], "sha256": consent["sha256"], "agree": True, "typed_name": "Ann Example"},
        headers=headers,
        timeout=10,
    )
    assert signed.status_code == 201, signed.text
    surveys = requests.get(f"{base}/api/v1/surveys", params={"status": "open"}, headers=headers, timeout=10).json()
    gad7 = next(s for s in surveys["results"] if s["instrument"]["slug"] == "gad7")
    answer = requests.post(
        f"{base}/api/v1/surveys/{gad7['id']}/response",
        json={"answers": {f"gad7_{i}": 1 for i in range(1, 8)}, "authored": timezone.now().isoformat()},
        headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text

    # 5. the coordinator sees the first answer arrive
    browser.get(f"{base}/admin/participants/participant/")
    row = browser.find_element(By.XPATH, f"//tr[.//a[text()='{study_id}']]")
    assert "enrolled" in row.text
    last_answer = row.find_element(By.CSS_SELECTOR, "td.field-last_answer_col").text
    assert last_answer not in ("", "—")
    row.find_element(By.LINK_TEXT, study_id).click()
    surveys_section = browser.find_element(By.XPATH, "//h2[starts-with(text(), 'Surveys')]/..").text
    assert "gad7" in surveys_section and "total=7" in surveys_section.replace(".0", "")
