"""The participant app end to end in a real headless Chromium at a phone viewport (390×844, touch), against
the live server and the real PostgreSQL: the QR link enrols, consent, baseline PHQ-9 and GAD-7, the
coordinator randomises, the network goes away (for the page AND its service worker), the app still opens,
the daily mood survey and a dose are answered offline, the network comes back, the queue flushes, and the
server holds exactly one of each; a replay adds nothing. axe-core on every screen (light and dark), a leak
probe over every cache and IndexedDB record, screenshots under .local/screenshots/."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from trialsite.tests.app_browser_helpers import (
    DEMO,
    DUMP_STORAGE,
    IDB_PUT,
    PUSH_NOTIFICATIONS,
    SECRET_ARMS,
    Phone,
    leaks,
    local_zone_at,
    net_switch,
    requests_fail,
    secret_arms_trial,
)
from trialsite.tests.browser import chromium
from trialsite.tests.netswitch import NetSwitch

pytestmark = pytest.mark.browser


@pytest.fixture
def secret_trial(transactional_db):
    return secret_arms_trial(DEMO, site_code="LDN", site_name="London", seed=7, per_stratum=4)


def test_participant_app_end_to_end_offline_and_exactly_once(live_server, secret_trial, make_staff):
    from participants.services.registration import participant_register
    from surveys.models import DoseLog, PromptEvent, Response, SurveyInstance

    trial, site = secret_trial
    coordinator = make_staff("coordinator", site=site)
    zone = local_zone_at(21)  # the daily mood window (20:00 + 4 h) is open at the test's real time
    participant, code = participant_register(
        trial=trial, site=site, tz=zone, eligibility={c: True for c in _criteria(trial)}, actor=coordinator
    )
    switch = net_switch(live_server)
    try:
        with chromium(width=390, height=844, mobile=True) as driver:
            driver.set_script_timeout(30)
            driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": zone})
            driver.execute_cdp_cmd("Network.enable", {})
            phone = Phone(driver, switch.url)
            _run(phone, switch, participant, code, coordinator, zone)
    finally:
        switch.stop()

    participant.refresh_from_db()
    responses = Response.objects.filter(participant=participant)
    per_instance = {}
    for r in responses.select_related("instrument"):
        per_instance.setdefault(r.instance_id, []).append(r.instrument.slug)
    assert sorted(s for slugs in per_instance.values() for s in slugs) == ["daily-mood", "gad7", "phq9"]
    assert all(len(v) == 1 for v in per_instance.values())
    assert DoseLog.objects.filter(participant=participant).count() == 1
    mood = Response.objects.get(participant=participant, instrument__slug="daily-mood")
    assert mood.answers["dose_taken"] is True and mood.answers["mood"] == 51
    assert "side_effect" not in mood.answers
    assert SurveyInstance.objects.get(pk=mood.instance_id).schedule_key == "daily_mood"
    assert PromptEvent.objects.filter(instance__participant=participant).count() >= 3


def _criteria(trial):
    from trialsite.protocol.services import protocol_current

    return [c.key for c in protocol_current(trial).eligibility]


def _run(phone: Phone, switch: NetSwitch, participant, code: str, coordinator, zone: str) -> None:
    from participants.services.randomisation import participant_randomise, unit_codes_of
    from surveys.models import DoseLog, Response

    d = phone.d
    base = phone.base

    # 1. A typed wrong code gets a clear message; the enrolment screen passes axe.
    d.get(f"{base}/app/")
    phone.screen("enrol")
    phone.check("enrol")
    phone.css("#code").send_keys("ZZZZ-ZZZZ")
    phone.click("#enrol-submit")
    phone.wait("document.getElementById('enrol-message').textContent.includes('does not work')")
    phone.check("enrol-invalid")

    # 2. The QR code's URL enrols at once; the code does not stay in the address bar.
    d.get("about:blank")
    d.get(f"{base}/app/enrol#{code}")
    phone.screen("consent")
    assert "#" not in d.current_url and code not in d.current_url
    assert phone.idb("kv", "token")
    phone.check("consent")
    phone.click("#consent-submit")
    phone.wait("document.getElementById('consent-message').textContent.length > 0")
    phone.css("#typed-name").send_keys("Ann Example")
    phone.click("#agree")
    phone.click("#consent-submit")

    # 3. Home: the baseline PHQ-9 and GAD-7 are open.
    phone.screen("home")
    phone.wait("document.querySelectorAll('#open-list li').length === 2")
    assert "Open until" in phone.text()
    phone.wait("document.body.dataset.definitions === 'ready'")
    phone.check("home")

    # 4. PHQ-9: a required question refuses "Next" unanswered; answers survive a reload mid-way; back works.
    phq9 = [li for li in d.find_elements("css selector", "#open-list li") if "PHQ" in li.text][0]
    phq9.find_element("css selector", "a").click()
    phone.screen("survey")
    phone.wait("document.getElementById('progress').textContent === '1 of 10'")
    phone.check("survey-choice")
    phone.click("#next")
    phone.wait("document.querySelector('.field-error').textContent.includes('Please answer')")
    phone.check("survey-required-error")
    for n in range(1, 4):
        phone.wait(f"document.getElementById('progress').textContent === '{n} of 10'")
        phone.click("form input[type=radio][id$='-1'] + label")
        phone.click("#next")
    phone.wait("document.getElementById('progress').textContent === '4 of 10'")
    d.refresh()
    phone.screen("survey")
    phone.wait("document.getElementById('progress').textContent === '4 of 10'")
    phone.click("#back")
    phone.wait("document.getElementById('progress').textContent === '3 of 10'")
    assert d.execute_script("return document.querySelector('form input[type=radio][id$=\"-1\"]').checked")
    phone.click("#next")
    for n in range(4, 10):
        phone.wait(f"document.getElementById('progress').textContent === '{n} of 10'")
        phone.click("form input[type=radio][id$='-1'] + label")
        phone.click("#next")
    phone.wait("document.getElementById('progress').textContent === '10 of 10'")
    assert "(optional)" in phone.text()
    phone.click("#next")  # the optional last question left unanswered
    phone.screen("saved")
    phone.wait("document.getElementById('saved').textContent.includes('sent')")
    phone.check("survey-saved")

    # 5. GAD-7 from Home.
    phone.click("a[href='/app/']")
    phone.screen("home")
    phone.wait("document.querySelectorAll('#open-list li a').length === 1")
    phone.click("#open-list li a")
    phone.screen("survey")
    phone.answer_choice_survey(7)
    phone.screen("saved")
    phone.wait("document.getElementById('saved').textContent.includes('sent')")
    assert Response.objects.filter(participant=participant).count() == 2

    # 6. The coordinator randomises (the clock injected one day back, so that day 1's daily mood survey is
    #    open now in the participant's zone).
    allocation = participant_randomise(
        participant=participant, actor=coordinator, now=timezone.now() - timedelta(days=1)
    )
    unit_code = unit_codes_of(allocation)[0]

    # 7. Home online: the daily mood survey is open and its definition is stored; the service worker controls.
    d.get(f"{base}/app/")
    phone.screen("home")
    phone.wait("[...document.querySelectorAll('#open-list li')].some(li => li.textContent.includes('mood'))")
    phone.wait("document.body.dataset.definitions === 'ready'")
    phone.wait("navigator.serviceWorker.controller !== null", message="the service worker controls the page")
    phone.wait("document.getElementById('pending-count').dataset.count === '0'")
    assert "Study day 1" in phone.text()

    # 8. Offline (page and service worker alike): a reload still opens the app, from the service worker.
    phone.offline(switch)
    assert requests_fail(base)
    d.refresh()
    phone.screen("home")
    assert "You are offline" in phone.text()
    phone.check("home-offline")

    # 9. The daily mood survey offline: four sliders (keyboard), a yes/no, an optional text left empty.
    mood_card = [li for li in d.find_elements("css selector", "#open-list li") if "mood" in li.text.lower()][0]
    mood_card.find_element("css selector", "a").click()
    phone.screen("survey")
    from selenium.webdriver.common.keys import Keys

    for n in range(1, 5):
        phone.wait(f"document.getElementById('progress').textContent === '{n} of 6'")
        if n == 1:
            phone.check("survey-slider")
        phone.css("input[type=range]").send_keys(Keys.ARROW_RIGHT)
        phone.click("#next")
    phone.wait("document.getElementById('progress').textContent === '5 of 6'")
    phone.check("survey-boolean")
    phone.click("form input[type=radio][id$='-0'] + label")
    phone.click("#next")
    phone.wait("document.getElementById('progress').textContent === '6 of 6'")
    phone.check("survey-text")
    phone.click("#next")
    phone.screen("saved")
    phone.wait("document.getElementById('saved').textContent === 'Saved on this phone.'")

    # 10. A dose, offline: the unit code typed from the kit label, one tap.
    phone.click("#nav a[href='/app/dose']")
    phone.screen("dose")
    phone.check("dose")
    phone.css("#unit-code").send_keys(unit_code)
    phone.click("#dose-submit")
    phone.wait("document.getElementById('dose-message').textContent.includes('Saved')")
    phone.click("#nav a[href='/app/']")
    phone.screen("home")
    phone.wait("document.getElementById('pending-count').dataset.count === '3'")  # opened event, answers, dose
    assert "3 waiting to be sent" in phone.text()
    phone.check("home-waiting")
    queued = phone.idb("queue")
    assert sorted(i["kind"] for i in queued) == ["dose", "event", "response"]
    assert not Response.objects.filter(participant=participant, instrument__slug="daily-mood").exists()
    assert not DoseLog.objects.filter(participant=participant).exists()

    # 11. Back online: the `online` event flushes the queue; everything reaches the server once.
    phone.online(switch)
    phone.wait("document.getElementById('pending-count').dataset.count === '0'", timeout=30)
    assert Response.objects.filter(participant=participant, instrument__slug="daily-mood").count() == 1
    assert DoseLog.objects.filter(participant=participant).count() == 1

    # 12. Replaying the very same queue (same keys, same bodies) adds nothing: 200 for each, nothing new.
    token = phone.idb("kv", "token")
    replay = requests.post(
        f"{base}/api/v1/sync",
        json={"items": [{"kind": i["kind"], "idempotency_key": i["idempotency_key"], **i["payload"]} for i in queued]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert replay.status_code == 200, replay.text
    statuses = {r["idempotency_key"]: r["status"] for r in replay.json()["results"]}
    kinds = {i["idempotency_key"]: i["kind"] for i in queued}
    assert {kinds[k]: s for k, s in statuses.items() if kinds[k] != "event"} == {"response": 200, "dose": 200}
    assert Response.objects.filter(participant=participant).count() == 3
    assert DoseLog.objects.filter(participant=participant).count() == 1

    # 13. The other screens: side effect (serious shows where to get help), settings, withdraw (cancelled).
    phone.click("#nav a[href='/app/side-effect']")
    phone.screen("side-effect")
    phone.check("side-effect")
    phone.css("#description").send_keys("Headache in the evening")
    phone.click("label[for=severity-moderate]")
    phone.click("label[for=serious]")
    phone.click("#side-submit")
    phone.screen("side-effect-saved")
    assert phone.css("#safety").is_displayed()
    phone.check("side-effect-serious")
    phone.click("#nav a[href='/app/settings']")
    phone.screen("settings")
    assert zone in phone.text()
    phone.check("settings")
    phone.click("a[href='/app/withdraw']")
    phone.screen("withdraw")
    phone.check("withdraw")
    phone.click("label[for=scope-intervention]")
    phone.click("#withdraw-submit")
    phone.screen("withdraw-confirm")
    phone.check("withdraw-confirm")
    phone.click("#withdraw-cancel")
    phone.screen("withdraw")
    phone.click("#nav a[href='/app/']")
    phone.screen("home")
    phone.wait("document.getElementById('pending-count').dataset.count === '0'", timeout=30)

    # 14. The leak probe over every cache entry and IndexedDB record: no arm name or code, no score. First a
    #     positive control: a planted record is found by the same probe.
    d.execute_async_script(IDB_PUT, "kv", "planted", {"arm": SECRET_ARMS["A"]})
    assert leaks(d.execute_async_script(DUMP_STORAGE)), "the probe finds a planted arm name"
    d.execute_async_script(IDB_PUT, "kv", None, "planted")
    dump = d.execute_async_script(DUMP_STORAGE)
    assert any(t.startswith("cache ") for t in dump) and any(t.startswith("idb ") for t in dump)
    assert any("/static/app/js/main.js" in t for t in dump), "the shell is in the cache"
    assert leaks(dump) == []
    assert not any(t.startswith("ERROR") for t in dump)

    # 15. Log out: the token is revoked and every local store, cache and the service worker are gone.
    phone.click("#nav a[href='/app/settings']")
    phone.screen("settings")
    phone.click("#logout")
    phone.screen("enrol")
    assert (
        requests.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 401
    )
    assert d.execute_async_script(DUMP_STORAGE) == [], "no cache entry and no IndexedDB record is left"
    registrations = d.execute_async_script(
        "const done = arguments[0]; navigator.serviceWorker.getRegistrations().then(r => done(r.length));"
    )
    assert registrations == 0


def test_refused_answers_are_kept_and_fixed_on_the_item_push_and_spanish(live_server, secret_trial, make_staff):
    """A 4xx from the server stays in the queue with its message until the participant acts; the item's
    `fields` error is shown on that question; a Web Push message delivered to the service worker shows a
    notification carrying the survey URL; the Spanish catalogue and ?lang= definitions are used."""
    from participants.services.registration import participant_register
    from surveys.models import Response

    trial, site = secret_trial
    coordinator = make_staff("coordinator", site=site)
    participant, code = participant_register(
        trial=trial, site=site, tz="Europe/London", eligibility={c: True for c in _criteria(trial)}, actor=coordinator
    )
    with chromium(width=390, height=844, mobile=True) as driver:
        driver.set_script_timeout(30)
        base = live_server.url.replace("localhost", "127.0.0.1")
        phone = Phone(driver, base)
        driver.get(f"{base}/app/enrol#{code}")
        phone.screen("consent")
        phone.css("#typed-name").send_keys("Ann Example")
        phone.click("#agree")
        phone.click("#consent-submit")
        phone.screen("home")
        phone.wait("document.body.dataset.definitions === 'ready'")
        gad7 = next(i for i in phone.idb("kv", "surveys:open") if i["instrument"]["slug"] == "gad7")

        # A response the server refuses (an answer outside the item's choices) is planted in the queue, as a
        # phone with an older app version might hold it, and flushed.
        bad = {
            "idempotency_key": "5f1d7c52-8a7e-4d55-9d0b-6c2f9f0e1a01",
            "kind": "response",
            "payload": {
                "instance": gad7["id"],
                "answers": {**{f"gad7_{i}": 1 for i in range(1, 8)}, "gad7_3": 7},
                "authored": timezone.now().isoformat(),
            },
            "created": timezone.now().isoformat(),
            "state": "pending",
            "error": None,
        }
        driver.execute_async_script(
            """const [item, done] = arguments; const r = indexedDB.open("trialsite-app");
            r.onsuccess = () => { const tx = r.result.transaction("queue", "readwrite"); tx.objectStore("queue").put(item);
            tx.oncomplete = () => { r.result.close(); done(true); }; };""",
            bad,
        )
        driver.refresh()
        phone.screen("home")
        phone.wait("document.querySelector('#pending .notice.error') !== null")
        assert "did not accept your answers" in phone.text()
        assert "not valid" in phone.text() and "null" not in phone.text()
        assert phone.idb("queue", bad["idempotency_key"])["state"] == "error", "kept until the participant acts"
        phone.check("home-refused")
        assert not Response.objects.filter(instance__uuid=gad7["id"]).exists()

        # "Change answers" opens the survey at the refused item, with the server's message on it.
        phone.click("#pending .notice.error a")
        phone.screen("survey")
        phone.wait("document.getElementById('progress').textContent === '3 of 7'")
        assert "allowed values" in phone.css(".field-error").text
        phone.check("survey-server-error")
        phone.click("form input[type=radio][id$='-2'] + label")
        phone.click("#next")
        for n in range(4, 8):
            phone.wait(f"document.getElementById('progress').textContent === '{n} of 7'")
            phone.click("#next")  # the earlier answers are kept
        phone.screen("saved")
        phone.wait("document.getElementById('saved').textContent.includes('sent')")
        response = Response.objects.get(instance__uuid=gad7["id"])
        assert response.answers["gad7_3"] == 2 and response.answers["gad7_1"] == 1
        assert phone.idb("queue") == [], "the refused item was replaced by the corrected one, which was acknowledged"

        # Web Push: a message delivered to the service worker (CDP) shows a notification with the survey URL.
        phone.wait("navigator.serviceWorker.controller !== null", message="the service worker controls the page")
        driver.execute_cdp_cmd("Browser.grantPermissions", {"origin": base, "permissions": ["notifications"]})
        payload = {
            "title": "A survey is waiting for you",
            "body": "Tap to open it.",
            "url": f"/app/survey/{gad7['id']}",
            "tag": "reminder-1",
        }
        driver.execute_cdp_cmd("ServiceWorker.enable", {})

        def push(message: dict) -> list[str]:
            """Deliver to the page's registration. Its id is not readable through selenium's CDP bridge, and
            registration ids are small integers in a fresh profile: every candidate is tried (an unknown id
            is refused by CDP; only the real registration can show a notification)."""
            accepted = []
            for registration_id in [str(n) for n in range(10)]:
                try:
                    driver.execute_cdp_cmd(
                        "ServiceWorker.deliverPushMessage",
                        {"origin": base, "registrationId": registration_id, "data": json.dumps(message)},
                    )
                    accepted.append(registration_id)
                except Exception:  # noqa: BLE001 - an unknown registration id
                    continue
            assert accepted, "the push message reached a service worker"
            return accepted

        # CDP may accept a message while the worker is still starting and drop it (seen on a loaded machine): the
        # push is delivered again, at most three times; the same tag replaces the notification, so exactly one
        # shows whatever the number of deliveries.
        for attempt in range(3):
            push(payload)
            try:
                phone.wait(
                    "(navigator.serviceWorker.ready.then(r => r.getNotifications())"
                    ".then(l => (window.__notes = l.length)), (window.__notes || 0) > 0)",
                    timeout=15,
                    message="a notification is shown",
                )
                break
            except AssertionError:
                if attempt == 2:
                    raise
        notes = driver.execute_async_script(PUSH_NOTIFICATIONS)
        assert notes == [
            {
                "title": payload["title"],
                "body": payload["body"],
                "tag": "reminder-1",
                "url": f"{base}/app/survey/{gad7['id']}",
            }
        ]
        # A payload pointing elsewhere never makes the notification open another site: it opens the app.
        foreign = {"title": "Reminder", "body": "", "url": "https://example.org/phish", "tag": "reminder-2"}
        push(foreign)
        phone.wait(
            "(navigator.serviceWorker.ready.then(r => r.getNotifications({tag: 'reminder-2'}))"
            ".then(l => (window.__foreign = l.length ? l[0].data.url : null)), window.__foreign)",
            message="the second notification is shown",
        )
        assert driver.execute_script("return window.__foreign") == f"{base}/app/"

        # Spanish: the catalogue switches at once, and definitions are asked for in that language.
        phone.click("#nav a[href='/app/settings']")
        phone.screen("settings")
        from selenium.webdriver.support.select import Select

        Select(phone.css("#language")).select_by_value("es")
        phone.wait("document.documentElement.lang === 'es'")
        phone.wait("document.getElementById('screen-title').textContent === 'Ajustes'")
        phone.check("settings-es")
        phone.click("#nav a[href='/app/']")
        phone.screen("home")
        assert "Su estudio" in phone.text()
        phone.wait("document.body.dataset.definitions === 'ready'")
        keys = driver.execute_async_script(
            """const done = arguments[0]; const r = indexedDB.open("trialsite-app");
            r.onsuccess = () => { const q = r.result.transaction("defs").objectStore("defs").getAllKeys();
            q.onsuccess = () => { r.result.close(); done(q.result); }; };"""
        )
        assert "phq9@1@es" in keys and "phq9@1@en" in keys
        phone.check("home-es")
