// Overview, the landing page: deliveries per minute by outcome and alerts per hour over the
// last 24 h (SVG drawn here from GET /v1/stats), the delivery lag, open issues, and the
// integrations that need attention (paused by Sluice, failing, lagging).
import { html, svg, nothing } from '../vendor/lit-html.js';
import { can, get, getAll, qs } from '../lib/api.js';
import { ago, badge, empty, errorBox, spinner, time } from '../lib/ui.js';

const nf = new Intl.NumberFormat();
const DAY = 24 * 3600 * 1000;

export function overview(ctx) {
  const s = { minutes: null, hours: null, issues: null, moreIssues: false, attention: null, counts: null, error: null };
  const tools = can('tools:view');
  const alerts = can('alerts:view');

  async function load() {
    const now = Date.now();
    const to = new Date(Math.ceil(now / 60000) * 60000).toISOString();
    const from = new Date(Math.ceil(now / 60000) * 60000 - DAY).toISOString();
    const toH = new Date(Math.ceil(now / 3600000) * 3600000).toISOString();
    const fromH = new Date(Math.ceil(now / 3600000) * 3600000 - DAY).toISOString();
    const jobs = [
      get(`/v1/stats${qs({ bucket: '1m', from, to })}`).then((r) => { s.minutes = r; }),
      get(`/v1/stats${qs({ bucket: '1h', from: fromH, to: toH })}`).then((r) => { s.hours = r; }),
    ];
    if (alerts) {
      jobs.push(get('/v1/issues?status=open&limit=6').then((r) => { s.issues = r.data; s.moreIssues = !!r.next_cursor; }));
    }
    jobs.push(loadAttention(now));
    try {
      await Promise.all(jobs);
    } catch (e) {
      s.error = e;
    }
    ctx.update();
  }

  async function loadAttention(now) {
    const rows = new Map(); // integration id -> {id, state, reasons: []}
    const add = (id, state, reason, kind) => {
      const r = rows.get(id) || { id, state, reasons: [] };
      if (!r.reasons.some((x) => x.text === reason)) r.reasons.push({ text: reason, kind });
      rows.set(id, r);
    };
    let integrations = [];
    if (tools) {
      integrations = await getAll('/v1/integrations', 2000);
      s.counts = {
        active: integrations.filter((i) => i.state === 'active').length,
        paused: integrations.filter((i) => i.state === 'paused').length,
        stopped: integrations.filter((i) => i.state === 'stopped').length,
      };
      const paused = integrations.filter((i) => i.state === 'paused').slice(0, 20);
      await Promise.all(paused.map(async (i) => {
        const log = (await get(`/v1/integrations/${encodeURIComponent(i.id)}/logs?limit=1`)).data[0];
        if (log?.actor === 'system') add(i.id, i.state, `Paused by Sluice: ${log.reason}`, 'bad');
        else add(i.id, i.state, `${log ? log.reason[0].toUpperCase() + log.reason.slice(1) : 'Paused'}; its events wait for a resume`, 'warn');
      }));
    }
    if (alerts) {
      const recent = await get(`/v1/alerts${qs({ category: 'event_stream', from: new Date(now - DAY).toISOString(), limit: 500 })}`);
      const state = new Map(integrations.map((i) => [i.id, i.state]));
      for (const a of recent.data) {
        if (a.resolved_at || !a.connection) continue;
        if (tools && !state.has(a.connection)) continue; // deleted since
        if (a.details?.reason === 'lagging') add(a.connection, state.get(a.connection), 'Lagging: undelivered events older than 15 minutes', 'bad');
        else if (a.event === 'event_stream.delivery_failed') add(a.connection, state.get(a.connection), 'Failing: deliveries failed in the last 24 h', 'bad');
        else if (a.event === 'event_stream.event_rejected') add(a.connection, state.get(a.connection), 'The consumer rejected events in the last 24 h', 'warn');
      }
    }
    s.attention = [...rows.values()];
  }
  if (!tools && !alerts) {
    return {
      title: 'Overview',
      view: () => html`<h1>Overview</h1><p class="notice">This API key may not read integrations or alerts
        (it has neither tools:view nor alerts:view), so the console has nothing to show it. Keys for publishing events
        or reporting alerts are meant for your services; ask your administrator for a key with the view permissions.</p>`,
    };
  }
  load();

  function lag() {
    const at = s.minutes?.oldest_pending_at;
    if (!at) return html`<div class="value ok">none</div><div class="label">every event delivered</div>`;
    const mins = (Date.now() - new Date(at).getTime()) / 60000;
    return html`<div class="value ${mins > 15 ? 'bad' : ''}">${ago(at).replace(' ago', '')}</div>
      <div class="label">oldest undelivered event, since ${time(at)}</div>`;
  }

  return {
    title: 'Overview',
    view: () => html`
      <div class="page-head"><div><h1>Overview</h1><p class="sub">The last 24 hours of your Event Stream and alerts.</p></div>
        <div class="actions"><button type="button" @click=${() => load()}>Refresh</button></div></div>
      ${errorBox(s.error)}
      ${!s.minutes ? spinner() : html`
        <div class="grid four">
          ${deliveryTotals(s.minutes)}
          <div class="stat"><div class="label">Delivery lag</div>${lag()}</div>
        </div>
        <section class="card" aria-labelledby="ch1">
          <h2 id="ch1">Deliveries per minute</h2>
          ${deliveryChart(s.minutes.buckets)}
        </section>
        <div class="grid two">
          <section class="card" aria-labelledby="ch2">
            <h2 id="ch2">Alerts per hour</h2>
            ${s.hours ? alertChart(s.hours.buckets) : spinner()}
          </section>
          ${alerts ? html`<section class="card" aria-labelledby="oi">
            <h2 id="oi">Open issues</h2>
            ${s.issues === null ? spinner() : s.issues.length === 0
              ? html`<p class="muted">No open issues. Issues open when an alert matches an <a href="#/alert-policies">alert policy</a>.</p>`
              : html`<ul class="plain-list">${s.issues.slice(0, 5).map((i) => html`<li><a href="#/issues/${i.id}">${i.title}</a>
                  <span class="muted">· ${i.alert_count} alert${i.alert_count === 1 ? '' : 's'} · last ${ago(i.last_alert_at)}</span></li>`)}</ul>
                ${s.issues.length > 5 || s.moreIssues ? html`<p><a href="#/issues?status=open">All open issues →</a></p>` : nothing}`}
          </section>` : nothing}
        </div>
        <section class="card" aria-labelledby="att">
          <h2 id="att">Integrations that need attention</h2>
          ${s.counts ? html`<p class="muted">${s.counts.active} active · ${s.counts.paused} paused · ${s.counts.stopped} stopped</p>` : nothing}
          ${s.attention === null ? spinner() : s.attention.length === 0
            ? html`<p class="muted">Nothing needs attention: no integration is paused, failing or lagging.
                ${tools ? html`<a href="#/integrations">See every integration</a>.` : nothing}</p>`
            : html`<div class="table-wrap"><table><thead><tr><th>Integration</th><th>State</th><th>Why</th><th></th></tr></thead><tbody>
                ${s.attention.map((r) => html`<tr><td><a href="#/integrations/${encodeURIComponent(r.id)}/events">${r.id}</a></td>
                  <td>${r.state ? badge(r.state) : nothing}</td>
                  <td>${r.reasons.map((x) => html`<div>${x.text}</div>`)}</td>
                  <td class="nowrap"><a href="#/integrations/${encodeURIComponent(r.id)}/logs">Logs</a> ·
                    <a href="#/alerts?connection=${encodeURIComponent(r.id)}">Alerts</a></td></tr>`)}
              </tbody></table></div>`}
        </section>`}`,
  };
}

