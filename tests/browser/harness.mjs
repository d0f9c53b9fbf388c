// Fixtures of the browser tests: a real `sluice serve` (temp data dir, free port), the real
// peers (tests/browser/peers.py: the webhook receiver and aiosmtpd; s3rver behind
// tests/integration/s3front.js) and Debian's Chromium driven by playwright-core. Every child
// is killed when the tests end; a failing test prints the server's log.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '..', '..');
export const SHOTS = process.env.SLUICE_SCREENSHOTS || path.join(REPO, 'build', 'browser', 'screenshots');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const children = [];

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function track(child) {
  children.push(child);
  return child;
}

export function stopAll() {
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null) {
      c.stdin?.end();
      c.kill('SIGTERM');
    }
  }
}
process.on('exit', stopAll);

/** Waits for the first line of a child's stdout that starts with prefix. */
function readyLine(child, prefix, what) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error(`${what} did not start within 30 s`)), 30000);
    child.stdout.on('data', (d) => {
      buf += d;
      const line = buf.split('\n').find((l) => l.startsWith(prefix));
      if (line) { clearTimeout(t); resolve(line.trim().split(/\s+/).slice(1)); }
    });
    child.on('exit', (code) => { clearTimeout(t); reject(new Error(`${what} exited with ${code}: ${buf}`)); });
  });
}

export class Sluice {
  constructor(args = []) {
    this.args = args;
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'sluice-browser-'));
    this.token = `admin-${Math.random().toString(36).slice(2)}${Date.now()}`;
    this.log = path.join(this.dir, 'sluice.log');
  }

  async start() {
    this.port = await freePort();
    this.url = `http://127.0.0.1:${this.port}`;
    const bin = process.env.SLUICE_BIN || path.join(REPO, 'build', 'sluice');
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SLUICE_')));
    const { openSync } = await import('node:fs');
    const out = openSync(this.log, 'a');
    this.proc = track(spawn(bin, ['serve', '--data-dir', path.join(this.dir, 'data'), '--listen', `127.0.0.1:${this.port}`,
      '--admin-token', this.token, '--public-url', this.url, ...this.args], { stdio: ['ignore', out, out], env }));
    const deadline = Date.now() + 20000;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null) throw new Error(`sluice exited:\n${this.output()}`);
      try {
        const r = await fetch(`${this.url}/readyz`);
        if (r.status === 200) return this;
      } catch { /* not listening yet */ }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`sluice not ready:\n${this.output()}`);
  }

  output() {
    try { return readFileSync(this.log, 'utf8').slice(-20000); } catch { return ''; }
  }

  /** Calls the API; returns the parsed body, throwing on an unexpected status. */
  async api(method, p, body, token, expect) {
    const r = await fetch(this.url + p, {
      method, headers: { Authorization: `Bearer ${token}`, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    const data = text ? JSON.parse(text) : null;
    if (expect ? r.status !== expect : r.status >= 300) throw new Error(`${method} ${p}: ${r.status} ${text}`);
    return data;
  }

  admin(method, p, body) { return this.api(method, p, body, this.token); }

  cleanup() {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function startPeers() {
  const child = track(spawn('/usr/bin/python3', [path.join(HERE, 'peers.py')], { stdio: ['pipe', 'pipe', 'inherit'] }));
  const [rport, sport] = await readyLine(child, 'READY', 'peers.py');
  const base = `http://127.0.0.1:${rport}`;
  return {
    receiverUrl: (p) => `${base}${p}`,
    smtpUrl: `smtp://127.0.0.1:${sport}`,
    async answer(p, status) {
      const r = await fetch(`${base}/_control`, { method: 'POST', body: JSON.stringify({ path: p, status }) });
      if (r.status !== 204) throw new Error(`receiver control: ${r.status}`);
    },
    async count(p) { return (await (await fetch(`${base}/_count?path=${p}`)).json()).count; },
    async mail() { return (await fetch(`${base}/_mail`)).json(); },
  };
}

export const S3 = { akid: 'AKIDBROWSERTEST', secret: 'browser-test-secret-key', region: 'eu-central-1', bucket: 'acme-events' };

export async function startS3() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sluice-browser-s3-'));
  mkdirSync(path.join(dir, 'data'));
  const child = track(spawn('node', [path.join(REPO, 'tests', 'integration', 's3front.js'), '0', path.join(dir, 'data'), S3.akid, S3.secret, S3.region, S3.bucket],
    { stdio: ['ignore', 'pipe', 'inherit'], cwd: REPO }));
  const [front] = await readyLine(child, 'READY', 's3front.js');
  return { endpoint: `http://127.0.0.1:${front}` };
}

export async function launch() {
  // playwright-core gives every launch a fresh, temporary profile (user data dir).
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
}

/**
 * A page at a viewport that records console errors, page errors and CSP violations; the
 * tests assert that none happened.
 */
export async function newPage(browser, width = 1366, height = 850) {
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.problems = [];
  // 4xx answers the tests provoke are logged by Chromium as "Failed to load resource": not problems.
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) page.problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
  return page;
}

export async function shot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** Signs in through the form and waits for the page it leads to. */
export async function signIn(page, base, key, hash = '') {
  await page.goto(`${base}/${hash}`);
  await page.getByLabel('API key or admin token').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('.shell').waitFor();
}

export async function toast(page, text) {
  await page.locator('#toasts .toast', { hasText: text }).first().waitFor();
}

/** Polls fn until it returns a truthy value (deadline based). */
export async function until(fn, what, timeout = 15000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
