// Side-effect report: when it started, what, severity, serious, ongoing. A serious report shows the
// trial's safety contact and helpline (from /me) at once, even offline.
import * as queue from "../queue.js";
import * as store from "../store.js";
import { t } from "../i18n.js";
import { h, screen, notice, localDate, announce } from "../ui.js";

function radios(name, legend, options) {
  return h(
    "fieldset",
    {},
    h("legend", {}, legend),
    h(
      "div",
      { class: "options" },
      options.map(([value, label]) =>
        h("div", { class: "option" }, h("input", { type: "radio", id: `${name}-${value}`, name, value }), h("label", { for: `${name}-${value}` }, label)),
      ),
    ),
  );
}

export function safetyBox(me) {
  const info = me && me.safety_info;
  const parts = [];
  if (info && info.contact) parts.push(h("p", { id: "safety-contact" }, info.contact));
  if (info && info.helpline) parts.push(h("p", { id: "safety-helpline" }, info.helpline));
  if (!parts.length) parts.push(h("p", { id: "safety-generic" }, t("side.safety_generic")));
  return h("section", { class: "notice warning", id: "safety", role: "alert" }, h("h2", {}, t("side.safety_title")), ...parts);
}

export async function render() {
  const message = h("div", { id: "side-message" });
  const started = h("input", { id: "started-on", type: "date", name: "started_on", value: localDate(), max: localDate(), required: true });
  const description = h("textarea", { id: "description", name: "description", rows: 4, maxlength: 5000, required: true });
  const serious = h("input", { id: "serious", type: "checkbox", name: "serious", "aria-describedby": "serious-hint" });
  const ongoing = h("input", { id: "ongoing", type: "checkbox", name: "ongoing" });
  const submit = h("button", { type: "submit", class: "btn primary", id: "side-submit" }, t("side.submit"));
  const form = h(
    "form",
    { novalidate: true },
    h("label", { for: "started-on" }, t("side.started")),
    started,
    h("label", { for: "description" }, t("side.description")),
    description,
    radios("severity", t("side.severity"), [
      ["mild", t("side.mild")],
      ["moderate", t("side.moderate")],
      ["severe", t("side.severe")],
    ]),
    h("div", { class: "check" }, serious, h("label", { for: "serious" }, t("side.serious"))),
    h("p", { id: "serious-hint", class: "hint" }, t("side.serious_hint")),
    h("div", { class: "check" }, ongoing, h("label", { for: "ongoing" }, t("side.ongoing"))),
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const severity = form.querySelector("input[name=severity]:checked");
    if (!description.value.trim() || !severity || !started.value) {
      message.replaceChildren(notice("error", t("side.incomplete")));
      return;
    }
    submit.disabled = true;
    await queue.enqueue("side_effect", {
      started_on: started.value,
      description: description.value.trim(),
      severity: severity.value,
      serious: serious.checked,
      ongoing: ongoing.checked,
    });
    const me = await store.get("me");
    screen(
      "side-effect-saved",
      t("side.saved_title"),
      serious.checked ? safetyBox(me) : null,
      h("p", { id: "saved" }, t("side.saved")),
    );
    announce(t("side.saved"));
    queue.flush();
  });
  screen("side-effect", t("side.title"), h("p", {}, t("side.intro")), message, form);
}