function deliveryTotals(stats) {
  const t = { succeeded: 0, failed: 0, rejected: 0 };
  let events = 0;
  for (const b of stats.buckets) {
    t.succeeded += b.deliveries.succeeded;
    t.failed += b.deliveries.failed;
    t.rejected += b.deliveries.rejected;
    events += b.events;
  }
  return html`
    <div class="stat"><div class="label">Events published</div><div class="value">${nf.format(events)}</div></div>
    <div class="stat"><div class="label">Delivered</div><div class="value ok">${nf.format(t.succeeded)}</div></div>
    <div class="stat"><div class="label">Failed · rejected</div><div class="value ${t.failed + t.rejected ? 'bad' : ''}">${nf.format(t.failed)} · ${nf.format(t.rejected)}</div></div>`;
}

function niceMax(v) {
  if (v <= 4) return 4;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return v;
}

const hhmm = (iso) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

function frame(W, H, L, B, max, buckets, every) {
  const plotH = H - B - 8;
  const y = (v) => 8 + plotH - (v / max) * plotH;
  const step = (W - L - 8) / buckets.length;
  return svg`
    ${[0, max / 2, max].map((v) => svg`<line class="grid-line" x1=${L} x2=${W - 8} y1=${y(v)} y2=${y(v)}></line>
      <text x=${L - 6} y=${y(v) + 4} text-anchor="end">${nf.format(v)}</text>`)}
    <line class="axis" x1=${L} x2=${W - 8} y1=${y(0)} y2=${y(0)}></line>
    ${buckets.map((b, i) => (i % every === 0 ? svg`<text x=${L + i * step} y=${H - 6} text-anchor="middle">${hhmm(b.at)}</text>` : nothing))}`;
}

