// Operations → Alerts (filterable, paginated; an alert's page with its message, details,
// task and issues) and the Tasks view (tasks and their alerts), reached from an alert's
// "Find related tasks".
import { html, nothing } from '../vendor/lit-html.js';
import { getAll, get, qs } from '../lib/api.js';
import { Pager, badge, empty, errorBox, isoToLocal, json, localToIso, spinner, time } from '../lib/ui.js';

const enc = encodeURIComponent;

// The failure catalog and the connections seen, for the filter menus (loaded once).
let catalog = null;
async function options() {
  if (!catalog) {
    catalog = Promise.all([getAll('/v1/failure-types'), getAll('/v1/connections', 2000)])
      .then(([types, conns]) => ({ types, conns, categories: [...new Set(types.map((t) => t.category))] }))
      .catch((e) => { catalog = null; throw e; });
  }
  return catalog;
}

const alertTitle = (a) => html`<span class="mono">${a.event}</span>`;

export function alertsTable(rows, { showIssues = true, compact = false } = {}) {
  if (compact) { // beside the timeline on an issue's page: fewer, wider columns
    return html`<table>
      <thead><tr><th>Alert</th><th>Message</th><th>Occurred at</th></tr></thead>
      <tbody>${rows.map((a) => html`<tr>
        <td class="wrap narrow"><a href="#/alerts/${enc(a.id)}">${alertTitle(a)}</a>
          <span class="secondary">${a.resolved_at ? html`${badge('resolved', 'Resolved')} ` : nothing}<span class="mono">${a.entity_id ?? ''}</span></span></td>
        <td class="wrap narrow">${a.message}</td>
        <td class="nowrap">${time(a.occurred_at)}</td></tr>`)}</tbody></table>`;
  }
  return html`<table>
    <thead><tr><th>Alert</th><th>Message</th><th>Connection</th><th>Entity</th><th>Occurred at</th>${showIssues ? html`<th>Issues</th>` : nothing}</tr></thead>
    <tbody>${rows.map((a) => html`<tr>
      <td class="wrap"><a href="#/alerts/${enc(a.id)}">${alertTitle(a)}</a>
        <span class="secondary">${a.resolved_at ? html`${badge('resolved', 'Resolved')} ` : nothing}<span class="mono">${a.id}</span></span></td>
      <td class="wrap">${a.message}</td>
      <td class="mono">${a.connection ?? '—'}</td>
      <td class="mono wrap">${a.entity_id ?? '—'}</td>
      <td class="nowrap">${time(a.occurred_at)}</td>
      ${showIssues ? html`<td>${a.issue_ids.length ? a.issue_ids.map((i) => html`<a class="mono" href="#/issues/${enc(i)}">${i.slice(0, 12)}…</a> `) : html`<span class="muted">none</span>`}</td>` : nothing}
    </tr>`)}</tbody></table>`;
}

const FILTERS = ['event', 'category', 'connection', 'entity_id', 'task_id', 'from', 'to'];

export function list(ctx) {
  const f = Object.fromEntries(FILTERS.map((k) => [k, ctx.query.get(k) || '']));
  const s = { opts: null };
  const pager = new Pager(`/v1/alerts${qs(f)}`, ctx.update);
  pager.load();
  options().then((o) => { s.opts = o; ctx.update(); }).catch(() => { s.opts = { types: [], conns: [], categories: [] }; ctx.update(); });
  const filtered = FILTERS.some((k) => f[k]);

  function apply(e) {
    e.preventDefault();
    const d = new FormData(e.target);
    const q = {};
    for (const k of FILTERS) {
      const v = String(d.get(k) || '').trim();
      q[k] = k === 'from' || k === 'to' ? localToIso(v) : v;
    }
    ctx.go(`/alerts${qs(q)}`);
  }

  const select = (name, label, values, allLabel) => html`<div class="field"><label for="a-${name}">${label}</label>
    <select id="a-${name}" name=${name}><option value="">${allLabel}</option>
      ${values.map((v) => html`<option value=${v} ?selected=${f[name] === v}>${v}</option>`)}
      ${f[name] && !values.includes(f[name]) ? html`<option value=${f[name]} selected>${f[name]}</option>` : nothing}</select></div>`;
  const text = (name, label, placeholder) => html`<div class="field"><label for="a-${name}">${label}</label>
    <input id="a-${name}" name=${name} type="search" value=${f[name]} placeholder=${placeholder}></div>`;

  return {
    title: 'Alerts',
    view: () => html`
      <div class="page-head"><div><p class="crumbs">Operations</p><h1>Alerts</h1>
        <p class="sub">Every failure recorded, whether or not a policy matched it.</p></div></div>
      <form class="filters" role="search" aria-label="Filter alerts" @submit=${apply}>
        ${select('event', 'Event', s.opts ? s.opts.types.map((t) => t.name) : [], 'Any event')}
        ${select('category', 'Category', s.opts ? s.opts.categories : [], 'Any category')}
        ${select('connection', 'Connection', s.opts ? s.opts.conns.map((c) => c.connection) : [], 'Any connection')}
        ${text('entity_id', 'Entity', 'e.g. ORD-1001')}
        ${text('task_id', 'Task', 'tsk_…')}
        <div class="field"><label for="a-from">From</label><input id="a-from" name="from" type="datetime-local" value=${isoToLocal(f.from)}></div>
        <div class="field"><label for="a-to">To</label><input id="a-to" name="to" type="datetime-local" value=${isoToLocal(f.to)}></div>
        <button class="primary" type="submit">Filter</button>
        ${filtered ? html`<a class="button" href="#/alerts">Clear</a>` : nothing}
      </form>
      ${pager.view((rows) => alertsTable(rows), filtered
        ? empty('No alerts match these filters', 'Widen the time range or clear the filters.')
        : empty('No alerts yet', 'Your services report failures with POST /v1/alerts; Sluice records its own Event Stream failures here too.'))}`,
  };
}

