// Tools > Event Stream: the integrations (All / Active / Paused, a toggle and an Actions menu
// per row), View Events (and an event's attempts), View Rejected Events (redeliver),
// View Logs, and the New Integration / Edit Integration Details form.
import { html, nothing } from '../vendor/lit-html.js';
import { can, del, get, getAll, lacks, patch, post, qs } from '../lib/api.js';
import {
  Pager, badge, confirmDialog, placeMenu, disabledWhy, empty, errorBox, fieldError, invalid, isoToLocal, json,
  localToIso, otherErrors, secretOnce, spinner, time, toast,
} from '../lib/ui.js';

const enc = encodeURIComponent;
const nf = new Intl.NumberFormat();

function targetSummary(t) {
  if (!t) return '';
  if (t.type === 's3') return `AWS S3 · s3://${t.bucket}/${t.key_prefix || ''}`;
  return `Webhook · ${t.url}`;
}

function typeLabel(i) {
  if (i.type !== 'temporary') return html`Permanent`;
  return html`Temporary<span class="secondary">${i.state === 'stopped' ? 'ended' : 'ends'} ${time(i.end_at)}</span>`;
}

/** Sends the test action and says how it went. */
async function sendTest(id) {
  try {
    const r = await post(`/v1/integrations/${enc(id)}/test`, {});
    if (r.ok) toast(`Test sent to ${id}: ${r.status ? `HTTP ${r.status}` : 'stored'}${r.latency_ms !== undefined ? ` in ${r.latency_ms} ms` : ''}.`);
    else toast(`Test to ${id} failed: ${r.error || (r.status ? `HTTP ${r.status}` : 'no answer')}`, 'bad');
  } catch (e) {
    toast(`Test to ${id} failed: ${e.message}`, 'bad');
  }
}

