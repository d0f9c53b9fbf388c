// Settings → Alert Settings: Notification Channels (list, add, edit, delete naming the
// policies that use it, send a test, who unsubscribed) and Alert Policies (list, create,
// edit: monitored events from the failure catalog with optional connections, grouping,
// auto-close, close on recovery, channels, enabled).
import { html, nothing } from '../vendor/lit-html.js';
import { can, del, get, getAll, lacks, patch, post } from '../lib/api.js';
import {
  Pager, badge, confirmDialog, disabledWhy, empty, errorBox, fieldError, invalid, otherErrors, spinner, time, toast,
} from '../lib/ui.js';
import { forgetPolicies } from './issues.js';

const enc = encodeURIComponent;
const BATCHING = [['immediate', 'Immediately'], ['5m', 'Every 5 minutes'], ['15m', 'Every 15 minutes'], ['30m', 'Every 30 minutes'],
  ['1h', 'Every hour'], ['1d', 'Once a day']];
const batchingLabel = (b) => BATCHING.find(([v]) => v === b)?.[1] || b;

async function sendChannelTest(c) {
  try {
    const r = await post(`/v1/notification-channels/${enc(c.id)}/test`, {});
    if (r.ok) toast(`Test message sent to ${c.addresses.length} address${c.addresses.length === 1 ? '' : 'es'} of “${c.name}”.`);
    else toast(`Test to “${c.name}” failed: ${r.error}`, 'bad');
  } catch (e) {
    toast(`Test to “${c.name}” failed: ${e.message}`, 'bad');
  }
}

/** Asks, naming the policies that use the channel, then deletes it (forced when used). */
async function deleteChannel(c, policies) {
  const users = policies.filter((p) => p.channel_ids.includes(c.id));
  const ok = await confirmDialog({
    title: `Delete “${c.name}”?`,
    text: users.length
      ? `The alert ${users.length === 1 ? 'policy' : 'policies'} ${users.map((p) => `“${p.name}”`).join(', ')} ${users.length === 1 ? 'uses' : 'use'} this channel and will stop notifying it. This cannot be undone.`
      : 'No alert policy uses this channel. This cannot be undone.',
    confirm: 'Delete channel', danger: true,
  });
  if (!ok) return false;
  try {
    await del(`/v1/notification-channels/${enc(c.id)}${users.length ? '?force=true' : ''}`);
    toast(`Deleted “${c.name}”.`);
    forgetPolicies();
    return true;
  } catch (e) {
    toast(e.message, 'bad');
    return false;
  }
}

// --- channels ---------------------------------------------------------------------------
export function channels(ctx) {
  const manage = can('alerts:manage');
  const s = { policies: [] };
  const pager = new Pager('/v1/notification-channels', ctx.update);
  pager.load();
  getAll('/v1/alert-policies').then((p) => { s.policies = p; ctx.update(); }).catch(() => {});
  const users = (c) => s.policies.filter((p) => p.channel_ids.includes(c.id));
  const addButton = manage ? html`<a class="button primary" href="#/notification-channels/new">Add channel</a>` : disabledWhy('Add channel', 'Needs alerts:manage.');
  const table = (rows) => html`<table>
    <thead><tr><th>Name</th><th>Addresses</th><th>Batching</th><th>Used by</th><th><span class="visually-hidden">Actions</span></th></tr></thead>
    <tbody>${rows.map((c) => html`<tr>
      <td><a href="#/notification-channels/${enc(c.id)}"><strong>${c.name}</strong></a></td>
      <td class="wrap">${c.addresses.join(', ') || html`<span class="muted">none left</span>`}
        ${c.unsubscribed?.length ? html`<span class="secondary">${c.unsubscribed.length} unsubscribed</span>` : nothing}</td>
      <td>${batchingLabel(c.batching)}</td>
      <td>${users(c).length ? users(c).map((p) => html`<a href="#/alert-policies/${enc(p.id)}">${p.name}</a> `) : html`<span class="muted">no policy</span>`}</td>
      <td class="nowrap">${manage ? html`<button type="button" class="small" @click=${() => sendChannelTest(c)}>Send test</button>
        <button type="button" class="small danger" @click=${async () => { if (await deleteChannel(c, s.policies)) pager.reload(); }}>Delete</button>` : nothing}</td>
    </tr>`)}</tbody></table>`;
  return {
    title: 'Notification Channels',
    view: () => html`
      <div class="page-head"><div><p class="crumbs">Settings › Alert Settings</p><h1>Notification Channels</h1>
        <p class="sub">Where notifications go: a list of email addresses and how often mails are batched.</p></div>
        <div class="actions">${addButton}</div></div>
      ${pager.view(table, empty('No notification channels', 'Add a channel, then choose it in an alert policy to get mails when issues open.', manage ? addButton : nothing))}`,
  };
}

