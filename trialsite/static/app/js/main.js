// Boot: language, service worker, persistent storage, queue flushing triggers, then the router.
import * as router from "./router.js";
import * as queue from "./queue.js";
import * as store from "./store.js";
import * as session from "./session.js";
import { initLang, t } from "./i18n.js";
import { h } from "./ui.js";

async function guard(route) {
  const token = await store.token();
  if (!token) return route.name === "enrol" ? null : "/app/enrol";
  if (route.name === "enrol" && !location.hash) return "/app/";
  if (route.name === "consent" || route.name === "settings") return null;
  const me = await store.get("me");
  if (me && me.consent && me.consent.needs_consent) return "/app/consent";
  return null;
}

export function renderNav(show) {
  const nav = document.getElementById("nav");
  document.getElementById("brand").textContent = t("app.name");
  if (!show) return nav.replaceChildren();
  const items = [
    ["/app/", t("nav.home")],
    ["/app/dose", t("nav.dose")],
    ["/app/side-effect", t("nav.side_effect")],
    ["/app/settings", t("nav.settings")],
  ];
  nav.replaceChildren(h("ul", {}, items.map(([href, label]) => h("li", {}, h("a", { href, "data-link": "" }, label)))));
}

async function flushSoon() {
  if (await store.token()) queue.flush().catch(() => null);
}

async function boot() {
  await initLang();
  renderNav(Boolean(await store.token()));
  window.addEventListener("token-changed", async () => renderNav(Boolean(await store.token())));
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/app/sw.js", { scope: "/app/" }).catch(() => null);
    navigator.serviceWorker.addEventListener("message", (event) => {
      if (event.data && event.data.type === "queue-flushed") window.dispatchEvent(new CustomEvent("queue-changed"));
    });
  }
  if (navigator.storage && navigator.storage.persist) navigator.storage.persist().catch(() => null);
  window.addEventListener("online", flushSoon);
  document.addEventListener("visibilitychange", () => document.visibilityState === "visible" && flushSoon());
  router.setGuard(guard);
  window.addEventListener("unhandledrejection", async (event) => {
    if (event.reason && event.reason.status === 401) {
      await store.del("token");
      router.navigate("/app/enrol", { replace: true });
    }
  });
  await router.start();
  flushSoon();
  session.me().catch(() => null);
}

boot();