// --- the list -------------------------------------------------------------------------
export function list(ctx) {
  const tab = ['active', 'paused'].includes(ctx.query.get('tab')) ? ctx.query.get('tab') : 'all';
  const manage = can('tools:manage');
  const main = new Pager(tab === 'all' ? '/v1/integrations' : `/v1/integrations?state=${tab}`, ctx.update);
  const stopped = tab === 'paused' ? new Pager('/v1/integrations?state=stopped', ctx.update) : null;
  const busy = new Set();
  main.load();
  stopped?.load();
  const reload = () => { main.reload(); stopped?.reload(); };

  async function toggle(i) {
    busy.add(i.id);
    ctx.update();
    try {
      if (i.state === 'active') {
        await post(`/v1/integrations/${enc(i.id)}/pause`, { reason: 'paused from the console' });
        toast(`Paused ${i.id}. Its events are kept and delivered on resume.`);
      } else {
        await post(`/v1/integrations/${enc(i.id)}/resume`, { skip_backlog: false });
        toast(`Resumed ${i.id}.`);
      }
    } catch (e) {
      toast(`${i.id}: ${e.message}`, 'bad');
    }
    busy.delete(i.id);
    reload();
  }

  async function remove(i) {
    const ok = await confirmDialog({
      title: `Delete ${i.id}?`,
      text: `The integration stops at once and its pending deliveries are dropped. The event log is kept. This cannot be undone.`,
      confirm: 'Delete integration', danger: true,
    });
    if (!ok) return;
    try {
      await del(`/v1/integrations/${enc(i.id)}`);
      toast(`Deleted ${i.id}.`);
    } catch (e) {
      toast(`${i.id}: ${e.message}`, 'bad');
    }
    reload();
  }

  const toggleCell = (i) => {
    if (i.state === 'stopped') return html`<span class="badge">Stopped</span>`;
    const on = i.state === 'active';
    return html`<button type="button" class="switch" role="switch" aria-checked=${on ? 'true' : 'false'}
        aria-label="${i.id} active" ?disabled=${!manage || busy.has(i.id)} aria-describedby=${manage ? nothing : 'manage-why'}
        @click=${() => toggle(i)}><span class="track"></span><span class="state">${on ? 'Active' : 'Paused'}</span></button>`;
  };

  const menu = (i) => html`<details class="menu" @toggle=${placeMenu}>
      <summary aria-label="Actions for ${i.id}">Actions</summary>
      <ul class="menu-items" role="list">
        <li><a href="#/integrations/${enc(i.id)}/events">View Events</a></li>
        <li><a href="#/integrations/${enc(i.id)}/rejected">View Rejected Events</a></li>
        <li><a href="#/integrations/${enc(i.id)}/logs">View Logs</a></li>
        ${manage ? html`
          <li><a href="#/integrations/${enc(i.id)}/edit">Edit Integration Details</a></li>
          <li><button type="button" @click=${(e) => { e.target.closest('details').open = false; sendTest(i.id); }}>Send test</button></li>
          <li><button type="button" class="danger" @click=${(e) => { e.target.closest('details').open = false; remove(i); }}>Delete</button></li>`
        : html`<li><span class="why">Editing, tests and Delete need tools:manage.</span></li>`}
      </ul></details>`;

  const table = (rows) => html`<table>
    <thead><tr><th>Integration</th><th>Events</th><th>Type</th><th class="num">Delivered</th><th class="num">Failed</th>
      <th class="num">Rejected</th><th class="num">Pending</th><th>Active</th><th><span class="visually-hidden">Actions</span></th></tr></thead>
    <tbody>${rows.map((i) => html`<tr>
      <td class="wrap"><a href="#/integrations/${enc(i.id)}/events"><strong>${i.id}</strong></a>
        <span class="secondary target" title=${targetSummary(i.target)}>${targetSummary(i.target)}</span></td>
      <td><div class="chips">${i.events.map((e) => html`<span class="chip">${e}</span>`)}</div></td>
      <td class="nowrap">${typeLabel(i)}</td>
      <td class="num">${nf.format(i.stats.succeeded)}</td>
      <td class="num">${nf.format(i.stats.failed)}</td>
      <td class="num">${i.stats.rejected ? html`<a href="#/integrations/${enc(i.id)}/rejected">${nf.format(i.stats.rejected)}</a>` : '0'}</td>
      <td class="num">${nf.format(i.stats.pending)}</td>
      <td class="nowrap">${toggleCell(i)}</td>
      <td>${menu(i)}</td></tr>`)}</tbody></table>`;

  const tabLink = (t, label) => html`<a href="#/integrations${t === 'all' ? '' : `?tab=${t}`}" aria-current=${tab === t ? 'page' : 'false'}>${label}</a>`;
  const newButton = manage
    ? html`<a class="button primary" href="#/integrations/new">New Integration</a>`
    : disabledWhy('New Integration', 'Needs tools:manage.');

  return {
    title: 'Event Stream',
    view: () => html`
      <div class="page-head"><div><p class="crumbs">Tools</p><h1>Event Stream</h1>
        <p class="sub">Integrations receive your platform's events through a webhook or as batched files in an AWS S3 bucket.</p></div>
        <div class="actions">${newButton}</div></div>
      ${manage ? nothing : html`<p class="notice" id="manage-why">This API key can view integrations but not change them (it lacks tools:manage).</p>`}
      <nav class="tabs" aria-label="Integration state">${tabLink('all', 'All')}${tabLink('active', 'Active')}${tabLink('paused', 'Paused')}</nav>
      ${main.view(table, tab === 'all'
        ? empty('No integrations yet', 'Create one to start streaming events to a webhook or an S3 bucket.', manage ? newButton : nothing)
        : empty(tab === 'active' ? 'No active integrations' : 'No paused integrations',
          tab === 'active' ? 'Active integrations receive new events as they are published.' : 'Pause an integration with its toggle to hold its events.'))}
      ${stopped ? html`<h2>Stopped</h2><p class="muted">Temporary integrations past their end date. They receive no new events.</p>
        ${stopped.view(table, empty('No stopped integrations', 'A temporary integration stops on its end date.'))}` : nothing}`,
  };
}

