// The only way the app talks to the server: the public /api/v1/ contract, the token from IndexedDB.
import * as store from "./store.js";

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || (status === 0 ? "offline" : "error");
    this.fields = error.fields || {};
  }
}

export async function request(method, path, { body, headers = {}, auth = true } = {}) {
  const h = { Accept: "application/json", ...headers };
  if (body !== undefined) h["Content-Type"] = "application/json";
  if (auth) {
    const token = await store.token();
    if (token) h.Authorization = `Bearer ${token}`;
  }
  let response;
  try {
    response = await fetch(`/api/v1/${path}`, {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch (_) {
    throw new ApiError(0, null);
  }
  let data = null;
  if (response.status !== 204) {
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (path, opts) => request("GET", path, opts);
export const post = (path, body, opts = {}) => request("POST", path, { ...opts, body });
export const patch = (path, body, opts = {}) => request("PATCH", path, { ...opts, body });
export const put = (path, body, opts = {}) => request("PUT", path, { ...opts, body });
export const remove = (path, body, opts = {}) => request("DELETE", path, { ...opts, body });
