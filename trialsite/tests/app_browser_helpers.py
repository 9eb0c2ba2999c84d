"""What the participant app's browser tests share: the phone driver (`Phone`: waits, clicks, axe-core and
screenshots light and dark, offline/online), the in-page storage scripts, the leak probe for the secret arm
names and codes, and the trial with secret arm names they run on."""

from __future__ import annotations

import json
import re
from pathlib import Path

import requests
import yaml
from django.conf import settings
from django.utils import timezone

from trialsite.tests.netswitch import NetSwitch

APP_STATIC = Path(__file__).resolve().parent.parent / "static" / "app"
AXE = (APP_STATIC / "vendor" / "axe.min.js").read_text(encoding="utf-8")
SHOTS = Path(settings.LOCAL_DIR) / "screenshots"
SECRET_ARMS = {"A": "Zetaquin active arm", "B": "Zetaquin control arm"}
SECRET_CODES = ["ZQACT", "ZQCTL"]
DEMO = Path(settings.BASE_DIR) / "protocols" / "microdose-mood.yaml"

# Every Cache Storage entry (URL and body) and every IndexedDB record, as text, from inside the page.
DUMP_STORAGE = """
const done = arguments[arguments.length - 1];
(async () => {
  const out = [];
  for (const name of await caches.keys()) {
    const cache = await caches.open(name);
    for (const req of await cache.keys()) {
      const res = await cache.match(req);
      out.push(`cache ${name} ${req.url}\\n` + (await res.text()));
    }
  }
  for (const info of await indexedDB.databases()) {
    const db = await new Promise((ok, ko) => { const r = indexedDB.open(info.name); r.onsuccess = () => ok(r.result); r.onerror = ko; });
    for (const storeName of db.objectStoreNames) {
      const rows = await new Promise((ok) => {
        const tx = db.transaction(storeName);
        const keys = tx.objectStore(storeName).getAllKeys();
        const vals = tx.objectStore(storeName).getAll();
        tx.oncomplete = () => ok(keys.result.map((k, i) => [k, vals.result[i]]));
      });
      for (const [k, v] of rows) out.push(`idb ${info.name}/${storeName} ${JSON.stringify(k)} ${JSON.stringify(v)}`);
    }
    db.close();
  }
  return out;
})().then(done, (e) => done(["ERROR " + e]));
"""

IDB_GET = """
const [storeName, key, done] = arguments;
const r = indexedDB.open("trialsite-app");
r.onsuccess = () => { const db = r.result; const q = key === null ? db.transaction(storeName).objectStore(storeName).getAll()
  : db.transaction(storeName).objectStore(storeName).get(key); q.onsuccess = () => { done(q.result ?? null); db.close(); }; };
r.onerror = () => done("ERROR");
"""

IDB_PUT = """
const [storeName, key, value, done] = arguments;
const r = indexedDB.open("trialsite-app");
r.onsuccess = () => { const db = r.result; const tx = db.transaction(storeName, "readwrite");
  key === null ? tx.objectStore(storeName).delete(value) : tx.objectStore(storeName).put(value, key);
  tx.oncomplete = () => { db.close(); done(true); }; };
"""


def leaks(texts: list[str]) -> list[str]:
    found = []
    for text in texts:
        for name in SECRET_ARMS.values():
            if name.lower() in text.lower():
                found.append(f"{name!r} in {text[:120]!r}")
        for code in SECRET_CODES:
            if re.search(rf"(?<![A-Za-z0-9]){code}(?![A-Za-z0-9])", text):
                found.append(f"{code!r} in {text[:120]!r}")
        for word in ('"score"', '"total"', '"arm"', '"stratum"', '"allocation"'):
            if word in text:
                found.append(f"{word} in {text[:120]!r}")
    return found


def local_zone_at(hour: int) -> str:
    """A fixed-offset IANA zone in which the real current time is `hour`:mm (decided from timezone.now())."""
    offset = (hour - timezone.now().hour) % 24
    if offset > 14:
        offset -= 24
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