// --- one integration: the header and its sub-pages ------------------------------------
function integrationHeader(ctx, s, current) {
  const id = ctx.params.id;
  const link = (path, label, key) => html`<a href="#/integrations/${enc(id)}${path}" aria-current=${current === key ? 'page' : 'false'}>${label}</a>`;
  const i = s.integration;
  return html`
    <p class="crumbs"><a href="#/integrations">Event Stream</a> › ${id}</p>
    <div class="page-head"><div><h1>${s.heading}</h1>
      <p class="sub">${i ? html`${badge(i.state)} ${targetSummary(i.target)}` : html`Integration ${id}`}</p></div>
      <div class="actions">${s.actions || nothing}</div></div>
    ${s.integrationError ? errorBox(s.integrationError) : nothing}
    <nav class="tabs" aria-label="Integration">${link('/events', 'Events', 'events')}${link('/rejected', 'Rejected Events', 'rejected')}
      ${link('/logs', 'Logs', 'logs')}${can('tools:manage') ? link('/edit', 'Edit Integration Details', 'edit') : nothing}</nav>`;
}

function loadIntegration(ctx, s) {
  get(`/v1/integrations/${enc(ctx.params.id)}`).then((i) => { s.integration = i; ctx.update(); })
    .catch((e) => { s.integrationError = e; ctx.update(); });
}

const STATUSES = [['', 'Any status'], ['success', 'Success'], ['failure', 'Failure'], ['pending', 'Pending'], ['rejected', 'Rejected'], ['skipped', 'Skipped']];

function timeFilters(ctx) {
  return html`
    <div class="field"><label for="f-from">From</label>
      <input id="f-from" name="from" type="datetime-local" value=${isoToLocal(ctx.query.get('from'))}></div>
    <div class="field"><label for="f-to">To</label>
      <input id="f-to" name="to" type="datetime-local" value=${isoToLocal(ctx.query.get('to'))}></div>`;
}

function applyFilters(ctx, e, base, names) {
  e.preventDefault();
  const f = new FormData(e.target);
  const q = {};
  for (const n of names) {
    const v = String(f.get(n) || '').trim();
    q[n] = n === 'from' || n === 'to' ? localToIso(v) : v;
  }
  ctx.go(`${base}${qs(q)}`);
}

export function events(ctx) {
  const id = ctx.params.id;
  const s = { heading: 'Events', integration: null };
  const f = { entity_id: ctx.query.get('entity_id') || '', status: ctx.query.get('status') || '', from: ctx.query.get('from') || '', to: ctx.query.get('to') || '' };
  const pager = new Pager(`/v1/integrations/${enc(id)}/events${qs(f)}`, ctx.update);
  loadIntegration(ctx, s);
  pager.load();
  const filtered = Object.values(f).some(Boolean);
  const table = (rows) => html`<table>
    <thead><tr><th>Event</th><th>Domain Entity ID</th><th>Status</th><th>Attempted at</th><th class="num">Attempts</th><th>Response</th></tr></thead>
    <tbody>${rows.map((r) => html`<tr>
      <td class="wrap"><a href="#/integrations/${enc(id)}/events/${enc(r.event_id)}" class="mono">${r.event_id}</a><span class="secondary">${r.type}</span></td>
      <td class="wrap mono">${r.entity_id}</td>
      <td>${badge(r.status)}</td>
      <td class="nowrap">${time(r.attempted_at)}</td>
      <td class="num">${r.attempts}</td>
      <td class="wrap">${r.response_status ? html`HTTP ${r.response_status}` : nothing}${r.error ? html`<span class="secondary">${r.error}</span>` : nothing}
        ${r.batch_key ? html`<span class="secondary mono">${r.batch_key}</span>` : nothing}</td></tr>`)}</tbody></table>`;
  return {
    title: `Events of ${id}`,
    view: () => html`${integrationHeader(ctx, s, 'events')}
      <form class="filters" role="search" aria-label="Filter events" @submit=${(e) => applyFilters(ctx, e, `/integrations/${enc(id)}/events`, ['entity_id', 'status', 'from', 'to'])}>
        <div class="field"><label for="f-entity">Domain Entity ID</label>
          <input id="f-entity" name="entity_id" type="search" placeholder="e.g. ORD-1001" value=${f.entity_id}></div>
        <div class="field"><label for="f-status">Status</label>
          <select id="f-status" name="status">${STATUSES.map(([v, l]) => html`<option value=${v} ?selected=${f.status === v}>${l}</option>`)}</select></div>
        ${timeFilters(ctx)}
        <button class="primary" type="submit">Filter</button>
        ${filtered ? html`<a class="button" href="#/integrations/${enc(id)}/events">Clear</a>` : nothing}
      </form>
      ${pager.view(table, filtered
        ? empty('No events match these filters', 'Widen the time period or clear the filters.')
        : empty('No events routed to this integration yet', 'Events of the types it selects appear here as they are published.'))}`,
  };
}

