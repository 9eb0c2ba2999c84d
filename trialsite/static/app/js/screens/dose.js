// Dose log: one tap "I took today's dose"; the unit code from the kit label is typed or scanned.
import * as queue from "../queue.js";
import { t } from "../i18n.js";
import { h, screen, notice, button, localIso, announce } from "../ui.js";
import { scan } from "../scan.js";

export async function render() {
  const message = h("div", { id: "dose-message", "aria-live": "polite" });
  const code = h("input", { id: "unit-code", name: "unit_code", autocomplete: "off", autocapitalize: "characters", "aria-describedby": "unit-hint" });
  const video = h("div", { id: "scanner" });
  const take = h("button", { type: "submit", class: "btn primary big", id: "dose-submit" }, t("dose.took"));
  const form = h(
    "form",
    { novalidate: true },
    h("label", { for: "unit-code" }, t("dose.unit"), " ", h("span", { class: "opt" }, t("survey.optional"))),
    h("p", { id: "unit-hint", class: "hint" }, t("dose.unit_hint")),
    code,
    button(t("dose.scan"), async () => {
      message.replaceChildren();
      try {
        const value = await scan(video);
        if (value) code.value = value.trim();
      } catch (_) {
        message.replaceChildren(notice("error", t("dose.scan_failed")));
      }
    }, { class: "btn secondary", id: "scan" }),
    video,
    take,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    take.disabled = true;
    await queue.enqueue("dose", { taken_at: localIso(), unit_code: code.value.trim() });
    code.value = "";
    message.replaceChildren(notice("success", t("dose.saved")));
    announce(t("dose.saved"));
    take.disabled = false;
    const result = await queue.flush();
    if (result && result.sent && !result.failed) message.replaceChildren(notice("success", t("dose.sent")));
  });
  screen("dose", t("dose.title"), h("p", {}, t("dose.intro")), message, form);
}
