// Admin (the admin token): tenants and their API keys — create a tenant, create a key with
// chosen permissions (shown once, with a copy button), list and revoke keys — so a fresh
// install is usable from the browser alone.
import { html, nothing } from '../vendor/lit-html.js';
import { api, getAll, session } from '../lib/api.js';
import { Pager, confirmDialog, empty, errorBox, fieldError, invalid, otherErrors, secretOnce, spinner, time, toast } from '../lib/ui.js';

const enc = encodeURIComponent;
const PERMS = [
  ['events:publish', 'Publish events'],
  ['tools:view', 'View integrations and events'],
  ['tools:manage', 'Manage integrations (implies view)'],
  ['alerts:report', 'Report alerts and tasks'],
  ['alerts:view', 'View alerts, issues and settings'],
  ['alerts:manage', 'Manage issues, policies and channels (implies view)'],
];
const CONSOLE = ['tools:manage', 'alerts:manage'];

export function admin(ctx) {
  const s = { open: ctx.query.get('tenant') || null, keys: null, keysError: null, created: null, tenantError: null, keyError: null, busy: false };
  const tenants = new Pager('/v1/admin/tenants', ctx.update);
  tenants.load();
  if (s.open) loadKeys();

  async function loadKeys() {
    s.keys = null;
    s.keysError = null;
    ctx.update();
    try {
      s.keys = await getAll(`/v1/admin/tenants/${enc(s.open)}/keys`);
    } catch (e) {
      s.keysError = e;
    }
    ctx.update();
  }

  function openTenant(id) {
    s.open = s.open === id ? null : id;
    s.created = null;
    s.keyError = null;
    if (s.open) loadKeys(); else ctx.update();
  }

  async function createTenant(e) {
    e.preventDefault();
    const f = new FormData(e.target);
    s.busy = true; s.tenantError = null; ctx.update();
    try {
      const t = await api('POST', '/v1/admin/tenants', { id: String(f.get('id')).trim(), name: String(f.get('name')).trim() });
      toast(`Created tenant ${t.id}. Now give it an API key.`);
      e.target.reset();
      await tenants.load(0);
      s.open = t.id;
      loadKeys();
    } catch (x) {
      s.tenantError = x;
    }
    s.busy = false;
    ctx.update();
  }

  async function createKey(e) {
    e.preventDefault();
    const f = new FormData(e.target);
    s.busy = true; s.keyError = null; ctx.update();
    try {
      s.created = await api('POST', `/v1/admin/tenants/${enc(s.open)}/keys`, { name: String(f.get('name')).trim(), permissions: f.getAll('permissions') });
      e.target.reset();
      await loadKeys();
    } catch (x) {
      s.keyError = x;
    }
    s.busy = false;
    ctx.update();
  }

  async function revoke(k) {
    const ok = await confirmDialog({ title: `Revoke the key “${k.name}”?`, text: 'Anything using it gets 401 from now on. This cannot be undone.', confirm: 'Revoke key', danger: true });
    if (!ok) return;
    try {
      await api('DELETE', `/v1/admin/tenants/${enc(s.open)}/keys/${enc(k.id)}`);
      toast(`Revoked “${k.name}”.`);
      if (s.created?.id === k.id) s.created = null;
    } catch (x) {
      toast(x.message, 'bad');
    }
    loadKeys();
  }

  function useKey(key) {
    session.set(key);
    session.me = null;
    ctx.go('/');
  }

  function keysPanel() {
    return html`<section class="card" aria-labelledby="keys-h">
      <h2 id="keys-h">API keys of ${s.open}</h2>
      ${s.created ? html`${secretOnce(`New key “${s.created.name}”`, s.created.key, 'Shown only now: copy it somewhere safe.')}
        <p><button type="button" @click=${() => useKey(s.created.key)}>Sign in to the console with this key</button></p>` : nothing}
      ${s.keysError ? errorBox(s.keysError) : !s.keys ? spinner() : s.keys.length === 0
        ? html`<p class="muted">No keys yet. Create one below: a key with tools:manage and alerts:manage can use the whole console.</p>`
        : html`<div class="table-wrap keys"><table><thead><tr><th>Name</th><th>Permissions</th><th>Key</th><th>Created</th><th></th></tr></thead><tbody>
            ${s.keys.map((k) => html`<tr><td><strong>${k.name}</strong><span class="secondary mono">${k.id}</span></td>
              <td><div class="chips">${k.permissions.map((p) => html`<span class="chip">${p}</span>`)}</div></td>
              <td class="mono">${k.key_hint}</td><td class="nowrap">${time(k.created_at)}</td>
              <td><button type="button" class="small danger" @click=${() => revoke(k)}>Revoke</button></td></tr>`)}
          </tbody></table></div>`}
      <h3>Create a key</h3>
      <form @submit=${createKey} novalidate aria-label="Create an API key">
        ${otherErrors(s.keyError, ['name', 'permissions'])}
        <div class="field"><label for="k-name">Name</label>
          <input id="k-name" name="name" type="text" placeholder="ops-console" aria-invalid=${invalid(s.keyError, 'name')} aria-describedby="err-name">
          ${fieldError(s.keyError, 'name')}</div>
        <fieldset aria-describedby="err-permissions"><legend>Permissions</legend>
          <div class="choices">${PERMS.map(([p, l]) => html`<label class="choice"><input type="checkbox" name="permissions" value=${p} ?checked=${CONSOLE.includes(p)}>
            <span><span class="mono">${p}</span><span class="desc">${l}</span></span></label>`)}</div>
          ${fieldError(s.keyError, 'permissions')}</fieldset>
        <button class="primary" type="submit" ?disabled=${s.busy}>Create key</button>
      </form></section>`;
  }

  const table = (rows) => html`<table><thead><tr><th>Tenant</th><th>Name</th><th>Created</th><th></th></tr></thead><tbody>
    ${rows.map((t) => html`<tr class="tenant-row" aria-expanded=${s.open === t.id ? 'true' : 'false'}>
      <td class="mono">${t.id}</td><td>${t.name}</td><td class="nowrap">${time(t.created_at)}</td>
      <td><button type="button" class="small" aria-expanded=${s.open === t.id ? 'true' : 'false'} @click=${() => openTenant(t.id)}>${s.open === t.id ? 'Hide keys' : 'API keys'}</button></td></tr>`)}
  </tbody></table>`;

  return {
    title: 'Admin',
    view: () => html`
      <div class="page-head"><div><p class="crumbs">Administration</p><h1>Tenants and API keys</h1>
        <p class="sub">Signed in with the admin token: it manages tenants and keys only. Sign in with a tenant's key to use the rest of the console.</p></div></div>
      <div class="grid two">
        <div>${tenants.view(table, empty('No tenants yet', 'Create the first tenant with the form, then give it an API key.'))}</div>
        <section class="card" aria-labelledby="nt-h"><h2 id="nt-h">Create a tenant</h2>
          <form @submit=${createTenant} novalidate aria-label="Create a tenant">
            ${otherErrors(s.tenantError, ['id', 'name'])}
            <div class="field"><label for="t-id">Tenant ID</label>
              <input id="t-id" name="id" type="text" placeholder="acme" aria-invalid=${invalid(s.tenantError, 'id')} aria-describedby="t-id-hint err-id">
              <p class="hint" id="t-id-hint">Letters, digits, dots, dashes or underscores; used in URLs and logs.</p>${fieldError(s.tenantError, 'id')}</div>
            <div class="field"><label for="t-name">Name</label>
              <input id="t-name" name="name" type="text" placeholder="Acme Retail" aria-invalid=${invalid(s.tenantError, 'name')} aria-describedby="err-name">
              ${fieldError(s.tenantError, 'name')}</div>
            <button class="primary" type="submit" ?disabled=${s.busy}>Create tenant</button>
          </form></section>
      </div>
      ${s.open ? keysPanel() : nothing}`,
  };
}