export function channelForm(ctx) {
  const editing = !!ctx.params.id;
  const manage = can('alerts:manage');
  const s = { channel: null, policies: [], error: null, loadError: null, busy: false };
  if (editing) {
    get(`/v1/notification-channels/${enc(ctx.params.id)}`).then((c) => { s.channel = c; ctx.update(); })
      .catch((e) => { s.loadError = e; ctx.update(); });
  }
  getAll('/v1/alert-policies').then((p) => { s.policies = p; ctx.update(); }).catch(() => {});

  async function submit(e) {
    e.preventDefault();
    const f = new FormData(e.target);
    const body = {
      name: String(f.get('name') || '').trim(),
      addresses: String(f.get('addresses') || '').split(/[\s,;]+/).map((a) => a.trim()).filter(Boolean),
      batching: f.get('batching'),
    };
    if (!editing) body.type = 'email';
    s.busy = true; s.error = null; ctx.update();
    try {
      const c = editing ? await patch(`/v1/notification-channels/${enc(ctx.params.id)}`, body)
        : await post('/v1/notification-channels', body);
      toast(editing ? `Saved “${c.name}”.` : `Added “${c.name}”. Choose it in an alert policy to receive mails.`);
      if (editing) { s.channel = c; } else { ctx.go('/notification-channels'); return; }
    } catch (x) {
      s.error = x;
    }
    s.busy = false;
    ctx.update();
  }

  const addrError = () => {
    const fields = Object.entries(s.error?.fields || {}).filter(([k]) => k.startsWith('addresses'));
    return fields.length ? html`<p class="error" id="err-addresses">${fields.map(([k, m]) => `${k === 'addresses' ? '' : `${k}: `}${m.join('; ')}`).join(' · ')}</p>` : nothing;
  };

  return {
    title: editing ? 'Notification channel' : 'Add a notification channel',
    view: () => {
      const c = s.channel;
      if (editing && !c) return html`<p class="crumbs"><a href="#/notification-channels">Notification Channels</a></p>${s.loadError ? html`<h1>Notification channel</h1>${errorBox(s.loadError)}` : spinner()}`;
      const users = c ? s.policies.filter((p) => p.channel_ids.includes(c.id)) : [];
      return html`
        <p class="crumbs"><a href="#/notification-channels">Notification Channels</a> › ${c ? c.name : 'New'}</p>
        <div class="page-head"><div><h1>${c ? c.name : 'Add a notification channel'}</h1>
          ${c ? html`<p class="sub mono">${c.id}</p>` : nothing}</div>
          ${c && manage ? html`<div class="actions"><button type="button" @click=${() => sendChannelTest(c)}>Send test</button>
            <button type="button" class="danger" @click=${async () => { if (await deleteChannel(c, s.policies)) ctx.go('/notification-channels'); }}>Delete</button></div>` : nothing}
        </div>
        ${manage ? nothing : html`<p class="notice">${lacks('alerts:manage')} The form is read-only.</p>`}
        <form class="card" @submit=${submit} novalidate aria-label="Notification channel">
          ${otherErrors(s.error, ['name', 'addresses', 'batching', ...Object.keys(s.error?.fields || {}).filter((k) => k.startsWith('addresses'))])}
          <fieldset ?disabled=${!manage} class="plain">
          <div class="field"><label for="c-name">Name</label>
            <input id="c-name" name="name" type="text" value=${c?.name || ''} required aria-invalid=${invalid(s.error, 'name')} aria-describedby="err-name">
            ${fieldError(s.error, 'name')}</div>
          <div class="field"><label for="c-addr">Email addresses</label>
            <textarea id="c-addr" name="addresses" rows="4" aria-describedby="c-addr-hint err-addresses"
              aria-invalid=${Object.keys(s.error?.fields || {}).some((k) => k.startsWith('addresses')) ? 'true' : 'false'}
              .value=${(c?.addresses || []).join('\n')}></textarea>
            <p class="hint" id="c-addr-hint">One per line (or separated by commas). Each address gets its own mail with its own unsubscribe link.</p>
            ${addrError()}</div>
          <div class="field"><label for="c-batch">Batching</label>
            <select id="c-batch" name="batching" aria-describedby="c-batch-hint">${BATCHING.map(([v, l]) => html`<option value=${v} ?selected=${(c?.batching || 'immediate') === v}>${l}</option>`)}</select>
            <p class="hint" id="c-batch-hint">Batched channels get one digest mail per period with every issue opened or closed in it.</p>
            ${fieldError(s.error, 'batching')}</div>
          </fieldset>
          ${manage ? html`<div class="form-actions"><button class="primary" type="submit" ?disabled=${s.busy}>${editing ? 'Save' : 'Add channel'}</button>
            <a class="button" href="#/notification-channels">Cancel</a></div>` : nothing}
        </form>
        ${c ? html`
          <section class="card"><h2>Unsubscribed</h2>
            ${c.unsubscribed.length ? html`<p class="muted">These addresses left the channel through the link in a mail. Add one back above to subscribe it again.</p>
              <div class="table-wrap"><table><thead><tr><th>Address</th><th>Unsubscribed at</th></tr></thead>
              <tbody>${c.unsubscribed.map((u) => html`<tr><td class="mono">${u.address}</td><td>${time(u.at)}</td></tr>`)}</tbody></table></div>`
              : html`<p class="muted">Nobody has unsubscribed from this channel.</p>`}</section>
          <section class="card"><h2>Used by</h2>
            ${users.length ? html`<ul class="plain-list">${users.map((p) => html`<li><a href="#/alert-policies/${enc(p.id)}">${p.name}</a></li>`)}</ul>`
              : html`<p class="muted">No alert policy uses this channel yet. <a href="#/alert-policies">Choose it in a policy</a> to get mails.</p>`}</section>` : nothing}`;
    },
  };
}

