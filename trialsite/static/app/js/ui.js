// Small DOM helpers shared by the screens. No innerHTML with data: text always goes through textContent.
import { t, lang } from "./i18n.js";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function screen(name, title, ...children) {
  const main = document.getElementById("main");
  const heading = h("h1", { tabindex: "-1", id: "screen-title" }, title);
  main.replaceChildren(heading, ...children.filter((c) => c !== null && c !== undefined && c !== false));
  main.dataset.screen = name;
  document.title = `${title} · ${t("app.name")}`;
  heading.focus({ preventScroll: true });
  performance.mark(`screen:${name}`); // read by bench/app.py (time to first usable screen)
  window.scrollTo(0, 0);
  return main;
}

export function announce(text) {
  const status = document.getElementById("status");
  status.textContent = "";
  // A fresh text node after a tick so screen readers announce repeated messages too.
  setTimeout(() => (status.textContent = text), 30);
  clearTimeout(announce.timer);
  announce.timer = setTimeout(() => (status.textContent = ""), 5000);
}

export function notice(kind, text, ...extra) {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : null }, h("p", {}, text), ...extra);
}

export function button(label, onclick, attrs = {}) {
  return h("button", { type: "button", class: attrs.class || "btn", onclick, ...attrs }, label);
}

export function link(label, href, attrs = {}) {
  return h("a", { href, "data-link": "", class: attrs.class || "btn", ...attrs }, label);
}

// An ISO 8601 timestamp with the device's own offset (e.g. 2026-12-01T21:05:00+01:00).
export function localIso(date = new Date()) {
  const pad = (n) => String(Math.abs(n)).padStart(2, "0");
  const off = -date.getTimezoneOffset();
  const sign = off >= 0 ? "+" : "-";
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}` +
    `${sign}${pad(Math.trunc(off / 60))}:${pad(off % 60)}`
  );
}

export function localDate(date = new Date()) {
  return localIso(date).slice(0, 10);
}

function zoneOrUndefined(tz) {
  try {
    new Intl.DateTimeFormat("en", { timeZone: tz });
    return tz;
  } catch (_) {
    return undefined;
  }
}

export function fmtWhen(iso, tz) {
  return new Intl.DateTimeFormat(lang(), {
    weekday: "short",
    day: "numeric",
    month: "short",
    hour: "2-digit",
    minute: "2-digit",
    timeZone: zoneOrUndefined(tz),
  }).format(new Date(iso));
}

export function fmtTime(iso, tz) {
  return new Intl.DateTimeFormat(lang(), { hour: "2-digit", minute: "2-digit", timeZone: zoneOrUndefined(tz) }).format(
    new Date(iso),
  );
}

export function timeLeft(iso, now = Date.now()) {
  const minutes = Math.max(0, Math.round((new Date(iso).getTime() - now) / 60000));
  if (minutes >= 60) return t("time.hours_left", { h: Math.floor(minutes / 60), m: minutes % 60 });
  return t("time.minutes_left", { m: minutes });
}
