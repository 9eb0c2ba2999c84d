// The survey renderer: one question at a time with progress, back, required marks and client-side checks
// that mirror the server's (surveys/validation.py); the server stays the judge and its per-item `fields`
// errors are shown on the item. Answers are saved in IndexedDB as they are given and resumed after a reload.
import * as queue from "../queue.js";
import * as session from "../session.js";
import * as store from "../store.js";
import { t } from "../i18n.js";
import { h, screen, notice, button, link, localIso, announce } from "../ui.js";
import { scan } from "../scan.js";
import { normalise as normaliseKit, format as formatKit } from "../kitcode.js";

const TIME = /^([01]\d|2[0-3]):([0-5]\d)$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

// enable_when, as the server evaluates it: a missing left side is never true.
function compare(op, left, right) {
  if (left === null || left === undefined) return false;
  const num = (v) => typeof v === "number" && Number.isFinite(v);
  if (op === "eq") return JSON.stringify(left) === JSON.stringify(right);
  if (op === "ne") return JSON.stringify(left) !== JSON.stringify(right);
  if (op === "in") return (Array.isArray(right) ? right : [right]).some((r) => JSON.stringify(r) === JSON.stringify(left));
  if (typeof left === "boolean" || !num(left) || !num(right)) return false;
  return { gt: left > right, gte: left >= right, lt: left < right, lte: left <= right }[op] || false;
}

export function enabledItems(def, answers) {
  return def.items.filter((item) => {
    const c = item.enable_when;
    return !c || compare(c.op, answers[c.item], c.value);
  });
}

// → an error message, or null when the answer is acceptable.
export function check(item, value) {
  if (value === null || value === undefined) return item.required ? t("check.required") : null;
  const lo = item.min;
  const hi = item.max;
  const range = (v) => {
    if (lo !== null && lo !== undefined && v < lo) return t("check.min", { min: lo });
    if (hi !== null && hi !== undefined && v > hi) return t("check.max", { max: hi });
    return null;
  };
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  switch (item.type) {
    case "choice":
      return item.options.some((o) => same(o.value, value)) ? null : t("check.choice");
    case "multi_choice":
      if (!Array.isArray(value)) return t("check.choice");
      return value.every((v) => item.options.some((o) => same(o.value, v))) ? null : t("check.choice");
    case "integer":
      if (typeof value !== "number" || !Number.isInteger(value)) return t("check.integer");
      return range(value);
    case "decimal":
    case "slider": {
      if (typeof value !== "number" || !Number.isFinite(value)) return t("check.number");
      const problem = range(value);
      if (problem) return problem;
      if (item.type === "slider" && item.step) {
        const steps = (value - (lo || 0)) / item.step;
        if (Math.abs(steps - Math.round(steps)) > 1e-9) return t("check.step", { step: item.step });
      }
      return null;
    }
    case "boolean":
      return typeof value === "boolean" ? null : t("check.boolean");
    case "text":
      if (typeof value !== "string") return t("check.text");
      if (item.max_length && value.length > item.max_length) return t("check.max_length", { n: item.max_length });
      return null;
    case "date":
      return typeof value === "string" && DATE.test(value) && !Number.isNaN(Date.parse(value)) ? null : t("check.date");
    case "time":
      return typeof value === "string" && TIME.test(value) ? null : t("check.time");
    case "kit_code":
      return typeof value === "string" && normaliseKit(value) ? null : t("check.kit_code");
    default:
      return t("check.unsupported");
  }
}