// --- policies ---------------------------------------------------------------------------
const PRESETS = [
  ['policy', 'One issue for the whole policy', []],
  ['event', 'One issue per event type', ['event']],
  ['event_connection', 'One issue per event type and connection', ['event', 'connection']],
];
const GROUP_KEYS = ['event', 'connection', 'entity_id', 'message'];
const AUTO_CLOSE = [['', 'Never (close by hand or on recovery)'], ['1h', 'After 1 hour'], ['6h', 'After 6 hours'], ['12h', 'After 12 hours'],
  ['24h', 'After 24 hours'], ['3d', 'After 3 days'], ['7d', 'After 7 days']];

const monitoredLabel = (m) => html`<span class="chip">${m.event}${m.connections?.length ? ` on ${m.connections.join(', ')}` : ''}</span>`;

export function policies(ctx) {
  const manage = can('alerts:manage');
  const s = { channels: [] };
  const pager = new Pager('/v1/alert-policies', ctx.update);
  pager.load();
  getAll('/v1/notification-channels').then((c) => { s.channels = c; ctx.update(); }).catch(() => {});
  const chName = (id) => s.channels.find((c) => c.id === id)?.name || id;
  const addButton = manage ? html`<a class="button primary" href="#/alert-policies/new">Create policy</a>` : disabledWhy('Create policy', 'Needs alerts:manage.');
  const table = (rows) => html`<table>
    <thead><tr><th>Name</th><th>Monitored events</th><th>Channels</th><th class="num">Open issues</th><th>State</th></tr></thead>
    <tbody>${rows.map((p) => html`<tr>
      <td><a href="#/alert-policies/${enc(p.id)}"><strong>${p.name}</strong></a></td>
      <td><div class="chips">${p.monitored_events.map(monitoredLabel)}</div></td>
      <td>${p.channel_ids.length ? p.channel_ids.map((id) => html`<a href="#/notification-channels/${enc(id)}">${chName(id)}</a> `) : html`<span class="muted">none: issues only</span>`}</td>
      <td class="num">${p.open_issue_count ? html`<a href="#/issues?status=open&policy_id=${enc(p.id)}">${p.open_issue_count}</a>` : '0'}</td>
      <td>${badge(p.enabled ? 'enabled' : 'disabled', p.enabled ? 'Enabled' : 'Disabled')}</td></tr>`)}</tbody></table>`;
  return {
    title: 'Alert Policies',
    view: () => html`
      <div class="page-head"><div><p class="crumbs">Settings › Alert Settings</p><h1>Alert Policies</h1>
        <p class="sub">When to notify: the failures a policy watches, how it groups them into issues, and which channels hear about it.</p></div>
        <div class="actions">${addButton}</div></div>
      ${pager.view(table, empty('No alert policies', 'Alerts are recorded either way; a policy turns matching ones into issues and notifications.', manage ? addButton : nothing))}`,
  };
}