export function detail(ctx) {
  const id = ctx.params.id;
  const s = { alert: null, error: null, task: null, issues: null };
  (async () => {
    try {
      s.alert = await get(`/v1/alerts/${enc(id)}`);
      ctx.update();
      const jobs = [Promise.all(s.alert.issue_ids.map((i) => get(`/v1/issues/${enc(i)}`))).then((r) => { s.issues = r; })];
      if (s.alert.task_id) jobs.push(get(`/v1/tasks/${enc(s.alert.task_id)}`).then((t) => { s.task = t; }));
      await Promise.all(jobs);
    } catch (e) {
      s.error = e;
    }
    ctx.update();
  })();

  function taskSection(a) {
    if (!a.task_id) {
      return html`<p class="muted">This alert was reported without a task.</p>`;
    }
    if (!s.task) return spinner();
    const others = s.task.alerts.filter((x) => x.id !== a.id);
    return html`<dl class="facts"><dt>Task</dt><dd><a class="mono" href="#/tasks/${enc(s.task.id)}">${s.task.id}</a></dd>
        <dt>Kind</dt><dd>${s.task.kind}</dd><dt>Status</dt><dd>${badge(s.task.status)}</dd>
        <dt>Connection</dt><dd class="mono">${s.task.connection ?? '—'}</dd></dl>
      <h3>The task's other alerts</h3>
      ${others.length ? html`<div class="table-wrap">${alertsTable(others)}</div>` : html`<p class="muted">None: this is the task's only alert.</p>`}`;
  }

  const related = (a) => `/tasks${qs({ connection: a.connection || '' })}`;

  return {
    title: `Alert ${id}`,
    view: () => {
      const a = s.alert;
      return html`<p class="crumbs"><a href="#/alerts">Alerts</a> › ${id}</p>
        ${s.error && !a ? html`<h1>Alert</h1>${errorBox(s.error)}` : !a ? spinner() : html`
        <div class="page-head"><div><h1>${a.event}</h1><p class="sub mono">${a.id}</p></div>
          <div class="actions"><a class="button" href="#${related(a)}">Find related tasks</a></div></div>
        ${errorBox(s.error)}
        <p class="message">${a.message}</p>
        <div class="grid two">
          <section class="card"><h2>Alert</h2><dl class="facts">
            <dt>Event</dt><dd class="mono">${a.event}</dd><dt>Category</dt><dd>${a.category}</dd>
            <dt>Connection</dt><dd>${a.connection ? html`<a class="mono" href="#/alerts?connection=${enc(a.connection)}">${a.connection}</a>` : '—'}</dd>
            <dt>Entity</dt><dd>${a.entity_id ? html`<a class="mono" href="#/alerts?entity_id=${enc(a.entity_id)}">${a.entity_id}</a>` : '—'}</dd>
            <dt>Occurred at</dt><dd>${time(a.occurred_at)}</dd><dt>Recorded at</dt><dd>${time(a.created_at)}</dd>
            <dt>Resolved</dt><dd>${a.resolved_at ? time(a.resolved_at) : 'not yet'}</dd></dl></section>
          <section class="card"><h2>Issues</h2>
            ${s.issues === null ? spinner() : s.issues.length === 0
              ? html`<p class="muted">No issue: no enabled alert policy watches ${a.event}${a.connection ? ` on ${a.connection}` : ''}.
                  <a href="#/alert-policies">Alert policies</a>.</p>`
              : html`<ul class="plain-list">${s.issues.map((i) => html`<li><a href="#/issues/${enc(i.id)}">${i.title}</a> ${badge(i.status)}
                  <span class="muted">· ${i.alert_count} alerts</span></li>`)}</ul>`}</section>
        </div>
        <section class="card"><h2>Details</h2>${a.details && Object.keys(a.details).length ? json(a.details) : html`<p class="muted">No details were reported.</p>`}</section>
        <section class="card"><h2>Task</h2>${taskSection(a)}</section>`}`;
    },
  };
}