export function attempts(ctx) {
  const { id, event } = ctx.params;
  const s = { heading: 'Event', integration: null, event: null, eventError: null };
  const pager = new Pager(`/v1/integrations/${enc(id)}/events/${enc(event)}/attempts`, ctx.update, 100);
  loadIntegration(ctx, s);
  pager.load();
  get(`/v1/events/${enc(event)}`).then((e) => { s.event = e; ctx.update(); }).catch((e) => { s.eventError = e; ctx.update(); });
  async function redeliver() {
    try {
      const r = await post(`/v1/integrations/${enc(id)}/redeliver`, { event_ids: [event] });
      toast(`Queued ${r.queued} delivery to ${id}.`);
      pager.reload();
    } catch (e) {
      toast(e.message, 'bad');
    }
  }
  s.actions = can('tools:manage') ? html`<button type="button" @click=${redeliver}>Redeliver this event</button>` : nothing;
  const table = (rows) => html`<table>
    <thead><tr><th class="num">#</th><th>Attempted at</th><th>Status</th><th class="num">Duration</th><th>Node</th><th>Response</th></tr></thead>
    <tbody>${rows.map((a) => html`<tr>
      <td class="num">${a.attempt}</td><td class="nowrap">${time(a.at)}</td>
      <td>${a.status ? badge(a.status >= 200 && a.status < 300 ? 'success' : 'failure', `HTTP ${a.status}`) : badge('failure', 'No answer')}</td>
      <td class="num">${a.duration_ms} ms</td><td class="mono">${a.node_id || '—'}</td>
      <td class="wrap">${a.error ? html`<div>${a.error}</div>` : nothing}${a.response_body ? html`<pre class="json">${a.response_body}</pre>` : nothing}</td></tr>`)}</tbody></table>`;
  return {
    title: `Event ${event}`,
    view: () => html`${integrationHeader(ctx, s, 'events')}
      <section class="card"><h2>Event <span class="mono">${event}</span></h2>
        ${s.eventError ? errorBox(s.eventError) : !s.event ? spinner() : html`<dl class="facts">
          <dt>Type</dt><dd>${s.event.type}</dd><dt>Domain Entity ID</dt><dd class="mono">${s.event.entity_id}</dd>
          ${s.event.sequence !== undefined ? html`<dt>Sequence</dt><dd>${s.event.sequence}</dd>` : nothing}
          <dt>Occurred at</dt><dd>${time(s.event.occurred_at)}</dd><dt>Published at</dt><dd>${time(s.event.published_at)}</dd>
          ${s.event.id && s.event.client_id ? html`<dt>Client ID</dt><dd class="mono">${s.event.client_id}</dd>` : nothing}
        </dl><h3>Payload</h3>${json(s.event.payload)}`}
      </section>
      <h2>Attempts</h2>
      ${pager.view(table, empty('No attempts yet', 'The event waits for its turn (or for the integration to be resumed).'))}`,
  };
}

