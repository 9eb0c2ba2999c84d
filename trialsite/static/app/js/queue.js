// The outbox. Every write (responses, doses, side effects, prompt events) is stored here first, with its
// Idempotency-Key chosen once, when it is created. It leaves only when the server acknowledged it
// (200/201/202 for that item). A refusal (4xx) is kept, with the server's message, until the participant
// retries or discards it. Flushed through POST /api/v1/sync; the server's keys make a double flush harmless.
import * as api from "./api.js";
import { db } from "./store.js";

const ACKED = new Set([200, 201, 202]);
let inflight = null;

function changed() {
  window.dispatchEvent(new CustomEvent("queue-changed"));
}

export async function enqueue(kind, payload) {
  const item = {
    idempotency_key: crypto.randomUUID(),
    kind,
    payload,
    created: new Date().toISOString(),
    state: "pending",
    error: null,
  };
  await (await db()).put("queue", item);
  changed();
  registerBackgroundSync();
  return item;
}

export async function all() {
  return (await db()).getAllFromIndex("queue", "created");
}

export async function remove(key) {
  await (await db()).delete("queue", key);
  changed();
}

export async function retry(key) {
  const d = await db();
  const item = await d.get("queue", key);
  if (item) {
    item.state = "pending";
    item.error = null;
    await d.put("queue", item);
  }
  changed();
  return flush();
}

async function registerBackgroundSync() {
  try {
    const reg = await navigator.serviceWorker?.ready;
    if (reg && "sync" in reg) await reg.sync.register("flush-queue");
  } catch (_) {
    // Background Sync is Chromium-only; the page flushes on load, online and visibilitychange anyway.
  }
}

export function flush() {
  if (!inflight) inflight = doFlush().finally(() => (inflight = null));
  return inflight;
}

async function doFlush() {
  const d = await db();
  const pending = (await d.getAllFromIndex("queue", "created")).filter((i) => i.state === "pending");
  if (!pending.length) return { sent: 0, failed: 0, offline: false };
  let sent = 0;
  let failed = 0;
  for (let start = 0; start < pending.length; start += 100) {
    const batch = pending.slice(start, start + 100);
    const items = batch.map((i) => ({ kind: i.kind, idempotency_key: i.idempotency_key, ...i.payload }));
    let body;
    try {
      body = await api.post("sync", { items });
    } catch (e) {
      changed();
      return { sent, failed, offline: e.status === 0, error: e };
    }
    for (const result of body.results || []) {
      const item = batch.find((i) => i.idempotency_key === result.idempotency_key);
      if (!item) continue;
      if (ACKED.has(result.status)) {
        await d.delete("queue", item.idempotency_key);
        sent += 1;
      } else if (result.status >= 400 && result.status < 500) {
        item.state = "error";
        item.error = { status: result.status, ...(result.error || {}) };
        await d.put("queue", item);
        failed += 1;
      }
    }
  }
  changed();
  return { sent, failed, offline: false };
}