function deliveryChart(buckets) {
  const narrow = window.innerWidth < 700; // fewer, larger units keep the labels readable
  const W = narrow ? 480 : 960, H = narrow ? 240 : 200, L = 44, B = 22;
  const totals = buckets.map((b) => b.deliveries.succeeded + b.deliveries.failed + b.deliveries.rejected);
  const peak = Math.max(0, ...totals);
  const max = niceMax(peak);
  const plotH = H - B - 8;
  const step = (W - L - 8) / buckets.length;
  const paths = { succeeded: '', failed: '', rejected: '' };
  buckets.forEach((b, i) => {
    let base = 0;
    const x = (L + i * step + step / 2).toFixed(2);
    for (const k of ['succeeded', 'failed', 'rejected']) {
      const v = b.deliveries[k];
      if (!v) continue;
      const y0 = 8 + plotH - (base / max) * plotH;
      const y1 = 8 + plotH - ((base + v) / max) * plotH;
      paths[k] += `M${x} ${y0.toFixed(2)}V${y1.toFixed(2)}`;
      base += v;
    }
  });
  const sum = (k) => buckets.reduce((a, b) => a + b.deliveries[k], 0);
  const label = `Deliveries per minute over the last 24 hours: ${nf.format(sum('succeeded'))} succeeded, ${nf.format(sum('failed'))} failed, ${nf.format(sum('rejected'))} rejected; peak ${nf.format(peak)} a minute.`;
  return html`
    <svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label=${label}>
      ${frame(W, H, L, B, max, buckets, narrow ? 360 : 180)}
      ${['succeeded', 'failed', 'rejected'].map((k) => (paths[k] ? svg`<path class="s-${k}" stroke-width=${Math.max(step, 1).toFixed(2)} d=${paths[k]}></path>` : nothing))}
    </svg>
    <ul class="legend"><li><span class="key k-succeeded"></span>Succeeded</li><li><span class="key k-failed"></span>Failed</li>
      <li><span class="key k-rejected"></span>Rejected</li><li>${peak ? `Peak ${nf.format(peak)} a minute` : 'No deliveries finished in the last 24 hours'}</li></ul>`;
}

function alertChart(buckets) {
  const W = 480, H = 200, L = 36, B = 22;
  const peak = Math.max(0, ...buckets.map((b) => b.alerts));
  const max = niceMax(peak);
  const plotH = H - B - 8;
  const step = (W - L - 8) / buckets.length;
  const total = buckets.reduce((a, b) => a + b.alerts, 0);
  return html`
    <svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="Alerts per hour over the last 24 hours: ${nf.format(total)} in all, at most ${nf.format(peak)} in one hour.">
      ${frame(W, H, L, B, max, buckets, 6)}
      ${buckets.map((b, i) => (b.alerts ? svg`<rect class="s-alerts" x=${(L + i * step + 1).toFixed(2)} width=${Math.max(step - 2, 1).toFixed(2)}
          y=${(8 + plotH - (b.alerts / max) * plotH).toFixed(2)} height=${((b.alerts / max) * plotH).toFixed(2)}><title>${hhmm(b.at)}: ${b.alerts} alerts</title></rect>` : nothing))}
    </svg>
    <ul class="legend"><li><span class="key k-alerts"></span>${total ? `${nf.format(total)} alerts in 24 hours` : 'No alerts in the last 24 hours'}</li></ul>`;
}
