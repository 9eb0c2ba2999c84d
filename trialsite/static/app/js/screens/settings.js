// Settings: language, time zone (detected with Intl, confirmed with PATCH /me), quiet hours, channels, Web
// Push on this phone (only when the server offers it), withdraw and log out.
import * as api from "../api.js";
import * as queue from "../queue.js";
import * as session from "../session.js";
import * as store from "../store.js";
import { navigate } from "../router.js";
import { t, lang, setLang, LANGUAGES } from "../i18n.js";
import { h, screen, notice, button, link, announce } from "../ui.js";

function b64ToBytes(b64) {
  const s = atob(b64.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((b64.length + 3) % 4));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

async function pushSection() {
  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) return null;
  let key;
  try {
    key = (await api.get("push/vapid-key", { auth: false })).public_key;
  } catch (_) {
    return null; // the server does not offer Web Push (yet): no setting to show
  }
  const reg = await navigator.serviceWorker.ready;
  const current = await reg.pushManager.getSubscription();
  const message = h("p", { id: "push-state" }, current ? t("push.on") : t("push.off"));
  const toggle = button(current ? t("push.disable") : t("push.enable"), async () => {
    toggle.disabled = true;
    try {
      const sub = await reg.pushManager.getSubscription();
      if (sub) {
        await api.remove("push/subscription", { endpoint: sub.endpoint });
        await sub.unsubscribe();
      } else {
        if ((await Notification.requestPermission()) !== "granted") throw new Error(t("push.denied"));
        const fresh = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64ToBytes(key) });
        const json = fresh.toJSON();
        await api.put("push/subscription", { endpoint: json.endpoint, keys: json.keys });
      }
      render();
    } catch (e) {
      toggle.disabled = false;
      message.textContent = e.message || t("push.failed");
    }
  }, { id: "push-toggle" });
  return h("section", { "aria-labelledby": "h-push" }, h("h2", { id: "h-push" }, t("push.title")), h("p", { class: "hint" }, t("push.hint")), message, toggle);
}

export async function render() {
  const me = (await session.me()) || {};
  const detected = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const message = h("div", { id: "settings-message", "aria-live": "polite" });
  const saving = async (body) => {
    try {
      await store.set("me", await api.patch("me", body));
      message.replaceChildren(notice("success", t("settings.saved")));
      announce(t("settings.saved"));
      return true;
    } catch (e) {
      message.replaceChildren(notice("error", e.status === 0 ? t("settings.offline") : e.message));
      return false;
    }
  };

  const language = h("select", { id: "language", name: "language" }, LANGUAGES.map(([code, label]) => h("option", { value: code, selected: code === lang() }, label)));
  language.addEventListener("change", async () => {
    await setLang(language.value);
    render();
  });

  const zone = h(
    "section",
    { "aria-labelledby": "h-zone" },
    h("h2", { id: "h-zone" }, t("settings.zone")),
    h("p", { id: "zone-current" }, t("settings.zone_current", { zone: me.timezone || "?" })),
    detected && detected !== me.timezone
      ? h(
          "div",
          {},
          h("p", { id: "zone-detected" }, t("settings.zone_detected", { zone: detected })),
          button(t("settings.zone_use", { zone: detected }), async () => (await saving({ timezone: detected })) && render(), { id: "zone-use" }),
        )
      : h("p", { class: "hint" }, t("settings.zone_same")),
  );

  const qh = me.quiet_hours || {};
  const start = h("input", { id: "quiet-start", type: "time", value: qh.start ? qh.start.slice(0, 5) : "" });
  const end = h("input", { id: "quiet-end", type: "time", value: qh.end ? qh.end.slice(0, 5) : "" });
  const channels = ["email", "sms", "push"].map((c) =>
    h("div", { class: "check" }, h("input", { type: "checkbox", id: `ch-${c}`, value: c, checked: (me.channels || []).includes(c) }), h("label", { for: `ch-${c}` }, t(`channel.${c}`))),
  );
  const prefs = h(
    "form",
    { novalidate: true, "aria-labelledby": "h-reminders" },
    h("h2", { id: "h-reminders" }, t("settings.reminders")),
    h("fieldset", {}, h("legend", {}, t("settings.quiet")), h("label", { for: "quiet-start" }, t("settings.quiet_start")), start, h("label", { for: "quiet-end" }, t("settings.quiet_end")), end),
    h("fieldset", {}, h("legend", {}, t("settings.channels")), channels),
    h("button", { type: "submit", class: "btn primary", id: "prefs-save" }, t("settings.save")),
  );
  prefs.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { channels: channels.map((c) => c.querySelector("input")).filter((i) => i.checked).map((i) => i.value) };
    body.quiet_hours = start.value && end.value ? { start: start.value, end: end.value } : null;
    await saving(body);
  });

  const logout = button(t("settings.logout"), async () => {
    const waiting = (await queue.all()).length;
    if (waiting && !logout.dataset.confirm) {
      logout.dataset.confirm = "1";
      message.replaceChildren(notice("warning", t("settings.logout_waiting", { n: waiting })));
      return;
    }
    await logOut();
  }, { class: "btn danger", id: "logout" });

  screen(
    "settings",
    t("settings.title"),
    message,
    h("div", { class: "field" }, h("label", { for: "language" }, t("settings.language")), language),
    zone,
    prefs,
    await pushSection(),
    h("section", { "aria-labelledby": "h-account" }, h("h2", { id: "h-account" }, t("settings.account")), link(t("settings.withdraw"), "/app/withdraw", { class: "btn secondary" }), logout),
  );
}

// Log out: revoke the token on the server (best effort), then forget everything kept on this phone: the
// database (token, answers, definitions, queue), every cache, the push subscription and the service worker.
export async function logOut() {
  await api.post("logout", {}).catch(() => null);
  try {
    const reg = await navigator.serviceWorker?.getRegistration("/app/");
    const sub = reg && (await reg.pushManager?.getSubscription());
    if (sub) await sub.unsubscribe();
    if (reg) await reg.unregister();
  } catch (_) {
    /* nothing to undo */
  }
  if (window.caches) for (const name of await caches.keys()) await caches.delete(name);
  await store.wipe();
  window.dispatchEvent(new CustomEvent("token-changed"));
  await navigate("/app/enrol", { replace: true });
}
