// The Sluice console: a single page over the public API, routed by the URL's hash
// (#/issues/iss_…), so every page has a deep link and a mailed link opens its page after
// sign-in. Pages live in pages/*.js; each is a function (ctx) -> {title, view} that keeps its
// own state and calls ctx.update() to re-render. No framework beyond lit-html's templates.
import { html, render, nothing } from './vendor/lit-html.js';
import { api, can, session, setUnauthorizedHandler } from './lib/api.js';
import { closeMenus, errorBox } from './lib/ui.js';
import * as overview from './pages/overview.js';
import * as stream from './pages/stream.js';
import * as alerts from './pages/alerts.js';
import * as issues from './pages/issues.js';
import * as settings from './pages/settings.js';
import * as admin from './pages/admin.js';

const ROUTES = [
  ['/signin', signinPage, { public: true }],
  ['/', overview.overview],
  ['/admin', admin.admin, { admin: true }],
  ['/integrations', stream.list],
  ['/integrations/new', stream.form],
  ['/integrations/:id/events', stream.events],
  ['/integrations/:id/events/:event', stream.attempts],
  ['/integrations/:id/rejected', stream.rejected],
  ['/integrations/:id/logs', stream.logs],
  ['/integrations/:id/edit', stream.form],
  ['/alerts', alerts.list],
  ['/alerts/:id', alerts.detail],
  ['/tasks', alerts.tasks],
  ['/tasks/:id', alerts.task],
  ['/issues', issues.list],
  ['/issues/:id', issues.detail],
  ['/notification-channels', settings.channels],
  ['/notification-channels/new', settings.channelForm],
  ['/notification-channels/:id', settings.channelForm],
  ['/alert-policies', settings.policies],
  ['/alert-policies/new', settings.policyForm],
  ['/alert-policies/:id', settings.policyForm],
];

const root = document.getElementById('app');
root.textContent = ''; // the boot message; lit-html renders into an empty container
let current = null; // {page, path, token}
let navToken = 0;

