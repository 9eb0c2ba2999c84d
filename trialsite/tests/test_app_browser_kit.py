"""The participant app's kit screen in headless Chromium (phone viewport), against the live server: an
envelope label's QR link (/app/kit#CODE) fills the code, recording it goes through the offline queue (/sync,
kind "kit") exactly once even when recorded offline and flushed after reconnecting; another participant's code is
refused with the server's message and kept for the participant to discard; axe on the screen; nothing about
conditions in any cache or IndexedDB record."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from trialsite.tests.app_browser_helpers import DUMP_STORAGE, IDB_PUT, Phone, leaks, net_switch, secret_arms_trial
from trialsite.tests.browser import chromium

pytestmark = pytest.mark.browser


@pytest.fixture
def kit_trial(transactional_db):
    from surveys.tests.kit_helpers import SELF_BLINDING

    return secret_arms_trial(SELF_BLINDING, site_code="SBL", site_name="Online", seed=3, per_stratum=8)


def test_recording_an_envelope_in_the_app(live_server, kit_trial):
    from participants.kit_models import KitEnvelope
    from participants.services.kits import kit_code_format
    from surveys.tests.kit_helpers import randomised_participant

    trial, site = kit_trial
    # Randomised two days ago: period 1 (day 1) has started.
    participant, key = randomised_participant(trial=trial, site=site, randomised_at=timezone.now() - timedelta(days=2))
    other, _ = randomised_participant(trial=trial, site=site, randomised_at=timezone.now() - timedelta(days=2))
    mine = KitEnvelope.objects.filter(participant=participant).values_list("code", flat=True).first()
    foreign = KitEnvelope.objects.filter(participant=other).values_list("code", flat=True).first()

    switch = net_switch(live_server)
    try:
        with chromium(width=390, height=844, mobile=True) as driver:
            driver.set_script_timeout(30)
            driver.execute_cdp_cmd("Network.enable", {})
            phone = Phone(driver, switch.url)
            base = phone.base
            driver.get(f"{base}/app/enrol")
            phone.screen("enrol")
            driver.execute_async_script(IDB_PUT, "kv", "token", key)

            # Home says this period's envelope is due.
            driver.get(f"{base}/app/")
            phone.screen("home")
            phone.wait("!!document.getElementById('kit-due')")
            assert "Period 1" in phone.text()
            phone.wait("navigator.serviceWorker.controller !== null", timeout=30)

            # Offline, the label's QR link opens the kit screen with the code filled in (the fragment leaves the
            # address bar); recording keeps it on the phone.
            phone.offline(switch)
            driver.get(f"{base}/app/kit#{mine}")
            phone.screen("kit")
            assert "#" not in driver.current_url
            assert phone.css("#kit-code").get_attribute("value") == kit_code_format(mine)
            phone.check("kit")
            phone.click("#kit-submit")
            phone.wait("document.getElementById('kit-message').textContent.includes('Saved on this phone')")
            assert not KitEnvelope.objects.filter(participant=participant).exclude(period=None).exists()

            # Back online: the queue flushes (through /sync); home no longer asks for the envelope.
            phone.online(switch)
            driver.get(f"{base}/app/")
            phone.screen("home")
            phone.wait("document.getElementById('pending-count').dataset.count === '0'", timeout=30)
            driver.refresh()
            phone.screen("home")
            phone.wait("document.getElementById('pending-count').dataset.count === '0'")
            assert not driver.find_elements("css selector", "#kit-due")

            # Another participant's code: refused with the server's message, kept until discarded.
            driver.get(f"{base}/app/kit")
            phone.screen("kit")
            phone.css("#kit-code").send_keys(foreign.lower())
            phone.click("#kit-submit")
            phone.wait("document.getElementById('kit-message').textContent.includes('another participant')")
            phone.check("kit-refused")
            storage = driver.execute_async_script(DUMP_STORAGE)
            assert not leaks(storage), leaks(storage)
    finally:
        switch.stop()

    recorded = dict(
        KitEnvelope.objects.filter(participant=participant).exclude(period=None).values_list("period", "code")
    )
    assert recorded == {1: mine}  # exactly once, for the period it was opened in
    assert not KitEnvelope.objects.filter(code=foreign).exclude(period=None).exists()
