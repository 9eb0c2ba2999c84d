// Consent: the whole document, the typed name, agreement; signed against its version and SHA-256. When an
// amendment needs a new signature, the app says why nothing is due until then.
import * as api from "../api.js";
import * as session from "../session.js";
import { navigate } from "../router.js";
import { t } from "../i18n.js";
import { h, screen, notice, announce } from "../ui.js";

export async function render() {
  const me = await session.me();
  let doc;
  try {
    doc = await api.get("consent");
  } catch (e) {
    if (e.status === 401) throw e;
    screen("consent", t("consent.title"), notice("error", t("consent.offline")));
    return;
  }
  const signedBefore = me && me.consent && me.consent.signed_at;
  if (me && me.consent && me.consent.needs_consent === false) {
    screen(
      "consent",
      t("consent.title"),
      notice("info", t("consent.signed", { version: doc.version })),
      h("article", { class: "document", "aria-label": doc.title }, h("h2", {}, doc.title), h("div", { class: "body" }, doc.body)),
    );
    return;
  }
  const message = h("div", { id: "consent-message" });
  const name = h("input", { id: "typed-name", name: "typed_name", autocomplete: "name", required: true });
  const agree = h("input", { id: "agree", type: "checkbox", name: "agree" });
  const submit = h("button", { type: "submit", class: "btn primary", id: "consent-submit" }, t("consent.sign"));
  const form = h(
    "form",
    { novalidate: true },
    h("label", { for: "typed-name" }, t("consent.typed_name")),
    name,
    h("div", { class: "check" }, agree, h("label", { for: "agree" }, t("consent.agree"))),
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!name.value.trim() || !agree.checked) {
      message.replaceChildren(notice("error", t("consent.incomplete")));
      return;
    }
    submit.disabled = true;
    try {
      await api.post("consent", { version: doc.version, sha256: doc.sha256, agree: true, typed_name: name.value.trim() });
      await session.me();
      announce(t("consent.done"));
      await navigate("/app/", { replace: true });
    } catch (e) {
      submit.disabled = false;
      if (e.code === "conflict") {
        message.replaceChildren(notice("error", t("consent.changed")));
        setTimeout(render, 1500);
      } else message.replaceChildren(notice("error", e.status === 0 ? t("consent.offline") : e.message));
    }
  });
  screen(
    "consent",
    t("consent.title"),
    signedBefore ? notice("warning", t("consent.reconsent")) : h("p", {}, t("consent.intro")),
    h(
      "article",
      { class: "document", tabindex: "0", "aria-label": doc.title },
      h("h2", {}, doc.title),
      h("p", { class: "hint" }, t("consent.version", { version: doc.version })),
      h("div", { class: "body" }, doc.body),
    ),
    message,
    form,
  );
}
