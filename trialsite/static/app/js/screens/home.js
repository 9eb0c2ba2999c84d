// Home: open now (local closing time, time left), upcoming, completed, missed, the study day, and what is
// waiting to be sent (with the server's message for anything it refused).
import * as api from "../api.js";
import * as queue from "../queue.js";
import * as session from "../session.js";
import { navigate } from "../router.js";
import { t } from "../i18n.js";
import { h, screen, notice, button, link, fmtTime, fmtWhen, timeLeft } from "../ui.js";

let listening = false;

export async function render() {
  const me = await session.me();
  if (me && me.consent && me.consent.needs_consent) return navigate("/app/consent", { replace: true });
  const [open, upcoming, completed, missed] = await Promise.all(
    ["open", "upcoming", "completed", "missed"].map((s) => session.surveys(s)),
  );
  const items = await queue.all();
  const kit = await api.get("kit").catch(() => null); // self-blinding trials: this period's envelope
  const queuedInstances = new Set(items.filter((i) => i.kind === "response").map((i) => i.payload.instance));
  const offline = open.cached;
  document.body.dataset.definitions = offline ? "cached" : "loading";
  if (!offline)
    session
      .prefetchDefinitions([...open.results, ...upcoming.results.slice(0, 10)])
      .then(() => (document.body.dataset.definitions = "ready"));

  const openList = open.results.length
    ? h(
        "ul",
        { class: "cards", id: "open-list" },
        open.results.map((inst) => {
          const waiting = queuedInstances.has(inst.id);
          return h(
            "li",
            { class: "card", "data-instance": inst.id },
            h("h3", {}, inst.instrument.title),
            h(
              "p",
              {},
              t("home.closes", { time: fmtTime(inst.closes_at, inst.timezone), left: timeLeft(inst.closes_at) }),
            ),
            waiting
              ? h("p", { class: "tag" }, t("home.saved_waiting"))
              : link(t("home.start"), `/app/survey/${inst.id}`, { class: "btn primary", "aria-label": `${t("home.start")}: ${inst.instrument.title}` }),
          );
        }),
      )
    : h("p", { class: "empty" }, t("home.none_open"));

  const small = (list, id, fmt, empty) =>
    list.length
      ? h("ul", { class: "plain", id }, list.slice(0, 5).map((inst) => h("li", {}, `${inst.instrument.title} · ${fmt(inst)}`)))
      : h("p", { class: "empty" }, empty);

  screen(
    "home",
    t("home.title"),
    me && me.study_day !== null && me.study_day !== undefined ? h("p", { class: "lead", id: "study-day" }, t("home.study_day", { day: me.study_day })) : null,
    offline ? notice("info", t("home.offline")) : null,
    pendingBox(items),
    kitBox(kit, items),
    h("section", { "aria-labelledby": "h-open" }, h("h2", { id: "h-open" }, t("home.open")), openList),
    h(
      "section",
      { "aria-labelledby": "h-upcoming" },
      h("h2", { id: "h-upcoming" }, t("home.upcoming")),
      small(upcoming.results, "upcoming-list", (i) => t("home.opens", { when: fmtWhen(i.opens_at, i.timezone) }), t("home.none_upcoming")),
    ),
    h(
      "section",
      { "aria-labelledby": "h-done" },
      h("h2", { id: "h-done" }, t("home.completed", { n: completed.results.length })),
      small(completed.results, "completed-list", (i) => fmtWhen(i.opens_at, i.timezone), t("home.none_completed")),
    ),
    h(
      "section",
      { "aria-labelledby": "h-missed" },
      h("h2", { id: "h-missed" }, t("home.missed", { n: missed.results.length })),
      small(missed.results, "missed-list", (i) => fmtWhen(i.opens_at, i.timezone), t("home.none_missed")),
    ),
  );
  if (!listening) {
    listening = true;
    window.addEventListener("queue-changed", refreshPending);
  }
}

function kitBox(kit, items) {
  if (!kit || !kit.periods || !kit.periods.length || !kit.current_period) return null;
  const period = kit.periods[kit.current_period - 1];
  const queued = items.some((i) => i.kind === "kit" && i.state === "pending");
  if (!period || period.recorded || queued) return null;
  return h(
    "section",
    { id: "kit-due", class: "card" },
    h("p", {}, t("home.kit_due", { n: kit.current_period })),
    link(t("kit.save"), "/app/kit", { class: "btn primary" }),
  );
}

async function refreshPending() {
  const box = document.getElementById("pending");
  if (!box) return;
  box.replaceWith(pendingBox(await queue.all()));
}

function pendingBox(items) {
  const waiting = items.filter((i) => i.state === "pending");
  const refused = items.filter((i) => i.state === "error");
  return h(
    "section",
    { id: "pending", class: "pending", "aria-live": "polite" },
    h(
      "p",
      { id: "pending-count", "data-count": String(waiting.length + refused.length) },
      waiting.length + refused.length === 0 ? t("home.all_sent") : t("home.waiting", { n: waiting.length + refused.length }),
    ),
    waiting.length ? button(t("home.send_now"), () => queue.flush(), { id: "send-now" }) : null,
    refused.map((item) =>
      notice(
        "error",
        t("home.refused", { what: t(`kind.${item.kind}`), message: (item.error && item.error.message) || "" }),
        h(
          "div",
          { class: "row" },
          item.kind === "response" && item.error && item.error.code === "validation_error"
            ? link(t("home.fix"), `/app/survey/${item.payload.instance}`)
            : button(t("home.retry"), () => queue.retry(item.idempotency_key)),
          button(t("home.discard"), () => queue.remove(item.idempotency_key), { class: "btn secondary" }),
        ),
      ),
    ),
  );
}
