// Withdraw: scope, an optional reason, then an explicit confirmation. Needs a connection (it is not queued:
// the participant must see that it took effect).
import * as api from "../api.js";
import * as session from "../session.js";
import { t } from "../i18n.js";
import { h, screen, notice, button, link } from "../ui.js";

export async function render() {
  const message = h("div", { id: "withdraw-message" });
  const scope = (value, label, hint) =>
    h(
      "div",
      { class: "option" },
      h("input", { type: "radio", id: `scope-${value}`, name: "scope", value, "aria-describedby": `scope-${value}-hint` }),
      h("label", { for: `scope-${value}` }, label, h("span", { id: `scope-${value}-hint`, class: "hint block" }, hint)),
    );
  const reason = h("textarea", { id: "reason", name: "reason", rows: 3, maxlength: 2000 });
  const form = h(
    "form",
    { novalidate: true },
    h(
      "fieldset",
      {},
      h("legend", {}, t("withdraw.scope")),
      h("div", { class: "options" }, scope("intervention", t("withdraw.intervention"), t("withdraw.intervention_hint")), scope("all", t("withdraw.all"), t("withdraw.all_hint"))),
    ),
    h("label", { for: "reason" }, t("withdraw.reason"), " ", h("span", { class: "opt" }, t("survey.optional"))),
    reason,
    h("button", { type: "submit", class: "btn danger", id: "withdraw-submit" }, t("withdraw.continue")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = form.querySelector("input[name=scope]:checked");
    if (!chosen) return message.replaceChildren(notice("error", t("withdraw.pick")));
    confirmStep(chosen.value, reason.value.trim());
  });
  screen("withdraw", t("withdraw.title"), h("p", {}, t("withdraw.intro")), message, form);
}

function confirmStep(scope, reason) {
  const message = h("div", { id: "withdraw-message" });
  const yes = button(
    t("withdraw.confirm"),
    async () => {
      yes.disabled = true;
      try {
        await api.post("withdraw", reason ? { scope, reason } : { scope });
        await session.me();
        screen("withdraw-done", t("withdraw.done_title"), notice("success", t(`withdraw.done_${scope}`)), link(t("nav.home"), "/app/"));
      } catch (e) {
        yes.disabled = false;
        message.replaceChildren(notice("error", e.status === 0 ? t("withdraw.offline") : e.message));
      }
    },
    { class: "btn danger", id: "withdraw-confirm" },
  );
  screen(
    "withdraw-confirm",
    t("withdraw.confirm_title"),
    h("p", {}, t(`withdraw.confirm_${scope}`)),
    message,
    h("div", { class: "row" }, yes, button(t("withdraw.cancel"), () => render(), { class: "btn secondary", id: "withdraw-cancel" })),
  );
}
