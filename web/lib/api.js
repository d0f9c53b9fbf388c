// The console's only way to the server: the public HTTP API under /v1, with the API key of
// the session (sessionStorage, gone when the tab closes). Problems (RFC 9457) become
// ApiError with per-field messages; a 401 signs the session out.

const KEY = 'sluice.key';

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set(key) { sessionStorage.setItem(KEY, key); },
  clear() { sessionStorage.removeItem(KEY); session.me = null; },
  me: null, // GET /v1/me of the key: {tenant, key: {id, name, permissions}} or {admin: true}
};

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

export class ApiError extends Error {
  constructor(status, problem) {
    const p = problem && typeof problem === 'object' ? problem : {};
    super(p.detail || p.title || `HTTP ${status}`);
    this.status = status;
    this.problem = p;
    // "field" -> [messages]; the field names are the API's (e.g. "target.url").
    this.fields = {};
    for (const e of Array.isArray(p.errors) ? p.errors : []) {
      const f = e.field || '';
      (this.fields[f] = this.fields[f] || []).push(e.message || '');
    }
  }
}

/** Calls the API; resolves with the parsed JSON (null for 204), rejects with ApiError. */
export async function api(method, path, body, key = session.key) {
  const headers = { Accept: 'application/json' };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method, headers, cache: 'no-store', credentials: 'omit',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, { title: 'No answer', detail: 'The server did not answer. Is Sluice running?' });
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    if (res.status === 401 && key === session.key) onUnauthorized();
    throw new ApiError(res.status, data || { title: res.statusText });
  }
  return data;
}

export const get = (path) => api('GET', path);
export const post = (path, body = {}) => api('POST', path, body);
export const patch = (path, body) => api('PATCH', path, body);
export const del = (path) => api('DELETE', path);

/** "?a=1&b=2" from an object, leaving out empty values; "" when nothing is left. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === '') continue;
    q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** Every row of a list, following next_cursor (for small lists such as the catalog). */
export async function getAll(path, max = 10000) {
  const out = [];
  let cursor = null;
  const sep = path.includes('?') ? '&' : '?';
  do {
    const page = await get(`${path}${sep}limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    out.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor && out.length < max);
  return out;
}

/** Permissions of the signed-in key, with manage implying view (the server does the same). */
export function can(perm) {
  const me = session.me;
  if (!me || me.admin) return false;
  const p = me.key.permissions;
  if (p.includes(perm)) return true;
  const [area, level] = perm.split(':');
  return level === 'view' && p.includes(`${area}:manage`);
}

/** Why the key may not do it (for a disabled control), or null when it may. */
export function lacks(perm) {
  return can(perm) ? null : `Your API key lacks the ${perm} permission.`;
}