function control(item, value, onChange) {
  const id = `q-${item.key}`;
  const hintId = `${id}-hint`;
  const errId = `${id}-error`;
  const describedBy = `${hintId} ${errId}`;
  const req = h("span", { class: item.required ? "req" : "opt" }, item.required ? t("survey.required") : t("survey.optional"));
  const choiceList = (type, options, isChecked, onPick) =>
    h(
      "fieldset",
      {
        "aria-describedby": describedBy,
        role: type === "radio" ? "radiogroup" : null,
        "aria-required": type === "radio" && item.required ? "true" : null,
      },
      h("legend", {}, h("span", { class: "qtext" }, item.text), " ", req),
      h("p", { id: hintId, class: "hint" }, type === "checkbox" ? t("survey.pick_any") : t("survey.pick_one")),
      h(
        "div",
        { class: "options" },
        options.map((o, n) => {
          const input = h("input", { type, id: `${id}-${n}`, name: id, checked: isChecked(o.value) });
          input.addEventListener("change", () => onPick(o.value, input.checked));
          return h("div", { class: "option" }, input, h("label", { for: `${id}-${n}` }, o.label));
        }),
      ),
    );
  if (item.type === "choice")
    return choiceList("radio", item.options, (v) => JSON.stringify(v) === JSON.stringify(value), (v) => onChange(v));
  if (item.type === "boolean")
    return choiceList(
      "radio",
      [
        { value: true, label: t("survey.yes") },
        { value: false, label: t("survey.no") },
      ],
      (v) => v === value,
      (v) => onChange(v),
    );
  if (item.type === "multi_choice") {
    const chosen = Array.isArray(value) ? [...value] : [];
    return choiceList(
      "checkbox",
      item.options,
      (v) => chosen.some((c) => JSON.stringify(c) === JSON.stringify(v)),
      (v, on) => {
        const i = chosen.findIndex((c) => JSON.stringify(c) === JSON.stringify(v));
        if (on && i < 0) chosen.push(v);
        if (!on && i >= 0) chosen.splice(i, 1);
        onChange(chosen.length ? item.options.map((o) => o.value).filter((ov) => chosen.some((c) => JSON.stringify(c) === JSON.stringify(ov))) : null);
      },
    );
  }
  const label = h("label", { for: id }, h("span", { class: "qtext" }, item.text), " ", req);
  const attrs = { id, name: item.key, "aria-describedby": describedBy, "aria-required": item.required ? "true" : null };
  let input;
  let hint = "";
  if (item.type === "slider") {
    const lo = item.min ?? 0;
    const hi = item.max ?? 100;
    const out = h("output", { for: id, id: `${id}-value`, class: "slider-value" }, value ?? t("survey.slider_unset"));
    input = h("input", { ...attrs, type: "range", min: lo, max: hi, step: item.step || "any", value: value ?? Math.round((lo + hi) / 2) });
    input.addEventListener("input", () => {
      out.textContent = input.value;
      onChange(Number(input.value));
    });
    return h(
      "div",
      { class: "field" },
      label,
      h("p", { id: hintId, class: "hint" }, t("survey.slider_hint", { min: lo, max: hi })),
      h("div", { class: "slider" }, h("span", { "aria-hidden": "true" }, lo), input, h("span", { "aria-hidden": "true" }, hi)),
      out,
    );
  }
  if (item.type === "text") {
    input = h("textarea", { ...attrs, rows: 4, maxlength: item.max_length || null });
    input.value = value ?? "";
    input.addEventListener("input", () => onChange(input.value === "" ? null : input.value));
    hint = item.max_length ? t("survey.text_hint", { n: item.max_length }) : "";
  } else if (item.type === "integer" || item.type === "decimal") {
    input = h("input", {
      ...attrs,
      type: "text",
      inputmode: item.type === "integer" ? "numeric" : "decimal",
      autocomplete: "off",
    });
    input.value = value ?? "";
    input.addEventListener("input", () => {
      const raw = input.value.trim().replace(",", ".");
      onChange(raw === "" ? null : /^-?\d+(\.\d+)?$/.test(raw) ? Number(raw) : raw);
    });
    if (item.min !== null && item.min !== undefined && item.max !== null && item.max !== undefined)
      hint = t("survey.range_hint", { min: item.min, max: item.max });
  } else if (item.type === "kit_code") {
    // An envelope code: typed, or scanned from the envelope's QR label (which holds /app/kit#CODE).
    input = h("input", { ...attrs, type: "text", autocomplete: "off", autocapitalize: "characters", spellcheck: "false" });
    input.value = value ?? "";
    const set = (raw) => {
      const code = normaliseKit(raw);
      onChange(code ? formatKit(code) : raw.trim() === "" ? null : raw.trim());
    };
    input.addEventListener("input", () => set(input.value));
    const video = h("div", { id: `${id}-scanner` });
    const scanButton = button(t("kit.scan"), async () => {
      try {
        const raw = await scan(video);
        if (raw) {
          const code = normaliseKit(raw);
          input.value = code ? formatKit(code) : raw.trim();
          set(input.value);
        }
      } catch (_) {
        // No camera: typing works.
      }
    }, { class: "btn secondary", id: `${id}-scan` });
    return h("div", { class: "field" }, label, h("p", { id: hintId, class: "hint" }, t("kit.hint")), input, scanButton, video);
  } else if (item.type === "date" || item.type === "time") {
    input = h("input", { ...attrs, type: item.type });
    input.value = value ?? "";
    input.addEventListener("input", () => onChange(input.value === "" ? null : input.value));
  } else {
    return h("p", {}, t("check.unsupported"));
  }
  return h("div", { class: "field" }, label, h("p", { id: hintId, class: "hint" }, hint), input);
}

