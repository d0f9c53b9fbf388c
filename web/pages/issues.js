// Operations → Issues: Open / Acknowledged / Closed, filtered by policy and connection; an
// issue's page with its group, counts, alerts and activity timeline, and the actions
// acknowledge, close with a comment, reopen and comment.
import { html, nothing } from '../vendor/lit-html.js';
import { can, get, getAll, lacks, post, qs } from '../lib/api.js';
import { Pager, ago, badge, cap, disabledWhy, empty, errorBox, fieldError, spinner, time, toast } from '../lib/ui.js';
import { alertsTable } from './alerts.js';

const enc = encodeURIComponent;
const STATUSES = ['open', 'acknowledged', 'closed'];

let policyCache = null;
function policies() {
  if (!policyCache) policyCache = getAll('/v1/alert-policies').catch((e) => { policyCache = null; throw e; });
  return policyCache;
}
export function forgetPolicies() { policyCache = null; }

export function list(ctx) {
  const status = STATUSES.includes(ctx.query.get('status')) ? ctx.query.get('status') : 'open';
  const f = { policy_id: ctx.query.get('policy_id') || '', connection: ctx.query.get('connection') || '' };
  const s = { policies: null, conns: null };
  const pager = new Pager(`/v1/issues${qs({ status, ...f })}`, ctx.update);
  pager.load();
  policies().then((p) => { s.policies = p; ctx.update(); }).catch(() => { s.policies = []; ctx.update(); });
  getAll('/v1/connections', 2000).then((c) => { s.conns = c; ctx.update(); }).catch(() => { s.conns = []; ctx.update(); });
  const policyName = (id) => s.policies?.find((p) => p.id === id)?.name || id;

  function apply(e) {
    e.preventDefault();
    const d = new FormData(e.target);
    ctx.go(`/issues${qs({ status, policy_id: d.get('policy_id'), connection: d.get('connection') })}`);
  }
  const tab = (st) => html`<a href="#/issues${qs({ status: st, ...f })}" aria-current=${status === st ? 'page' : 'false'}>${cap(st)}</a>`;
  const table = (rows) => html`<table>
    <thead><tr><th>Issue</th><th>Policy</th><th class="num">Alerts</th><th>Opened</th><th>Last alert</th><th>Status</th></tr></thead>
    <tbody>${rows.map((i) => html`<tr>
      <td class="wrap"><a href="#/issues/${enc(i.id)}"><strong>${i.title}</strong></a><span class="secondary mono">${i.id}</span></td>
      <td>${s.policies ? html`<a href="#/alert-policies/${enc(i.policy_id)}">${policyName(i.policy_id)}</a>` : ''}</td>
      <td class="num">${i.alert_count}</td><td class="nowrap">${time(i.opened_at)}</td>
      <td class="nowrap">${ago(i.last_alert_at)}</td>
      <td>${badge(i.status)}${i.close_reason ? html`<span class="secondary">${i.close_reason}</span>` : nothing}</td></tr>`)}</tbody></table>`;
  const filtered = f.policy_id || f.connection;
  return {
    title: 'Issues',
    view: () => html`
      <div class="page-head"><div><p class="crumbs">Operations</p><h1>Issues</h1>
        <p class="sub">Groups of related alerts, opened by an alert policy.</p></div></div>
      <nav class="tabs" aria-label="Issue status">${STATUSES.map(tab)}</nav>
      <form class="filters" role="search" aria-label="Filter issues" @submit=${apply}>
        <div class="field"><label for="i-pol">Policy</label><select id="i-pol" name="policy_id"><option value="">Any policy</option>
          ${(s.policies || []).map((p) => html`<option value=${p.id} ?selected=${f.policy_id === p.id}>${p.name}</option>`)}</select></div>
        <div class="field"><label for="i-conn">Connection</label><select id="i-conn" name="connection"><option value="">Any connection</option>
          ${(s.conns || []).map((c) => html`<option value=${c.connection} ?selected=${f.connection === c.connection}>${c.connection}</option>`)}
          ${f.connection && s.conns && !s.conns.some((c) => c.connection === f.connection) ? html`<option selected value=${f.connection}>${f.connection}</option>` : nothing}</select></div>
        <button class="primary" type="submit">Filter</button>
        ${filtered ? html`<a class="button" href="#/issues?status=${status}">Clear</a>` : nothing}
      </form>
      ${pager.view(table, filtered ? empty(`No ${status} issues match`, 'Clear the filters to see all of them.')
        : status === 'open' ? empty('No open issues', 'When an alert matches an alert policy, the policy opens an issue here.',
          html`<a class="button" href="#/alert-policies">Alert policies</a>`)
        : empty(`No ${status} issues`, status === 'closed' ? 'Closed issues appear here.' : 'Acknowledge an open issue to show that someone is on it.'))}`,
  };
}