function parseHash() {
  const h = decodeURI(location.hash.replace(/^#/, '')) || '/';
  const [path, query = ''] = h.split('?');
  return { path: path || '/', query: new URLSearchParams(query) };
}

function match(path) {
  const segs = path.split('/').filter(Boolean);
  for (const [pattern, fn, opts = {}] of ROUTES) {
    const ps = pattern.split('/').filter(Boolean);
    if (ps.length !== segs.length) continue;
    const params = {};
    if (ps.every((p, i) => (p.startsWith(':') ? ((params[p.slice(1)] = decodeURIComponent(segs[i])), true) : p === segs[i]))) {
      return { fn, params, opts };
    }
  }
  return null;
}

/** Goes to a console path ("/issues?status=open"). */
export function go(path) {
  if (location.hash === `#${path}`) route(); // the same page again (e.g. Filter): reload it
  else location.hash = `#${path}`;
}

function signOut(reason) {
  session.clear();
  const back = parseHash().path;
  go(`/signin${back && back !== '/signin' ? `?next=${encodeURIComponent(location.hash.slice(1))}` : ''}`);
  if (reason) setTimeout(() => import('./lib/ui.js').then((u) => u.toast(reason, 'bad')), 0);
}
setUnauthorizedHandler(() => signOut('The API key is no longer accepted; sign in again.'));

async function route() {
  const { path, query } = parseHash();
  const token = ++navToken;
  const m = match(path);
  if (!m?.opts.public && !session.key) {
    go(`/signin?next=${encodeURIComponent(location.hash.slice(1) || '/')}`);
    return;
  }
  if (session.key && !session.me) {
    try {
      session.me = await api('GET', '/v1/me');
    } catch (e) {
      if (e.status !== 401) { renderFatal(e); return; }
      return; // the 401 handler signed out
    }
    if (token !== navToken) return;
  }
  if (session.me?.admin && !m?.opts.public && !m?.opts.admin) { go('/admin'); return; }
  if (session.me && !session.me.admin && m?.opts.admin) { go('/'); return; }
  const ctx = {
    params: m?.params || {},
    query,
    path,
    update: () => { if (current?.token === token) paint(); },
    alive: () => current?.token === token,
    go,
    signOut,
  };
  const page = m ? m.fn(ctx) : notFound();
  current = { page, path, token, ctx };
  document.title = `${page.title} · Sluice`;
  paint();
  // Move focus to the page's heading so a screen reader announces the new page.
  requestAnimationFrame(() => {
    const h = root.querySelector('main h1');
    if (h) { h.setAttribute('tabindex', '-1'); h.focus({ preventScroll: true }); }
    window.scrollTo(0, 0);
    // On a phone the navigation is a scrolling row: keep the current page's link in view.
    const nav = root.querySelector('nav.side');
    const here = nav?.querySelector('a[aria-current="page"]');
    if (nav && here && nav.scrollWidth > nav.clientWidth) nav.scrollLeft = here.offsetLeft - 16;
  });
}

function paint() {
  const { page, path } = current;
  if (page.bare) {
    render(html`<main id="main" class="content">${page.view()}</main>`, root);
    return;
  }
  render(shell(path, page.view()), root);
}

function renderFatal(e) {
  render(html`<main id="main" class="content"><h1>Cannot reach Sluice</h1>${errorBox(e)}
    <p><button type="button" @click=${() => route()}>Try again</button></p></main>`, root);
}

function notFound() {
  return {
    title: 'Not found',
    view: () => html`<h1>Page not found</h1><p>There is no console page at this address.
      <a href="#/">Go to the overview</a>.</p>`,
  };
}

// --- the frame: top bar and navigation -------------------------------------------------
function navLink(href, label, path) {
  const base = href.replace(/^#/, '').split('?')[0];
  const active = base === '/' ? path === '/' : path === base || path.startsWith(`${base}/`);
  return html`<li><a href=${href} aria-current=${active ? 'page' : 'false'}>${label}</a></li>`;
}

function shell(path, content) {
  const me = session.me;
  const tools = can('tools:view');
  const alertsView = can('alerts:view');
  return html`
    <div class="shell">
      <header class="topbar">
        <a class="brand" href="#/"><img src="/ui/icon.svg" alt="">Sluice</a>
        <div class="who">
          ${me?.admin
            ? html`<span class="tenant">Administrator</span>`
            : html`<span>Tenant <span class="tenant">${me?.tenant}</span></span>
                   <span class="keyname" title=${(me?.key.permissions || []).join(', ')}>key “${me?.key.name}”</span>`}
          <button type="button" class="link small" @click=${() => signOut()}>Sign out</button>
        </div>
      </header>
      <nav class="side" aria-label="Main">
        ${me?.admin
          ? html`<div class="group"><ul>${navLink('#/admin', 'Tenants and keys', path)}</ul></div>`
          : html`
            <div class="group"><ul>${navLink('#/', 'Overview', path)}</ul></div>
            ${tools ? html`<div class="group"><p class="group-title">Tools</p><ul>${navLink('#/integrations', 'Event Stream', path)}</ul></div>` : nothing}
            ${alertsView ? html`<div class="group"><p class="group-title">Operations</p><ul>
                ${navLink('#/alerts', 'Alerts', path)}${navLink('#/issues', 'Issues', path)}${navLink('#/tasks', 'Tasks', path)}</ul></div>
              <div class="group"><p class="group-title">Alert Settings</p><ul>
                ${navLink('#/notification-channels', 'Notification Channels', path)}${navLink('#/alert-policies', 'Alert Policies', path)}</ul></div>` : nothing}`}
      </nav>
      <main id="main" class="content">${content}</main>
    </div>`;
}

// --- sign-in ---------------------------------------------------------------------------
function signinPage(ctx) {
  const s = { error: null, busy: false };
  const next = ctx.query.get('next');
  async function submit(e) {
    e.preventDefault();
    const key = new FormData(e.target).get('key').trim();
    if (!key) { s.error = { message: 'Paste an API key or the admin token.', fields: {} }; ctx.update(); return; }
    s.busy = true; ctx.update();
    try {
      const me = await api('GET', '/v1/me', undefined, key);
      session.set(key);
      session.me = me;
      go(me.admin ? '/admin' : next && !next.startsWith('/signin') ? next : '/');
    } catch (err) {
      s.error = err.status === 401
        ? { message: 'Sluice does not know this key. Check that you copied all of it.', fields: {} }
        : err;
      s.busy = false;
      ctx.update();
    }
  }
  return {
    title: 'Sign in',
    bare: true,
    view: () => html`<div class="signin card">
      <div class="logo"><img src="/ui/icon.svg" alt="">Sluice</div>
      <h1>Sign in</h1>
      <p class="muted">Use an API key of your tenant (sk_…), or the server's admin token to manage tenants and keys.
        The key stays in this browser tab only.</p>
      ${next && next.startsWith('/issues/') ? html`<p class="notice">Sign in to open issue <code>${next.split('/')[2]}</code>.</p>` : nothing}
      <form @submit=${submit} novalidate>
        <div class="field">
          <label for="key">API key or admin token</label>
          <input id="key" name="key" type="password" autocomplete="current-password" required
            aria-invalid=${s.error ? 'true' : 'false'} aria-describedby="key-err">
          ${s.error ? html`<p class="error" id="key-err" role="alert">${s.error.message}</p>` : nothing}
        </div>
        <button class="primary" type="submit" ?disabled=${s.busy}>${s.busy ? 'Signing in…' : 'Sign in'}</button>
      </form>
    </div>`,
  };
}

window.addEventListener('hashchange', route);
// An open Actions menu is placed with fixed coordinates: close it when the page moves, on
// Escape (focus back on its button) and on a click elsewhere.
window.addEventListener('scroll', () => closeMenus(), true);
window.addEventListener('resize', () => closeMenus());
document.addEventListener('click', (e) => {
  closeMenus(e.target);
  // The skip link's "#main" would be a route here: move focus to the content instead.
  if (e.target.closest?.('a.skip')) {
    e.preventDefault();
    const main = root.querySelector('main');
    main?.setAttribute('tabindex', '-1');
    main?.focus();
  }
});
document.addEventListener('keydown', (e) => {
  const open = document.querySelector('details.menu[open]');
  if (e.key === 'Escape' && open) { open.open = false; open.querySelector('summary').focus(); }
});
route();