export function policyForm(ctx) {
  const editing = !!ctx.params.id;
  const manage = can('alerts:manage');
  const s = {
    types: null, conns: [], channels: [], policy: null, loadError: null, error: null, busy: false,
    monitored: new Map(), // event or "category.*" -> Set of connections (empty: every connection)
    preset: 'event_connection', custom: new Set(['event', 'connection']), autoClose: '24h',
  };
  (async () => {
    try {
      const [types, conns, channels, policy] = await Promise.all([getAll('/v1/failure-types'), getAll('/v1/connections', 2000),
        getAll('/v1/notification-channels'), editing ? get(`/v1/alert-policies/${enc(ctx.params.id)}`) : null]);
      Object.assign(s, { types, conns, channels, policy });
      if (policy) {
        for (const m of policy.monitored_events) s.monitored.set(m.event, new Set(m.connections || []));
        const g = JSON.stringify(policy.group_by);
        const preset = PRESETS.find(([, , v]) => JSON.stringify(v) === g);
        s.preset = preset ? preset[0] : 'custom';
        s.custom = new Set(policy.group_by);
        s.autoClose = policy.auto_close_after ?? '';
      }
    } catch (e) {
      s.loadError = e;
    }
    ctx.update();
  })();

  const categories = () => {
    const m = new Map();
    for (const t of s.types) {
      if (!m.has(t.category)) m.set(t.category, []);
      m.get(t.category).push(t);
    }
    return [...m.entries()];
  };

  function toggleEvent(name, on) {
    if (on) {
      if (!s.monitored.has(name)) s.monitored.set(name, new Set());
      if (name.endsWith('.*')) {
        const cat = name.slice(0, -2);
        for (const k of [...s.monitored.keys()]) if (k !== name && k.startsWith(`${cat}.`)) s.monitored.delete(k);
      }
    } else {
      s.monitored.delete(name);
    }
    ctx.update();
  }

  function toggleConn(event, conn, on) {
    const set = s.monitored.get(event);
    if (on) set.add(conn); else set.delete(conn);
    ctx.update();
  }

  async function submit(e) {
    e.preventDefault();
    const f = new FormData(e.target);
    const monitored = [...s.monitored.entries()].map(([event, conns]) => {
      const extra = String(f.get(`more:${event}`) || '').split(/[\s,]+/).filter(Boolean);
      return { event, connections: [...new Set([...conns, ...extra])] };
    });
    const groupBy = s.preset === 'custom' ? GROUP_KEYS.filter((k) => s.custom.has(k)) : PRESETS.find(([k]) => k === s.preset)[2];
    const body = {
      name: String(f.get('name') || '').trim(),
      enabled: f.get('enabled') === 'on',
      monitored_events: monitored,
      channel_ids: f.getAll('channel_ids'),
      group_by: groupBy,
      auto_close_after: String(f.get('auto_close_after') || '').trim() || null,
      close_on_recovery: f.get('close_on_recovery') === 'on',
      notify_on: f.getAll('notify_on'),
    };
    s.busy = true; s.error = null; ctx.update();
    try {
      const p = editing ? await patch(`/v1/alert-policies/${enc(ctx.params.id)}`, body) : await post('/v1/alert-policies', body);
      forgetPolicies();
      toast(editing ? `Saved “${p.name}”.` : `Created “${p.name}”. Matching alerts now open issues.`);
      ctx.go('/alert-policies');
      return;
    } catch (x) {
      s.error = x;
    }
    s.busy = false;
    ctx.update();
  }

  async function remove() {
    const p = s.policy;
    const ok = await confirmDialog({ title: `Delete “${p.name}”?`, text: 'Its issues stay, but no new ones open and nobody is notified. This cannot be undone.', confirm: 'Delete policy', danger: true });
    if (!ok) return;
    try {
      await del(`/v1/alert-policies/${enc(p.id)}`);
      forgetPolicies();
      toast(`Deleted “${p.name}”.`);
      ctx.go('/alert-policies');
    } catch (x) {
      toast(x.message, 'bad');
    }
  }

  const monErrors = () => {
    const list = Object.entries(s.error?.fields || {}).filter(([k]) => k.startsWith('monitored_events'));
    return list.length ? html`<p class="error" id="err-monitored_events">${list.map(([k, m]) => `${k}: ${m.join('; ')}`).join(' · ')}</p>` : nothing;
  };

  function monitoredPicker() {
    return html`<fieldset aria-describedby="mon-hint err-monitored_events"><legend>Monitored Events</legend>
      <p class="hint" id="mon-hint">Choose whole categories or single failure events. Each can be limited to some connections; none selected means every connection.</p>
      ${monErrors()}
      <div class="catalog">${categories().map(([cat, types]) => {
        const all = `${cat}.*`;
        return html`<fieldset><legend class="visually-hidden">${cat} failures</legend>
          <label class="choice entity"><input type="checkbox" .checked=${s.monitored.has(all)} @change=${(e) => toggleEvent(all, e.target.checked)}>
            <span>${cat}<span class="desc">every ${cat} failure (${all})</span></span></label>
          ${types.map((t) => html`<label class="choice"><input type="checkbox" .checked=${s.monitored.has(all) || s.monitored.has(t.name)} ?disabled=${s.monitored.has(all)}
              @change=${(e) => toggleEvent(t.name, e.target.checked)}> <span class="mono">${t.name}</span></label>`)}
        </fieldset>`;
      })}</div>
      ${s.monitored.size ? html`<h3>Connections</h3><div class="table-wrap"><table><thead><tr><th>Event</th><th>Only on these connections</th></tr></thead><tbody>
        ${[...s.monitored.entries()].map(([event, conns]) => html`<tr><td class="mono">${event}</td><td>
          <div class="choices">${s.conns.map((c) => html`<label class="choice"><input type="checkbox" .checked=${conns.has(c.connection)}
              @change=${(e) => toggleConn(event, c.connection, e.target.checked)}> <span class="mono">${c.connection}</span></label>`)}
            ${[...conns].filter((c) => !s.conns.some((x) => x.connection === c)).map((c) => html`<label class="choice"><input type="checkbox" checked
              @change=${(e) => toggleConn(event, c, e.target.checked)}> <span class="mono">${c}</span></label>`)}</div>
          <label class="visually-hidden" for="more-${event}">Other connections for ${event}</label>
          <input id="more-${event}" name="more:${event}" type="text" placeholder="other connections, comma-separated">
        </td></tr>`)}</tbody></table></div>` : nothing}
    </fieldset>`;
  }

  function grouping() {
    const radio = (k, label) => html`<label class="choice"><input type="radio" name="preset" value=${k} .checked=${s.preset === k}
        @change=${() => { s.preset = k; ctx.update(); }}> <span>${label}</span></label>`;
    return html`<fieldset><legend>Grouping</legend>
      <div class="choices">${PRESETS.map(([k, l]) => radio(k, l))}${radio('custom', 'Custom')}</div>
      ${s.preset === 'custom' ? html`<div class="choices">${GROUP_KEYS.map((k) => html`<label class="choice"><input type="checkbox" .checked=${s.custom.has(k)}
          @change=${(e) => { if (e.target.checked) s.custom.add(k); else s.custom.delete(k); ctx.update(); }}> <span>${k}</span></label>`)}</div>
        <p class="hint">Alerts with the same values of these fields share an issue.</p>` : nothing}
      ${fieldError(s.error, 'group_by')}</fieldset>`;
  }

  return {
    title: editing ? 'Alert policy' : 'Create an alert policy',
    view: () => {
      const p = s.policy;
      if (s.loadError) return html`<p class="crumbs"><a href="#/alert-policies">Alert Policies</a></p><h1>Alert policy</h1>${errorBox(s.loadError)}`;
      if (!s.types) return spinner();
      const shown = ['name', 'enabled', 'channel_ids', 'group_by', 'auto_close_after', 'close_on_recovery', 'notify_on',
        ...Object.keys(s.error?.fields || {}).filter((k) => k.startsWith('monitored_events') || k.startsWith('channel_ids'))];
      return html`
        <p class="crumbs"><a href="#/alert-policies">Alert Policies</a> › ${p ? p.name : 'New'}</p>
        <div class="page-head"><div><h1>${p ? p.name : 'Create an alert policy'}</h1>
          ${p ? html`<p class="sub">${p.open_issue_count} open issue${p.open_issue_count === 1 ? '' : 's'} ·
            <a href="#/issues?status=open&policy_id=${enc(p.id)}">see them</a></p>` : nothing}</div>
          ${p && manage ? html`<div class="actions"><button type="button" class="danger" @click=${remove}>Delete</button></div>` : nothing}</div>
        ${manage ? nothing : html`<p class="notice">${lacks('alerts:manage')} The form is read-only.</p>`}
        <form @submit=${submit} novalidate aria-label="Alert policy">
          ${otherErrors(s.error, shown)}
          <fieldset ?disabled=${!manage} class="plain">
          <section class="card">
            <div class="field"><label for="p-name">Name</label>
              <input id="p-name" name="name" type="text" value=${p?.name || ''} placeholder="Order imports" aria-invalid=${invalid(s.error, 'name')} aria-describedby="err-name">
              ${fieldError(s.error, 'name')}</div>
            <label class="choice"><input type="checkbox" name="enabled" ?checked=${p ? p.enabled : true}> <span>Enabled<span class="desc">A disabled policy opens no issues.</span></span></label>
          </section>
          <section class="card">${monitoredPicker()}</section>
          <section class="card">
            ${grouping()}
            <div class="grid two">
              <div class="field"><label for="p-auto">Auto-close</label>
                <select id="p-auto" name="auto_close_after" aria-describedby="p-auto-hint">
                  ${AUTO_CLOSE.map(([v, l]) => html`<option value=${v} ?selected=${s.autoClose === v}>${l}</option>`)}
                  ${s.autoClose && !AUTO_CLOSE.some(([v]) => v === s.autoClose) ? html`<option value=${s.autoClose} selected>After ${s.autoClose}</option>` : nothing}</select>
                <p class="hint" id="p-auto-hint">Closes an issue this long after its last alert.</p>${fieldError(s.error, 'auto_close_after')}</div>
              <div class="field"><span class="label">Recovery</span>
                <label class="choice"><input type="checkbox" name="close_on_recovery" ?checked=${p?.close_on_recovery}>
                  <span>Close on recovery<span class="desc">Close the issue once every alert in it is resolved.</span></span></label></div>
            </div>
          </section>
          <section class="card"><fieldset aria-describedby="err-channel_ids"><legend>Notification Channels</legend>
            ${s.channels.length ? html`<div class="choices">${s.channels.map((c) => html`<label class="choice"><input type="checkbox" name="channel_ids" value=${c.id}
                ?checked=${p?.channel_ids.includes(c.id)}> <span>${c.name}<span class="desc">${c.addresses.join(', ')} · ${batchingLabel(c.batching)}</span></span></label>`)}</div>`
              : html`<p class="muted">No channels yet: issues will open without mails. <a href="#/notification-channels/new">Add a channel</a> first to be notified.</p>`}
            ${fieldError(s.error, 'channel_ids')}
            <div class="field"><span class="label">Notify when an issue</span><div class="choices">
              <label class="choice"><input type="checkbox" name="notify_on" value="opened" ?checked=${p ? p.notify_on.includes('opened') : true}> <span>opens</span></label>
              <label class="choice"><input type="checkbox" name="notify_on" value="closed" ?checked=${p?.notify_on.includes('closed')}> <span>closes</span></label></div>
              ${fieldError(s.error, 'notify_on')}</div>
          </fieldset></section>
          </fieldset>
          ${manage ? html`<div class="form-actions"><button class="primary" type="submit" ?disabled=${s.busy}>${editing ? 'Save' : 'Create policy'}</button>
            <a class="button" href="#/alert-policies">Cancel</a></div>` : nothing}
        </form>`;
    },
  };
}