const KIND_LABEL = {
  opened: 'Opened', alert_added: 'Alerts added', notified: 'Notification sent', notification_failed: 'Notification failed',
  acknowledged: 'Acknowledged', closed: 'Closed', reopened: 'Reopened', comment: 'Comment',
};

export function detail(ctx) {
  const id = ctx.params.id;
  const manage = can('alerts:manage');
  const s = { issue: null, error: null, policy: null, busy: false, actionError: null, closing: false };
  const alerts = new Pager(`/v1/issues/${enc(id)}/alerts`, ctx.update, 25);
  const timeline = new Pager(`/v1/issues/${enc(id)}/timeline`, ctx.update, 50);

  async function loadIssue() {
    try {
      s.issue = await get(`/v1/issues/${enc(id)}`);
      s.error = null;
      ctx.update();
      if (!s.policy) {
        s.policy = await get(`/v1/alert-policies/${enc(s.issue.policy_id)}`).catch(() => null);
        ctx.update();
      }
    } catch (e) {
      s.error = e;
      ctx.update();
    }
  }
  loadIssue();
  alerts.load();
  timeline.load();

  async function act(path, body, done) {
    s.busy = true;
    s.actionError = null;
    ctx.update();
    try {
      await post(`/v1/issues/${enc(id)}/${path}`, body);
      toast(done);
      s.closing = false;
      await loadIssue();
      timeline.load(0);
      return true;
    } catch (e) {
      s.actionError = e;
      return false;
    } finally {
      s.busy = false;
      ctx.update();
    }
  }

  async function comment(e) {
    e.preventDefault();
    const form = e.target;
    const text = String(new FormData(form).get('comment') || '').trim();
    if (!text) return;
    if (await act('comments', { comment: text }, 'Comment added.')) form.reset();
  }

  async function close(e) {
    e.preventDefault();
    const text = String(new FormData(e.target).get('close_comment') || '').trim();
    await act('close', text ? { comment: text } : {}, 'Issue closed.');
  }

  function actions(i) {
    if (!manage) return html`<span class="why">${lacks('alerts:manage')} You can read this issue but not act on it.</span>`;
    const b = (label, fn, cls = '') => html`<button type="button" class=${cls} ?disabled=${s.busy} @click=${fn}>${label}</button>`;
    return html`
      ${i.status === 'open' ? b('Acknowledge', () => act('acknowledge', {}, 'Issue acknowledged.'), 'primary') : nothing}
      ${i.status !== 'closed' ? b('Close…', () => { s.closing = true; ctx.update(); requestAnimationFrame(() => document.getElementById('close_comment')?.focus()); }) : nothing}
      ${i.status === 'closed' ? b('Reopen', () => act('reopen', {}, 'Issue reopened.')) : nothing}`;
  }

  const timelineView = (rows) => html`<ol class="timeline">${rows.map((e) => html`<li class="k-${e.kind}">
    <div><span class="what">${KIND_LABEL[e.kind] || cap(e.kind)}${e.count > 1 ? ` (${e.count})` : ''}</span>
      <span class="when">· ${time(e.at)} · ${e.actor}</span></div>
    ${e.detail ? html`<div class="detail">${e.detail}</div>` : nothing}</li>`)}</ol>`;

  return {
    title: `Issue ${id}`,
    view: () => {
      const i = s.issue;
      if (!i) {
        return html`<p class="crumbs"><a href="#/issues">Issues</a> › ${id}</p>
          ${s.error ? html`<h1>Issue</h1>${errorBox(s.error)}` : spinner()}`;
      }
      return html`
        <p class="crumbs"><a href="#/issues?status=${i.status}">Issues</a> › ${id}</p>
        <div class="page-head"><div><h1>${i.title}</h1>
          <p class="sub">${badge(i.status)} <span class="mono">${i.id}</span>${i.close_reason ? html` · closed (${i.close_reason})` : nothing}</p></div>
          <div class="actions">${actions(i)}</div></div>
        ${errorBox(s.actionError)}
        ${s.closing ? html`<form class="card" @submit=${close} aria-label="Close the issue">
          <div class="field"><label for="close_comment">Comment (optional)</label>
            <textarea id="close_comment" name="close_comment" placeholder="What fixed it?"></textarea></div>
          <div class="form-actions"><button class="primary" type="submit" ?disabled=${s.busy}>Close issue</button>
            <button type="button" @click=${() => { s.closing = false; ctx.update(); }}>Cancel</button></div></form>` : nothing}
        <div class="grid two">
          <section class="card"><h2>Group</h2><dl class="facts">
            ${Object.keys(i.group).length ? Object.entries(i.group).map(([k, v]) => html`<dt>${cap(k)}</dt><dd class="mono">${v}</dd>`)
              : html`<dt>Group</dt><dd>every alert of the policy</dd>`}
            <dt>Policy</dt><dd>${s.policy ? html`<a href="#/alert-policies/${enc(i.policy_id)}">${s.policy.name}</a>` : html`<span class="mono">${i.policy_id}</span>`}</dd>
            ${i.previous_issue_id ? html`<dt>Previous issue</dt><dd><a class="mono" href="#/issues/${enc(i.previous_issue_id)}">${i.previous_issue_id}</a></dd>` : nothing}
          </dl></section>
          <section class="card"><h2>Counts</h2><dl class="facts">
            <dt>Alerts</dt><dd>${i.alert_count}</dd><dt>Opened</dt><dd>${time(i.opened_at)}</dd>
            <dt>Last alert</dt><dd>${time(i.last_alert_at)} (${ago(i.last_alert_at)})</dd>
            <dt>Acknowledged</dt><dd>${i.acknowledged_at ? time(i.acknowledged_at) : 'no'}</dd>
            <dt>Closed</dt><dd>${i.closed_at ? time(i.closed_at) : 'no'}</dd></dl></section>
        </div>
        <div class="grid two">
          <section aria-labelledby="tl-h"><h2 id="tl-h">Activity</h2>
            <div class="card">
              ${manage ? html`<form @submit=${comment} aria-label="Add a comment">
                <div class="field"><label for="comment">Add a comment</label><textarea id="comment" name="comment"></textarea></div>
                <button type="submit" ?disabled=${s.busy}>Comment</button></form>` : nothing}
              ${timeline.error ? errorBox(timeline.error) : !timeline.rows ? spinner() : timelineView(timeline.rows)}
              ${timeline.next || timeline.page > 1 ? html`<div class="pager"><button type="button" class="small" ?disabled=${timeline.page === 1} @click=${() => timeline.newer()}>← Newer</button>
                <button type="button" class="small" ?disabled=${!timeline.next} @click=${() => timeline.older()}>Older →</button></div>` : nothing}
            </div></section>
          <section aria-labelledby="al-h"><h2 id="al-h">Alerts</h2>
            ${alerts.view((rows) => alertsTable(rows, { showIssues: false, compact: true }), empty('No alerts', 'This issue has no alerts left (they may have been purged).'))}</section>
        </div>`;
    },
  };
}
