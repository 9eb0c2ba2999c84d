"""End to end in a real headless Chromium: the coordinator logs in, registers a participant, shows the code,
the phone enrols with it over the HTTP API and answers its first survey, and the coordinator sees it arrive."""

from __future__ import annotations

import uuid

import pytest
import requests
from django.utils import timezone

from trialsite.tests.browser import chromium


@pytest.fixture
def browser():
    with chromium() as driver:
        driver.implicitly_wait(5)
        yield driver


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
