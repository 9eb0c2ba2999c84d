// The participant's own data as last seen: fetched when online, kept in IndexedDB for offline use.
import * as api from "./api.js";
import * as store from "./store.js";
import { lang } from "./i18n.js";

export async function me({ refresh = true } = {}) {
  if (refresh) {
    try {
      const fresh = await api.get("me");
      await store.set("me", fresh);
      return fresh;
    } catch (e) {
      if (e.status === 401) throw e;
    }
  }
  return store.get("me");
}

export async function surveys(status) {
  try {
    const page = await api.get(`surveys?status=${status}`);
    await store.set(`surveys:${status}`, page.results);
    return { results: page.results, cached: false };
  } catch (e) {
    if (e.status === 401) throw e;
    return { results: (await store.get(`surveys:${status}`)) || [], cached: true };
  }
}

export async function findInstance(id) {
  for (const status of ["open", "upcoming", "completed", "missed"]) {
    const list = (await store.get(`surveys:${status}`)) || [];
    const found = list.find((i) => i.id === id);
    if (found) return found;
  }
  return null;
}

// The definition an instance was scheduled with: from the cache by slug AND version, else fetched. A fetched
// definition of another version is cached under its own version and never used for this instance.
export async function definitionFor(instrument) {
  const language = lang();
  const cached = await store.getDef(instrument.slug, instrument.version, language);
  if (cached) return cached;
  try {
    const fresh = await api.get(`instruments/${encodeURIComponent(instrument.slug)}?lang=${language}`);
    await store.putDef(fresh, language);
    if (fresh.version === instrument.version) return fresh;
  } catch (e) {
    if (e.status === 401) throw e;
  }
  return null;
}

export async function prefetchDefinitions(instances) {
  const seen = new Set();
  for (const inst of instances) {
    const key = `${inst.instrument.slug}@${inst.instrument.version}`;
    if (seen.has(key)) continue;
    seen.add(key);
    await definitionFor(inst.instrument).catch(() => null);
  }
}