export function rejected(ctx) {
  const id = ctx.params.id;
  const s = { heading: 'Rejected Events', integration: null };
  const f = { from: ctx.query.get('from') || '', to: ctx.query.get('to') || '' };
  const pager = new Pager(`/v1/integrations/${enc(id)}/rejected-events${qs(f)}`, ctx.update);
  const manage = can('tools:manage');
  loadIntegration(ctx, s);
  pager.load();
  async function redeliver(ids) {
    try {
      const r = await post(`/v1/integrations/${enc(id)}/redeliver`, { event_ids: ids });
      toast(`Queued ${r.queued} event${r.queued === 1 ? '' : 's'} for redelivery to ${id}.`);
    } catch (e) {
      toast(e.message, 'bad');
    }
    pager.reload();
  }
  const table = (rows) => html`<table>
    <thead><tr><th>ID</th><th>Domain Entity ID</th><th>Created at</th><th>Consumer's answer</th><th><span class="visually-hidden">Redeliver</span></th></tr></thead>
    <tbody>${rows.map((r) => html`<tr>
      <td class="wrap"><a class="mono" href="#/integrations/${enc(id)}/events/${enc(r.event_id)}">${r.event_id}</a><span class="secondary">${r.type}</span></td>
      <td class="mono wrap">${r.entity_id}</td><td class="nowrap">${time(r.created_at)}</td>
      <td class="wrap">${r.response_status ? html`<strong>HTTP ${r.response_status}</strong>` : nothing}<span class="secondary">${r.reason}</span></td>
      <td>${manage ? html`<button type="button" class="small" @click=${() => redeliver([r.event_id])}>Redeliver</button>` : nothing}</td></tr>`)}</tbody></table>`;
  return {
    title: `Rejected events of ${id}`,
    view: () => {
      const rows = pager.rows || [];
      s.actions = manage
        ? html`<button type="button" ?disabled=${!rows.length} @click=${() => redeliver(rows.map((r) => r.event_id))}>Redeliver all shown (${rows.length})</button>`
        : disabledWhy('Redeliver', 'Needs tools:manage.');
      return html`${integrationHeader(ctx, s, 'rejected')}
        <p class="muted">Events the consumer refused (a 4xx answer): reconcile them, fix the cause, then redeliver.</p>
        <form class="filters" role="search" aria-label="Filter rejected events" @submit=${(e) => applyFilters(ctx, e, `/integrations/${enc(id)}/rejected`, ['from', 'to'])}>
          ${timeFilters(ctx)}<button class="primary" type="submit">Filter</button></form>
        ${pager.view(table, empty('No rejected events', 'The consumer has accepted everything sent to it.'))}`;
    },
  };
}

export function logs(ctx) {
  const id = ctx.params.id;
  const s = { heading: 'Logs', integration: null };
  const pager = new Pager(`/v1/integrations/${enc(id)}/logs`, ctx.update);
  loadIntegration(ctx, s);
  pager.load();
  const table = (rows) => html`<table>
    <thead><tr><th>Action</th><th>Reason</th><th>Created at</th><th>By</th></tr></thead>
    <tbody>${rows.map((l) => html`<tr><td>${badge(l.action === 'started' ? 'active' : 'paused', l.action === 'started' ? 'Started' : 'Stopped')}</td>
      <td class="wrap">${l.reason}</td><td class="nowrap">${time(l.created_at)}</td><td class="mono">${l.actor}</td></tr>`)}</tbody></table>`;
  return {
    title: `Logs of ${id}`,
    view: () => html`${integrationHeader(ctx, s, 'logs')}
      ${pager.view(table, empty('No log entries', 'Every start and stop of the integration is logged here.'))}`,
  };
}

// --- New Integration / Edit Integration Details ---------------------------------------
const TARGET_FIELDS = ['target', 'target.type', 'target.url', 'target.api_key', 'target.api_key_header', 'target.bucket', 'target.region',
  'target.key_prefix', 'target.access_key_id', 'target.secret_access_key', 'target.endpoint', 'target.compression'];
const SHOWN = ['id', 'type', 'end_at', 'start_at', 'events', 'max_in_flight', ...TARGET_FIELDS];