export function tasks(ctx) {
  const f = { connection: ctx.query.get('connection') || '', kind: ctx.query.get('kind') || '' };
  const pager = new Pager(`/v1/tasks${qs(f)}`, ctx.update);
  pager.load();
  const filtered = f.connection || f.kind;
  function apply(e) {
    e.preventDefault();
    const d = new FormData(e.target);
    ctx.go(`/tasks${qs({ connection: String(d.get('connection')).trim(), kind: String(d.get('kind')).trim() })}`);
  }
  const table = (rows) => html`<table>
    <thead><tr><th>Task</th><th>Kind</th><th>Connection</th><th>Status</th><th class="num">Alerts</th><th>Created at</th></tr></thead>
    <tbody>${rows.map((t) => html`<tr><td><a class="mono" href="#/tasks/${enc(t.id)}">${t.id}</a></td><td>${t.kind}</td>
      <td class="mono">${t.connection ?? '—'}</td><td>${badge(t.status)}</td><td class="num">${t.alerts?.length ?? 0}</td>
      <td class="nowrap">${time(t.created_at)}</td></tr>`)}</tbody></table>`;
  return {
    title: 'Tasks',
    view: () => html`
      <div class="page-head"><div><p class="crumbs">Operations</p><h1>Tasks</h1>
        <p class="sub">Units of work your services ran (an import, an export…) and the alerts they raised.</p></div></div>
      <form class="filters" role="search" aria-label="Filter tasks" @submit=${apply}>
        <div class="field"><label for="t-conn">Connection</label><input id="t-conn" name="connection" type="search" value=${f.connection}></div>
        <div class="field"><label for="t-kind">Kind</label><input id="t-kind" name="kind" type="search" value=${f.kind} placeholder="order_import"></div>
        <button class="primary" type="submit">Filter</button>
        ${filtered ? html`<a class="button" href="#/tasks">Clear</a>` : nothing}
      </form>
      ${pager.view(table, filtered ? empty('No tasks match', 'Clear the filters to see every task.')
        : empty('No tasks yet', 'Services report tasks with POST /v1/tasks; failed Event Stream deliveries become tasks too.'))}`,
  };
}

export function task(ctx) {
  const id = ctx.params.id;
  const s = { task: null, error: null };
  get(`/v1/tasks/${enc(id)}`).then((t) => { s.task = t; ctx.update(); }).catch((e) => { s.error = e; ctx.update(); });
  return {
    title: `Task ${id}`,
    view: () => {
      const t = s.task;
      return html`<p class="crumbs"><a href="#/tasks">Tasks</a> › ${id}</p>
        ${s.error ? html`<h1>Task</h1>${errorBox(s.error)}` : !t ? spinner() : html`
        <div class="page-head"><div><h1>${t.kind}</h1><p class="sub mono">${t.id}</p></div></div>
        <section class="card"><dl class="facts">
          <dt>Status</dt><dd>${badge(t.status)}</dd><dt>Connection</dt><dd class="mono">${t.connection ?? '—'}</dd>
          <dt>Entity</dt><dd class="mono">${t.entity_id ?? '—'}</dd>
          <dt>Started</dt><dd>${time(t.started_at)}</dd><dt>Finished</dt><dd>${time(t.finished_at)}</dd>
          <dt>Recorded</dt><dd>${time(t.created_at)}</dd></dl>
          ${t.details && Object.keys(t.details).length ? html`<h3>Details</h3>${json(t.details)}` : nothing}</section>
        <h2>Alerts of this task</h2>
        ${t.alerts.length ? html`<div class="table-wrap">${alertsTable(t.alerts)}</div>` : html`<div class="table-wrap">${empty('No alerts', 'This task raised no alert.')}</div>`}`}`;
    },
  };
}
