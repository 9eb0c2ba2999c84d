// Everything the app keeps on the phone lives in one IndexedDB database (never localStorage, never a URL):
//   kv      small values: the token, the last /me, survey lists, settings
//   defs    instrument definitions keyed "slug@version@lang" (never rendered against another version)
//   drafts  answers given so far, per survey instance (resumed after a reload)
//   queue   writes waiting for the server, keyed by their Idempotency-Key (chosen once, at creation)
// The service worker reads the same database (raw IndexedDB) for Background Sync; keep the schema in step
// with sw.js. A service-worker update never touches it.
import { openDB } from "idb";

export const DB_NAME = "trialsite-app";
export const DB_VERSION = 1;

let dbPromise = null;

export function db() {
  if (!dbPromise) {
    dbPromise = openDB(DB_NAME, DB_VERSION, {
      upgrade(d) {
        d.createObjectStore("kv");
        d.createObjectStore("defs");
        d.createObjectStore("drafts");
        const q = d.createObjectStore("queue", { keyPath: "idempotency_key" });
        q.createIndex("created", "created");
      },
    });
  }
  return dbPromise;
}

export async function get(key) {
  return (await db()).get("kv", key);
}

export async function set(key, value) {
  return (await db()).put("kv", value, key);
}

export async function del(key) {
  return (await db()).delete("kv", key);
}

export async function token() {
  return get("token");
}

export function defKey(slug, version, lang) {
  return `${slug}@${version}@${lang}`;
}

export async function getDef(slug, version, lang) {
  return (await db()).get("defs", defKey(slug, version, lang));
}

export async function putDef(def, lang) {
  return (await db()).put("defs", def, defKey(def.slug, def.version, lang));
}

export async function getDraft(instanceId) {
  return (await db()).get("drafts", instanceId);
}

export async function putDraft(instanceId, draft) {
  return (await db()).put("drafts", draft, instanceId);
}

export async function deleteDraft(instanceId) {
  return (await db()).delete("drafts", instanceId);
}

// Forget everything on this phone: used by logout. The database is deleted, not just emptied.
export async function wipe() {
  if (dbPromise) {
    (await dbPromise).close();
    dbPromise = null;
  }
  await new Promise((resolve) => {
    const req = indexedDB.deleteDatabase(DB_NAME);
    req.onsuccess = req.onerror = req.onblocked = () => resolve();
  });
}