export function form(ctx) {
  const editing = !!ctx.params.id;
  const s = {
    catalog: null, existing: null, error: null, busy: false, created: null, loadError: null,
    type: 'permanent', target: 's3', selected: new Set(),
  };
  if (!can('tools:manage')) {
    return { title: 'Integration', view: () => html`<h1>${editing ? 'Edit Integration Details' : 'New Integration'}</h1>
      ${errorBox({ status: 403, message: lacks('tools:manage'), problem: {} })}` };
  }
  (async () => {
    try {
      const [catalog, existing] = await Promise.all([getAll('/v1/event-types'),
        editing ? get(`/v1/integrations/${enc(ctx.params.id)}`) : null]);
      s.catalog = catalog;
      if (existing) {
        s.existing = existing;
        s.type = existing.type;
        s.target = existing.target.type;
        s.selected = new Set(existing.events);
      }
    } catch (e) {
      s.loadError = e;
    }
    ctx.update();
  })();

  function entities() {
    const m = new Map();
    for (const t of s.catalog) {
      if (!m.has(t.entity)) m.set(t.entity, []);
      m.get(t.entity).push(t);
    }
    for (const e of s.selected) { // selections outside the catalog stay visible
      const ent = e.split('.')[0];
      if (!m.has(ent)) m.set(ent, []);
      if (e.includes('.') && !m.get(ent).some((t) => t.name === e)) m.get(ent).push({ name: e, entity: ent });
    }
    return [...m.entries()];
  }

  function pick(name, on) {
    if (on) s.selected.add(name); else s.selected.delete(name);
    if (on && !name.includes('.')) for (const x of [...s.selected]) if (x.startsWith(`${name}.`)) s.selected.delete(x);
    ctx.update();
  }

  const err = () => s.error;
  const fe = (f) => fieldError(err(), f);
  const inv = (f) => invalid(err(), f);
  const desc = (f, hint) => [hint, err()?.fields?.[f] ? `err-${f}` : ''].filter(Boolean).join(' ') || nothing;

  function body(form) {
    const f = new FormData(form);
    const v = (n) => String(f.get(n) ?? '').trim();
    const b = { events: [...s.selected] };
    let target;
    if (s.target === 'webhook') {
      target = { type: 'webhook', url: v('url'), api_key_header: v('api_key_header') || 'Authorization' };
      if (v('api_key')) target.api_key = v('api_key');
      const mif = v('max_in_flight');
      if (mif) b.max_in_flight = Number(mif);
    } else {
      target = { type: 's3', access_key_id: v('access_key_id'), region: v('region'), bucket: v('bucket'), key_prefix: v('key_prefix'),
        endpoint: v('endpoint') || null, compression: v('compression') || 'gzip' };
      if (v('secret_access_key')) target.secret_access_key = v('secret_access_key');
    }
    b.target = target;
    if (!editing) {
      b.id = v('id');
      b.type = s.type;
      if (s.type === 'temporary') b.end_at = localToIso(v('end_at')) || v('end_at') || null;
      if (v('start_at')) b.start_at = localToIso(v('start_at'));
    }
    return b;
  }

  async function submit(e) {
    e.preventDefault();
    s.busy = true;
    s.error = null;
    ctx.update();
    const b = body(e.target);
    try {
      if (editing) {
        await patch(`/v1/integrations/${enc(ctx.params.id)}`, b);
        toast(`Saved ${ctx.params.id}.`);
        ctx.go('/integrations');
        return;
      }
      s.created = await post('/v1/integrations', b);
      toast(`Created ${s.created.id}.`);
    } catch (x) {
      s.error = x;
      requestAnimationFrame(() => document.querySelector('[aria-invalid="true"], .form-error')?.focus?.());
    }
    s.busy = false;
    ctx.update();
  }

  const title = editing ? 'Edit Integration Details' : 'New Integration';

  function createdView() {
    const c = s.created;
    return html`<p class="crumbs"><a href="#/integrations">Event Stream</a> › ${c.id}</p>
      <h1>Integration ${c.id} created</h1>
      <section class="card">
        <p>${badge(c.state)} ${targetSummary(c.target)}${c.backfilled ? html` · replaying ${nf.format(c.backfilled)} past events` : nothing}</p>
        ${c.signing_secret ? html`<h2>Signing secret</h2>
          <p>Your consumer verifies every delivery's <code>webhook-signature</code> with this secret (Standard Webhooks).</p>
          ${secretOnce('Signing secret', c.signing_secret, 'Shown only now: copy it into your consumer before you leave this page.')}` : nothing}
        <div class="form-actions">
          <button type="button" class="primary" @click=${() => sendTest(c.id)}>Send test</button>
          <a class="button" href="#/integrations/${enc(c.id)}/events">View Events</a>
          <a class="button" href="#/integrations">Back to Event Stream</a>
        </div>
      </section>`;
  }

  function eventsPicker() {
    return html`<fieldset class="plain" aria-describedby=${desc('events', 'events-hint')}>
      <legend class="visually-hidden">Events</legend>
      <p class="hint" id="events-hint">Select an entity for all its events, present and future, or single event types.
        Keep related events together in one integration.</p>
      ${fe('events')}
      <div class="catalog">${entities().map(([ent, types]) => html`<fieldset>
        <legend class="visually-hidden">${ent} events</legend>
        <label class="choice entity"><input type="checkbox" name="ev" value=${ent} .checked=${s.selected.has(ent)}
          @change=${(e) => pick(ent, e.target.checked)}> <span>${ent}<span class="desc">every ${ent} event</span></span></label>
        ${types.map((t) => html`<label class="choice"><input type="checkbox" name="ev" value=${t.name}
            .checked=${s.selected.has(ent) || s.selected.has(t.name)} ?disabled=${s.selected.has(ent)}
            @change=${(e) => pick(t.name, e.target.checked)}> <span class="mono">${t.name}</span></label>`)}
      </fieldset>`)}</div></fieldset>`;
  }

  function textField(name, label, { value = '', type = 'text', hint = '', placeholder = '', required = false, autocomplete = 'off' } = {}) {
    const f = name === 'id' || name === 'type' || name === 'end_at' || name === 'start_at' || name === 'max_in_flight' ? name : `target.${name}`;
    const hid = hint ? `hint-${name}` : '';
    return html`<div class="field"><label for="i-${name}">${label}</label>
      <input id="i-${name}" name=${name} type=${type} value=${value} placeholder=${placeholder} ?required=${required} autocomplete=${autocomplete}
        aria-invalid=${inv(f)} aria-describedby=${desc(f, hid)}>
      ${hint ? html`<p class="hint" id=${hid}>${hint}</p>` : nothing}${fe(f)}</div>`;
  }

  function targetFields() {
    const t = s.existing?.target || {};
    const keep = (masked) => (editing && masked ? `${masked} is kept unless you type a new one.` : '');
    if (s.target === 'webhook') {
      return html`
        ${textField('url', 'Callback URL', { value: t.url || '', type: 'url', placeholder: 'https://erp.example.com/hooks/events', required: true })}
        ${textField('api_key', 'API Key', { type: 'password', hint: keep(t.api_key) || 'Sent with every delivery so your endpoint can check it. Optional.', autocomplete: 'new-password' })}
        ${textField('api_key_header', 'API key header', { value: t.api_key_header || 'Authorization', hint: 'Authorization sends "Bearer <key>"; any other header name sends the key as is.' })}
        ${textField('max_in_flight', 'Requests in flight at most', { value: String(s.existing?.max_in_flight ?? 16), type: 'number', hint: '1 to 256 concurrent deliveries to your endpoint.' })}`;
    }
    return html`
      ${textField('access_key_id', 'AWS Access Key', { value: t.access_key_id || '', placeholder: 'AKIA…', required: true })}
      ${textField('secret_access_key', 'AWS Secret Key', { type: 'password', hint: keep(t.secret_access_key), autocomplete: 'new-password', required: !editing })}
      ${textField('region', 'AWS Region', { value: t.region || '', placeholder: 'eu-central-1', required: true })}
      ${textField('bucket', 'S3 Bucket Name', { value: t.bucket || '', required: true })}
      ${textField('key_prefix', 'Key Prefix', { value: t.key_prefix || '', placeholder: 'newstore/', hint: 'Objects are written under this prefix, by date and hour.' })}
      <details ?open=${!!t.endpoint}><summary>S3-compatible storage and compression</summary>
        ${textField('endpoint', 'Endpoint URL', { value: t.endpoint || '', type: 'url', hint: 'Only for S3-compatible storage (MinIO, Ceph…); leave empty for AWS.' })}
        <div class="field"><label for="i-compression">Compression</label>
          <select id="i-compression" name="compression">${['gzip', 'none'].map((c) => html`<option value=${c} ?selected=${(t.compression || 'gzip') === c}>${c}</option>`)}</select></div>
      </details>`;
  }

  function targetChoice() {
    if (editing) {
      return html`<p class="muted">Target type: <strong>${s.target === 's3' ? 'AWS S3' : 'Webhook'}</strong> (an integration keeps its target type).</p>`;
    }
    const choice = (v, label, line) => html`<label class="choice target-choice"><input type="radio" name="target_type" value=${v}
        .checked=${s.target === v} @change=${() => { s.target = v; ctx.update(); }}>
        <span><strong>${label}</strong><span class="desc">${line}</span></span></label>`;
    return html`<div class="choices" role="radiogroup" aria-label="Integration target">
      ${choice('s3', 'AWS S3 (recommended)', 'For volume and data warehouses: batches of events as files, every 5 minutes or 50 MB. The more events, the faster.')}
      ${choice('webhook', 'Webhook', 'For lower volumes you want within seconds: one HTTPS request per event, to an endpoint that must keep up.')}
    </div>`;
  }

  return {
    title,
    view: () => {
      if (s.created) return createdView();
      const ex = s.existing;
      return html`
        <p class="crumbs"><a href="#/integrations">Event Stream</a> › ${editing ? ctx.params.id : 'New'}</p>
        <h1>${title}</h1>
        ${editing ? html`<p class="sub muted">Only the events and the target's details can change.</p>` : nothing}
        ${s.loadError ? errorBox(s.loadError) : !s.catalog ? spinner() : html`
        <form @submit=${submit} novalidate aria-label=${title}>
          ${otherErrors(s.error, SHOWN)}
          <section class="card"><h2>Integration Details</h2>
            ${editing ? html`<dl class="facts"><dt>Integration ID</dt><dd class="mono">${ex.id}</dd>
                <dt>Integration Type</dt><dd>${ex.type === 'temporary' ? html`Temporary, until ${time(ex.end_at)}` : 'Permanent'}</dd></dl>`
              : html`
              ${textField('id', 'Integration ID', { placeholder: 'erp-orders', required: true, hint: 'Unique in your tenant: 1 to 64 letters, digits, dots, dashes or underscores.' })}
              <fieldset aria-describedby=${desc('type', '')}><legend>Integration Type</legend>
                <div class="choices">
                  <label class="choice"><input type="radio" name="itype" value="permanent" .checked=${s.type === 'permanent'} @change=${() => { s.type = 'permanent'; ctx.update(); }}>
                    <span>Permanent<span class="desc">No end date.</span></span></label>
                  <label class="choice"><input type="radio" name="itype" value="temporary" .checked=${s.type === 'temporary'} @change=${() => { s.type = 'temporary'; ctx.update(); }}>
                    <span>Temporary<span class="desc">Stops consuming events on its end date.</span></span></label>
                </div>${fe('type')}
                ${s.type === 'temporary' ? textField('end_at', 'End Date', { type: 'datetime-local', required: true }) : nothing}
              </fieldset>
              <details><summary>Replay past events</summary>
                ${textField('start_at', 'Start at', { type: 'datetime-local', hint: 'A time in the past first sends every retained matching event since then, in publish order.' })}
              </details>`}
          </section>
          <section class="card"><h2>Events</h2>${eventsPicker()}</section>
          <section class="card"><h2>Integration Target</h2>
            ${targetChoice()}
            ${fe('target')}${fe('target.type')}
            <div class="target-fields">${targetFields()}</div>
          </section>
          <div class="form-actions">
            <button class="primary" type="submit" ?disabled=${s.busy}>${s.busy ? (s.target === 's3' ? 'Checking the bucket…' : 'Saving…') : editing ? 'Save' : 'Create'}</button>
            <a class="button" href="#/integrations">Cancel</a>
          </div>
        </form>`}`;
    },
  };
}