def secret_arms_trial(protocol: Path, *, site_code: str, site_name: str, seed: int, per_stratum: int):
    """The protocol with its two arms renamed to the secret names and codes the leak probe looks for, a site,
    and an allocation list."""
    from participants.services.allocation import allocation_list_generate
    from trialsite.protocol.services import protocol_load
    from trialsite.services import site_create

    data = yaml.safe_load(protocol.read_text(encoding="utf-8"))
    data["arms"][0].update(code="ZQACT", name=SECRET_ARMS["A"])
    data["arms"][1].update(code="ZQCTL", name=SECRET_ARMS["B"])
    trial = protocol_load(source=yaml.safe_dump(data, sort_keys=False)).trial
    site = site_create(code=site_code, name=site_name, timezone="Europe/London", trials=[trial])
    allocation_list_generate(trial=trial, seed=seed, per_stratum=per_stratum)
    return trial, site


def net_switch(live_server) -> NetSwitch:
    """A switchable proxy in front of the live server (cuts the network for the page AND its service worker)."""
    live = live_server.url.split("//", 1)[1]
    host, port = live.rsplit(":", 1)
    return NetSwitch("127.0.0.1" if host == "localhost" else host, int(port))


class Phone:
    def __init__(self, driver, base: str):
        self.d = driver
        self.base = base
        self.axe_checked: list[str] = []
        SHOTS.mkdir(parents=True, exist_ok=True)

    def wait(self, script: str, timeout: float = 20, message: str = ""):
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.1).until(
                lambda d: d.execute_script(f"return {script}"), message or script
            )
        except TimeoutException:
            console = [e["message"] for e in self.d.get_log("browser")][-10:]
            main = self.d.execute_script("return document.getElementById('main')?.innerText")
            raise AssertionError(f"{message or script}\nscreen text: {main!r}\nconsole: {console}") from None

    def screen(self, name: str, timeout: float = 20) -> None:
        self.wait(f"document.getElementById('main').dataset.screen === {json.dumps(name)}", timeout)

    def css(self, selector: str):
        from selenium.webdriver.common.by import By

        return self.d.find_element(By.CSS_SELECTOR, selector)

    def click(self, selector: str) -> None:
        el = self.css(selector)
        self.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
        el.click()

    def text(self) -> str:
        return self.css("main").text

    def idb(self, store: str, key=None):
        return self.d.execute_async_script(IDB_GET, store, key)

    def check(self, name: str) -> None:
        """Screenshots light and dark, and axe-core (WCAG 2.0/2.1 A and AA) with zero violations in both."""
        for scheme in ("light", "dark"):
            self.d.execute_cdp_cmd(
                "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]}
            )
            self.d.save_screenshot(str(SHOTS / f"{name}-{scheme}.png"))
            if not self.d.execute_script("return typeof window.axe === 'object'"):
                self.d.execute_script(AXE)
            result = self.d.execute_async_script(
                """const done = arguments[arguments.length - 1];
                axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
                  .then(r => done(r.violations.map(v => ({id: v.id, help: v.help, nodes: v.nodes.map(n => n.html).slice(0, 3)}))),
                        e => done([{id: 'axe-error', help: String(e), nodes: []}]));"""
            )
            assert result == [], f"axe on {name} ({scheme}): {json.dumps(result, indent=1)}"
        self.d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
        self.axe_checked.append(name)

    def offline(self, switch: NetSwitch) -> None:
        switch.set_online(False)
        self.d.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )

    def online(self, switch: NetSwitch) -> None:
        switch.set_online(True)
        self.d.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )

    def answer_choice_survey(self, count: int, pick: int = 1) -> None:
        for n in range(1, count + 1):
            self.wait(f"document.getElementById('progress')?.textContent === '{n} of {count}'")
            self.click(f"form input[type=radio][id$='-{pick}'] + label")
            self.click("#next")


def requests_fail(base: str) -> bool:
    try:
        requests.get(f"{base}/app/", timeout=5)
    except requests.RequestException:
        return True
    return False


PUSH_NOTIFICATIONS = """
const done = arguments[0];
navigator.serviceWorker.ready.then(reg => reg.getNotifications()).then(
  list => done(list.map(n => ({title: n.title, body: n.body, tag: n.tag, url: n.data && n.data.url}))),
  e => done("ERROR " + e));
"""
