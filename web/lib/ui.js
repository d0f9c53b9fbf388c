// Shared pieces of the console's pages: formatting, badges, empty states, error boxes,
// toasts, confirmation dialogs, copy buttons, field errors and a cursor pager. Everything
// from the API is put in the page as text (lit-html escapes every interpolation, and the
// dialogs and toasts here use textContent), never as HTML.
import { html, nothing } from '../vendor/lit-html.js';
import { get } from './api.js';

// --- time ------------------------------------------------------------------------------
const dtf = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
});

export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : dtf.format(d);
}

export function ago(iso) {
  if (!iso) return '';
  const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 0) return 'in the future';
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export const time = (iso) => (iso ? html`<time datetime=${iso} title=${iso}>${fmtTime(iso)}</time>` : html`<span class="muted">—</span>`);

/** The value of an <input type="datetime-local"> as RFC 3339 UTC, or "" when empty. */
export function localToIso(v) {
  if (!v) return '';
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

/** RFC 3339 to the value an <input type="datetime-local"> shows (local time). */
export function isoToLocal(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

// --- small pieces ----------------------------------------------------------------------
const KINDS = {
  success: 'ok', succeeded: 'ok', active: 'ok', sent: 'ok', closed: 'ok', ok: 'ok', resolved: 'ok', enabled: 'ok',
  failure: 'bad', failed: 'bad', open: 'bad', rejected: 'warn', paused: 'warn', acknowledged: 'warn',
  pending: 'info', in_flight: 'info', sending: 'info', stopped: '', skipped: '', disabled: '',
};
const LABELS = { success: 'Success', failure: 'Failure', in_flight: 'In flight' };

export const badge = (status, label) =>
  html`<span class="badge ${KINDS[status] ?? ''}">${label ?? LABELS[status] ?? cap(status)}</span>`;

export function cap(s) {
  s = String(s ?? '');
  return s ? s[0].toUpperCase() + s.slice(1).replaceAll('_', ' ') : s;
}

export const json = (v) => html`<pre class="json" tabindex="0">${JSON.stringify(v, null, 2)}</pre>`;

export const spinner = (what = 'Loading') => html`<p class="spinner" role="status">${what}…</p>`;

export function empty(title, text, actions = nothing) {
  return html`<div class="empty"><strong>${title}</strong><span>${text}</span>
    ${actions === nothing ? nothing : html`<div class="actions">${actions}</div>`}</div>`;
}

export function errorBox(err) {
  if (!err) return nothing;
  const p = err.problem || {};
  const title = err.status === 403 ? 'Not allowed' : err.status === 404 ? 'Not found' : p.title || 'Something went wrong';
  return html`<div class="form-error" role="alert"><strong>${title}.</strong> ${err.message}</div>`;
}

/** The API's messages for one field (ApiError.fields), shown under the input. */
export function fieldError(err, field, id) {
  const msgs = err?.fields?.[field];
  if (!msgs) return nothing;
  return html`<p class="error" id=${id || `err-${field}`}>${msgs.join('; ')}</p>`;
}
export const invalid = (err, field) => (err?.fields?.[field] ? 'true' : 'false');

/** Messages of fields that no input shows (so none is lost). */
export function otherErrors(err, shown) {
  if (!err) return nothing;
  const rest = Object.entries(err.fields).filter(([f]) => !shown.includes(f));
  if (!Object.keys(err.fields).length) return errorBox(err);
  if (!rest.length) return html`<div class="form-error" role="alert">Please correct the fields marked below.</div>`;
  return html`<div class="form-error" role="alert">${rest.map(([f, m]) => html`<div>${f ? html`<code>${f}</code>: ` : ''}${m.join('; ')}</div>`)}</div>`;
}

// --- toasts and dialogs ----------------------------------------------------------------
export function toast(message, kind = '') {
  let box = document.getElementById('toasts');
  if (!box) {
    box = document.createElement('div');
    box.id = 'toasts';
    box.setAttribute('role', 'status');
    box.setAttribute('aria-live', 'polite');
    document.body.append(box);
  }
  const t = document.createElement('div');
  t.className = `toast ${kind}`;
  t.textContent = message;
  box.append(t);
  setTimeout(() => t.remove(), kind === 'bad' ? 9000 : 5000);
}

/** A modal confirmation; resolves true when confirmed. Texts are set as text. */
export function confirmDialog({ title, text, confirm = 'Confirm', danger = false }) {
  return new Promise((resolve) => {
    const d = document.createElement('dialog');
    d.setAttribute('aria-labelledby', 'dlg-title');
    const h = document.createElement('h2');
    h.id = 'dlg-title';
    h.textContent = title;
    const p = document.createElement('p');
    p.textContent = text;
    const row = document.createElement('div');
    row.className = 'form-actions';
    const no = document.createElement('button');
    no.type = 'button';
    no.textContent = 'Cancel';
    const yes = document.createElement('button');
    yes.type = 'button';
    yes.textContent = confirm;
    yes.className = danger ? 'danger solid' : 'primary';
    row.append(yes, no);
    d.append(h, p, row);
    const done = (v) => { d.close(); d.remove(); resolve(v); };
    yes.addEventListener('click', () => done(true));
    no.addEventListener('click', () => done(false));
    d.addEventListener('cancel', (e) => { e.preventDefault(); done(false); });
    document.body.append(d);
    d.showModal();
    no.focus();
  });
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const ta = document.createElement('textarea');
    ta.value = text;
    ta.setAttribute('readonly', '');
    ta.className = 'visually-hidden';
    document.body.append(ta);
    ta.select();
    document.execCommand('copy');
    ta.remove();
  }
  toast('Copied to the clipboard');
}

export const copyButton = (text, label = 'Copy') =>
  html`<button type="button" class="small" @click=${() => copyText(text)}>${label}</button>`;

/** A secret shown once (new API key, signing secret). */
export const secretOnce = (label, value, note) => html`<div class="secret" role="region" aria-label=${label}>
  <strong>${label}</strong> <code data-secret>${value}</code> ${copyButton(value)}
  <span class="why">${note}</span></div>`;

/** A control the key may not use: disabled, with the reason next to it. */
export function disabledWhy(label, why, cls = '') {
  return html`<button type="button" class=${cls} disabled aria-describedby="why-${slug(label)}">${label}</button>
    <span class="why" id="why-${slug(label)}">${why}</span>`;
}
export const slug = (s) => String(s).toLowerCase().replace(/[^a-z0-9]+/g, '-');

// --- the per-row Actions menu ---------------------------------------------------------
/**
 * The toggle handler of a <details class="menu">: places the open menu with fixed
 * coordinates (so a scrolling table does not clip it), below its button or above when
 * there is no room, and closes any other open menu.
 */
export function placeMenu(e) {
  const d = e.currentTarget;
  if (!d.open) return;
  for (const o of document.querySelectorAll('details.menu[open]')) if (o !== d) o.open = false;
  const r = d.querySelector('summary').getBoundingClientRect();
  const m = d.querySelector('.menu-items');
  m.style.position = 'fixed';
  m.style.right = `${Math.max(8, window.innerWidth - r.right)}px`;
  const h = m.offsetHeight;
  m.style.top = `${r.bottom + 4 + h > window.innerHeight ? Math.max(8, r.top - h - 4) : r.bottom + 4}px`;
}

/** Closes every open menu (on scroll, Escape, or a click elsewhere). */
export function closeMenus(except) {
  for (const o of document.querySelectorAll('details.menu[open]')) if (!except || !o.contains(except)) o.open = false;
}

// --- the cursor pager ------------------------------------------------------------------
/**
 * One page of a list at a time, newest first, with Newer/Older buttons over the API's
 * next_cursor (the cursors seen so far are kept to go back). path: the list URL with its
 * filters; onChange re-renders.
 */
export class Pager {
  constructor(path, onChange, limit = 50) {
    this.path = path;
    this.onChange = onChange;
    this.limit = limit;
    this.cursors = [null];
    this.rows = null;
    this.next = null;
    this.error = null;
    this.loading = false;
  }

  async load(index = this.cursors.length - 1) {
    this.loading = true;
    this.onChange();
    const cursor = this.cursors[index];
    const sep = this.path.includes('?') ? '&' : '?';
    try {
      const page = await get(`${this.path}${sep}limit=${this.limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      this.cursors.length = index + 1;
      this.rows = page.data;
      this.next = page.next_cursor;
      this.error = null;
    } catch (e) {
      this.error = e;
    }
    this.loading = false;
    this.onChange();
  }

  reload() { return this.load(this.cursors.length - 1); }
  older() { this.cursors.push(this.next); return this.load(this.cursors.length - 1); }
  newer() { return this.load(this.cursors.length - 2); }
  get page() { return this.cursors.length; }

  /** The table (rendered by table(rows)) or its empty state, with the pager buttons. */
  view(table, emptyState) {
    if (this.error) return errorBox(this.error);
    if (!this.rows) return spinner();
    if (!this.rows.length && this.page === 1) return html`<div class="table-wrap">${emptyState}</div>`;
    if (this.page === 1 && !this.next) return html`<div class="table-wrap">${table(this.rows)}</div>`;
    return html`<div class="table-wrap">${table(this.rows)}</div>
      <div class="pager" aria-label="Pages">
        <button type="button" class="small" ?disabled=${this.page === 1 || this.loading} @click=${() => this.newer()}>← Newer</button>
        <span>Page ${this.page}${this.loading ? ' · loading…' : ''}</span>
        <button type="button" class="small" ?disabled=${!this.next || this.loading} @click=${() => this.older()}>Older →</button>
      </div>`;
  }
}