export async function render(instanceId) {
  let inst = await session.findInstance(instanceId);
  if (!inst) {
    await session.surveys("open");
    inst = await session.findInstance(instanceId);
  }
  if (!inst) return screen("survey", t("survey.title"), notice("error", t("survey.not_found")), link(t("nav.home"), "/app/"));
  const def = await session.definitionFor(inst.instrument);
  if (!def) return screen("survey", inst.instrument.title, notice("error", t("survey.no_definition")), link(t("nav.home"), "/app/"));
  const items = await queue.all();
  const refused = items.find((i) => i.kind === "response" && i.payload.instance === instanceId && i.state === "error");
  if (items.some((i) => i.kind === "response" && i.payload.instance === instanceId && i.state === "pending"))
    return screen("survey", def.title, notice("info", t("survey.already_saved")), link(t("nav.home"), "/app/"));
  if (inst.status !== "open" && !refused)
    return screen("survey", def.title, notice("info", t("survey.not_open")), link(t("nav.home"), "/app/"));

  const draft = (await store.getDraft(instanceId)) || { answers: {}, index: 0, version: def.version };
  const serverErrors = {};
  if (refused) {
    Object.assign(draft.answers, refused.payload.answers);
    for (const [field, messages] of Object.entries((refused.error && refused.error.fields) || {}))
      serverErrors[field.replace(/^answers\./, "")] = messages.join(" ");
    const firstBad = enabledItems(def, draft.answers).findIndex((i) => serverErrors[i.key]);
    draft.index = firstBad >= 0 ? firstBad : 0;
  }
  if (!(await store.get(`opened:${instanceId}`))) {
    await store.set(`opened:${instanceId}`, true);
    await queue.enqueue("event", { instance: instanceId, event: "opened", at: localIso() });
  }
  const save = () => store.putDraft(instanceId, { ...draft, updated: localIso() });

  const show = () => {
    const list = enabledItems(def, draft.answers);
    draft.index = Math.min(Math.max(0, draft.index), list.length - 1);
    const item = list[draft.index];
    const error = h("p", { id: `q-${item.key}-error`, class: "field-error" }, serverErrors[item.key] || "");
    if (serverErrors[item.key]) error.setAttribute("role", "alert");
    const last = draft.index === list.length - 1;
    const next = h("button", { type: "submit", class: "btn primary", id: "next" }, last ? t("survey.send") : t("survey.next"));
    const form = h(
      "form",
      { novalidate: true, class: serverErrors[item.key] ? "has-error" : null },
      control(item, draft.answers[item.key], (value) => {
        if (value === null) delete draft.answers[item.key];
        else draft.answers[item.key] = value;
        delete serverErrors[item.key];
        error.textContent = "";
        save();
      }),
      error,
      h(
        "div",
        { class: "row nav-buttons" },
        draft.index > 0
          ? button(t("survey.back"), () => {
              draft.index -= 1;
              save();
              show();
            }, { class: "btn secondary", id: "back" })
          : null,
        next,
      ),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const problem = check(item, draft.answers[item.key]);
      if (problem) {
        error.textContent = problem;
        error.setAttribute("role", "alert");
        form.querySelector("input, textarea")?.focus();
        return;
      }
      if (!last) {
        draft.index += 1;
        await save();
        return show();
      }
      const enabled = enabledItems(def, draft.answers);
      const answers = {};
      for (const i of enabled) if (draft.answers[i.key] !== undefined) answers[i.key] = draft.answers[i.key];
      next.disabled = true;
      if (refused) await queue.remove(refused.idempotency_key);
      await queue.enqueue("response", { instance: instanceId, answers, authored: localIso() });
      await store.deleteDraft(instanceId);
      saved(def);
    });
    screen(
      "survey",
      def.title,
      h("p", { id: "progress", class: "progress" }, t("survey.progress", { n: draft.index + 1, total: list.length })),
      h("div", { class: "bar-track", "aria-hidden": "true" }, h("div", { class: "bar-fill", style: null, "data-pct": Math.round(((draft.index + 1) / list.length) * 100) })),
      def.stem ? h("p", { class: "stem" }, def.stem) : null,
      form,
    );
    const fill = document.querySelector(".bar-fill");
    fill.style.width = `${fill.dataset.pct}%`;
  };
  show();
}

async function saved(def) {
  screen("saved", t("survey.saved_title"), h("p", { id: "saved" }, t("survey.saved")), link(t("nav.home"), "/app/", { class: "btn primary" }));
  announce(t("survey.saved"));
  const result = await queue.flush();
  const p = document.getElementById("saved");
  if (p && result && !result.offline && !result.failed) p.textContent = t("survey.sent");
  else if (p && result && result.failed) p.textContent = t("survey.refused");
}
