// Enrolment: /app/enrol#CODE (the QR code) enrols at once; the code can be typed too. The code travels in
// the fragment (never sent to a server log) and is removed from the address bar straight away.
import * as api from "../api.js";
import * as store from "../store.js";
import { navigate } from "../router.js";
import { t } from "../i18n.js";
import { h, screen, notice, link, announce } from "../ui.js";

export async function render() {
  const fromLink = decodeURIComponent(location.hash.replace(/^#/, "")).trim();
  if (location.hash) history.replaceState(null, "", "/app/enrol");
  if (await store.token()) {
    screen("enrol", t("enrol.title"), notice("info", t("enrol.already")), link(t("nav.home"), "/app/"));
    return;
  }
  const message = h("div", { id: "enrol-message" });
  const input = h("input", {
    id: "code",
    name: "code",
    autocomplete: "off",
    autocapitalize: "characters",
    spellcheck: "false",
    required: true,
    "aria-describedby": "code-hint",
  });
  const submit = h("button", { type: "submit", class: "btn primary", id: "enrol-submit" }, t("enrol.submit"));
  const form = h(
    "form",
    { novalidate: true },
    h("label", { for: "code" }, t("enrol.code")),
    h("p", { id: "code-hint", class: "hint" }, t("enrol.hint")),
    input,
    submit,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    enrol(input.value, message, submit);
  });
  screen("enrol", t("enrol.title"), h("p", {}, t("enrol.intro")), message, form);
  if (fromLink) {
    input.value = fromLink;
    enrol(fromLink, message, submit);
  }
}

async function enrol(code, message, submit) {
  code = code.trim();
  if (!code) {
    message.replaceChildren(notice("error", t("enrol.empty")));
    return;
  }
  submit.disabled = true;
  message.replaceChildren(notice("info", t("enrol.working")));
  try {
    const body = await api.post(
      "enrol",
      {
        code,
        device: {
          platform: "web",
          app_version: document.querySelector("meta[name=app-version]").content,
          timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
        },
      },
      { auth: false },
    );
    await store.set("token", body.token);
    await store.set("me", body.participant);
    window.dispatchEvent(new CustomEvent("token-changed"));
    announce(t("enrol.done"));
    const needs = !body.participant.consent || body.participant.consent.needs_consent !== false;
    await navigate(needs ? "/app/consent" : "/app/", { replace: true });
  } catch (e) {
    const key =
      e.code === "invalid_enrolment_code" ? "enrol.invalid" : e.status === 429 ? "enrol.throttled" : e.status === 0 ? "enrol.offline" : "enrol.failed";
    message.replaceChildren(notice("error", t(key)));
    submit.disabled = false;
  }
}
