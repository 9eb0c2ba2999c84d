// Self-blinding kit: /app/kit#CODE (a scanned envelope label) or the code typed/scanned here. Queued like every
// write (POST /api/v1/sync, kind "kit"); the server refuses a wrong, reused or another participant's code with a
// message that says which, and the outbox keeps it until the participant retries or discards it.
import * as queue from "../queue.js";
import { t } from "../i18n.js";
import { h, screen, notice, button, announce } from "../ui.js";
import { scan } from "../scan.js";
import { normalise, format } from "../kitcode.js";

export async function render() {
  const fromLink = location.hash ? decodeURIComponent(location.hash.replace(/^#/, "")) : "";
  if (location.hash) history.replaceState(null, "", "/app/kit");
  const message = h("div", { id: "kit-message", "aria-live": "polite" });
  const input = h("input", {
    id: "kit-code",
    name: "code",
    autocomplete: "off",
    autocapitalize: "characters",
    spellcheck: "false",
    "aria-describedby": "kit-hint",
  });
  const video = h("div", { id: "kit-scanner" });
  const save = h("button", { type: "submit", class: "btn primary big", id: "kit-submit" }, t("kit.save"));
  const form = h(
    "form",
    { novalidate: true },
    h("label", { for: "kit-code" }, t("kit.code")),
    h("p", { id: "kit-hint", class: "hint" }, t("kit.hint")),
    input,
    button(t("kit.scan"), async () => {
      message.replaceChildren();
      try {
        const value = await scan(video);
        if (value) input.value = value.trim();
      } catch (_) {
        message.replaceChildren(notice("error", t("dose.scan_failed")));
      }
    }, { class: "btn secondary", id: "kit-scan" }),
    video,
    save,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const code = normalise(input.value);
    if (!code) {
      message.replaceChildren(notice("error", t("kit.invalid")));
      return;
    }
    save.disabled = true;
    await queue.enqueue("kit", { code: format(code) });
    input.value = "";
    message.replaceChildren(notice("success", t("kit.saved")));
    announce(t("kit.saved"));
    const result = await queue.flush();
    save.disabled = false;
    if (result && result.sent && !result.failed) message.replaceChildren(notice("success", t("kit.sent")));
    else if (result && result.failed) {
      const items = await queue.all();
      const refused = items.find((i) => i.kind === "kit" && i.state === "error");
      const text = refused && refused.error && refused.error.fields && refused.error.fields.code;
      message.replaceChildren(notice("error", text ? text[0] : t("kit.refused")));
    }
  });
  screen("kit", t("kit.title"), h("p", {}, t("kit.intro")), message, form);
  if (fromLink) input.value = normalise(fromLink) ? format(normalise(fromLink)) : fromLink;
}
