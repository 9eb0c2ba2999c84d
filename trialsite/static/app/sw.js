// The participant app's service worker (scope /app/). Served by Django at /app/sw.js, which fills in the
// shell version and file list. It caches the shell (never API data); the queue of answers lives in
// IndexedDB, which an update or activation never touches: only old *caches* are deleted.
const VERSION = "__SHELL_VERSION__";
const SHELL = __SHELL_FILES__;
const CACHE = `trialsite-app-shell-${VERSION}`;

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL.map((url) => new Request(url, { cache: "reload" }))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n.startsWith("trialsite-app-shell-") && n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || url.pathname.startsWith("/api/")) return;
  if (request.mode === "navigate" && url.pathname.startsWith("/app")) {
    // Network first for the page (a fresh CSP and version), the cached shell when offline.
    event.respondWith(
      fetch(request).catch(() => caches.open(CACHE).then((cache) => cache.match("/app/"))),
    );
    return;
  }
  if (url.pathname.startsWith("/static/app/")) {
    event.respondWith(
      caches.open(CACHE).then((cache) => cache.match(request).then((hit) => hit || fetch(request))),
    );
  }
});

// --- Background Sync: flush the queue with nobody looking. Same database and schema as js/store.js. ---------
function idb(mode, fn) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open("trialsite-app");
    open.onupgradeneeded = () => {
      // The page creates the database; a worker must not create an empty one.
      open.transaction.abort();
    };
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const tx = db.transaction(["kv", "queue"], mode);
      const out = fn(tx);
      tx.oncomplete = () => {
        db.close();
        resolve(out.value);
      };
      tx.onerror = tx.onabort = () => {
        db.close();
        reject(tx.error);
      };
    };
  });
}

function readQueue() {
  return idb("readonly", (tx) => {
    const out = { value: { token: null, items: [] } };
    tx.objectStore("kv").get("token").onsuccess = (e) => (out.value.token = e.target.result || null);
    tx.objectStore("queue").getAll().onsuccess = (e) => (out.value.items = e.target.result.filter((i) => i.state === "pending"));
    return out;
  });
}

async function flushQueue() {
  let state;
  try {
    state = await readQueue();
  } catch (_) {
    return;
  }
  if (!state.token || !state.items.length) return;
  const items = state.items.slice(0, 100);
  const response = await fetch("/api/v1/sync", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${state.token}` },
    body: JSON.stringify({ items: items.map((i) => ({ kind: i.kind, idempotency_key: i.idempotency_key, ...i.payload })) }),
    credentials: "omit",
  });
  if (!response.ok) throw new Error(`sync ${response.status}`);
  const results = (await response.json()).results || [];
  await idb("readwrite", (tx) => {
    const store = tx.objectStore("queue");
    for (const result of results) {
      const item = items.find((i) => i.idempotency_key === result.idempotency_key);
      if (!item) continue;
      if ([200, 201, 202].includes(result.status)) store.delete(item.idempotency_key);
      else if (result.status >= 400 && result.status < 500) store.put({ ...item, state: "error", error: { status: result.status, ...(result.error || {}) } });
    }
    return { value: null };
  });
  for (const client of await self.clients.matchAll({ type: "window" })) client.postMessage({ type: "queue-flushed" });
}

self.addEventListener("sync", (event) => {
  if (event.tag === "flush-queue") event.waitUntil(flushQueue());
});

// --- Web Push: payload {"title", "body", "url", "tag"}; never anything clinical (the server decides). ---------
function sameOriginAppUrl(raw) {
  try {
    const url = new URL(raw || "/app/", self.location.origin);
    if (url.origin === self.location.origin && url.pathname.startsWith("/app/")) return url.href;
  } catch (_) {
    /* fall through */
  }
  return new URL("/app/", self.location.origin).href;
}

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (_) {
    data = {};
  }
  const title = data.title || "Study app";
  event.waitUntil(
    self.registration.showNotification(title, {
      body: data.body || "",
      tag: data.tag || undefined,
      data: { url: sameOriginAppUrl(data.url) },
      icon: "/static/app/icons/icon-192.png",
    }),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const target = sameOriginAppUrl(event.notification.data && event.notification.data.url);
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      for (const client of windows) {
        if ("navigate" in client && new URL(client.url).pathname.startsWith("/app")) {
          await client.focus();
          return client.navigate(target);
        }
      }
      return self.clients.openWindow(target);
    })(),
  );
});
