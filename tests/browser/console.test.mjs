// The console, used as an operator would, in headless Chromium against a real `sluice serve`
// with real peers: the webhook receiver, aiosmtpd, and s3rver behind the SigV4 front.
// The tests share one server and run in order (a fresh install is set up from the Admin page
// in the first one). Every page is also screenshot at 1366x850 and at a phone's 390x844
// into build/browser/screenshots/.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  S3, Sluice, launch, newPage, shot, signIn, startPeers, startS3, stopAll, toast, until,
} from './harness.mjs';

const ALL = ['events:publish', 'tools:manage', 'alerts:report', 'alerts:manage'];
let srv; let peers; let s3; let browser; let page;
const st = {}; // what the tests pass on: keys, ids

describe('the Sluice console', { concurrency: false }, () => {
  before(async () => {
    peers = await startPeers();
    s3 = await startS3();
    srv = await new Sluice(['--allow-private-targets', '--smtp-url', peers.smtpUrl, '--smtp-from', 'Sluice <alerts@acme.example>',
      '--time-scale', '60']).start();
    browser = await launch();
    page = await newPage(browser);
  });

  after(async () => {
    if (process.exitCode) console.log(`--- sluice log ---\n${srv?.output()}`);
    await browser?.close();
    stopAll();
    srv?.cleanup();
  });

  it('serves the console with its security headers, and no inline script runs', async () => {
    const r = await fetch(`${srv.url}/`);
    const csp = r.headers.get('content-security-policy');
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    // the browser enforces that CSP: an inline script injected into the page does not run
    await page.goto(`${srv.url}/`);
    await page.getByLabel('API key or admin token').waitFor();
    const ran = await page.evaluate(() => {
      const s = document.createElement('script');
      s.textContent = 'window.__inline = 1';
      document.body.append(s);
      return window.__inline === 1;
    });
    assert.equal(ran, false);
    page.problems = page.problems.filter((p) => !p.includes('Content Security Policy')); // the one we provoked
  });

  it('admin token: sign in, create a tenant and a key shown once, then use it', async () => {
    await page.getByLabel('API key or admin token').fill('sk_wrong');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('Sluice does not know this key').waitFor();
    await page.getByLabel('API key or admin token').fill(srv.token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Tenants and API keys' }).waitFor();
    assert.match(page.url(), /#\/admin$/);
    await page.getByText('No tenants yet').waitFor();
    const tenantForm = page.getByRole('form', { name: 'Create a tenant' });
    await tenantForm.getByLabel('Tenant ID').fill('acme');
    await tenantForm.getByLabel('Name').fill('Acme Retail');
    await page.getByRole('button', { name: 'Create tenant' }).click();
    await page.getByRole('heading', { name: 'API keys of acme' }).waitFor();
    await page.getByRole('cell', { name: 'Acme Retail' }).waitFor(); // the list updated without a reload
    // a duplicate tenant is refused with the API's reason
    await tenantForm.getByLabel('Tenant ID').fill('acme');
    await tenantForm.getByLabel('Name').fill('Again');
    await page.getByRole('button', { name: 'Create tenant' }).click();
    await page.locator('.form-error').first().waitFor();
    // revoke a key: confirmed in a dialog, gone from the list, refused by the API
    const temp = (await srv.admin('POST', '/v1/admin/tenants/acme/keys', { name: 'temp-key', permissions: ['events:publish'] })).key;
    await page.getByRole('button', { name: 'Hide keys' }).click();
    await page.getByRole('button', { name: 'API keys' }).click();
    await page.getByRole('row', { name: /temp-key/ }).getByRole('button', { name: 'Revoke' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke key' }).click();
    await toast(page, 'Revoked “temp-key”');
    await until(async () => (await page.getByRole('row', { name: /temp-key/ }).count()) === 0, 'the revoked key to leave the list');
    assert.equal((await fetch(`${srv.url}/v1/me`, { headers: { Authorization: `Bearer ${temp}` } })).status, 401);
    // a key with chosen permissions (the console's two are preselected)
    const form = page.getByRole('form', { name: 'Create an API key' });
    await form.getByLabel('Name').fill('ops-console');
    await form.getByRole('checkbox', { name: /events:publish/ }).check();
    await form.getByRole('checkbox', { name: /alerts:report/ }).check();
    await form.getByRole('button', { name: 'Create key' }).click();
    const secret = page.locator('[data-secret]');
    await secret.waitFor();
    st.key = (await secret.textContent()).trim();
    assert.match(st.key, /^sk_/);
    await page.getByRole('button', { name: 'Copy' }).click();
    await toast(page, 'Copied');
    await page.getByRole('cell', { name: 'ops-console' }).waitFor();
    // a view-only key for the permission test, created through the API
    st.viewKey = (await srv.admin('POST', '/v1/admin/tenants/acme/keys', { name: 'auditor', permissions: ['tools:view', 'alerts:view'] })).key;
    await shot(page, 'admin');
    await page.getByRole('button', { name: 'Sign in to the console with this key' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await page.locator('.topbar .tenant', { hasText: 'acme' }).waitFor();
    // the key's secret is not shown again after a reload of the admin list
    const keys = await srv.admin('GET', '/v1/admin/tenants/acme/keys');
    assert.ok(keys.data.every((k) => !JSON.stringify(k).includes(st.key)));
  });

  it('channels and policies: create a channel and a policy; failures open an issue to acknowledge and close', async () => {
    await page.goto(`${srv.url}/#/notification-channels`);
    await page.getByText('No notification channels').waitFor();
    await page.getByRole('link', { name: 'Add channel' }).first().click();
    await page.getByLabel('Name', { exact: true }).fill('Ops team');
    await page.getByLabel('Email addresses').fill('ops@acme.example\noncall@acme.example');
    await page.getByRole('button', { name: 'Add channel' }).click();
    await toast(page, 'Added “Ops team”');
    await page.getByRole('link', { name: 'Ops team' }).waitFor();

    await page.locator('nav.side').getByRole('link', { name: 'Alert Policies' }).click();
    await page.getByText('No alert policies').waitFor();
    await page.getByRole('link', { name: 'Create policy' }).first().click();
    await page.getByRole('button', { name: 'Create policy' }).click(); // nothing chosen: the API's errors by the fields
    await page.locator('#err-name').waitFor();
    await page.locator('#err-monitored_events').waitFor();
    await page.getByLabel('Name', { exact: true }).fill('Order imports');
    await page.getByRole('checkbox', { name: 'order.import_failed' }).check();
    await page.getByRole('checkbox', { name: /Ops team/ }).check();
    await page.getByRole('button', { name: 'Create policy' }).click();
    await toast(page, 'Created “Order imports”');
    await page.getByRole('link', { name: 'Order imports' }).waitFor();
    await shot(page, 'alert-policies');

    // the platform reports failures through the API; an issue opens with its timeline
    await srv.api('POST', '/v1/alerts', { alerts: [1, 2, 3].map((i) => ({
      event: 'order.import_failed', connection: 'shopify-main', entity_id: `ORD-${i}`,
      message: i === 1 ? '<img src=x onerror="window.__xss=1"> SKU ABC-1 not found' : 'SKU ABC-1 not found', details: { sku: 'ABC-1', i } })) }, st.key);
    await page.locator('nav.side').getByRole('link', { name: 'Issues' }).click();
    await page.getByRole('link', { name: 'order.import_failed on shopify-main' }).click();
    await page.getByRole('heading', { name: 'order.import_failed on shopify-main' }).waitFor();
    st.issue = page.url().split('#/issues/')[1];
    await page.locator('ol.timeline li.k-opened').waitFor();
    // the alert message is shown as text, never as HTML
    await page.locator('td', { hasText: '<img src=x onerror=' }).first().waitFor();
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    assert.equal(await page.locator('main img').count(), 0);
    // the mail goes out and the timeline says so (after a reload of the page's data)
    await until(async () => (await peers.mail()).length >= 2, 'the opened mails');
    await until(async () => {
      await page.goto(`${srv.url}/#/issues/${st.issue}`);
      return page.locator('ol.timeline').getByText('Notification sent').isVisible();
    }, 'notified on the timeline');
    await shot(page, 'issue');
    await page.getByRole('button', { name: 'Acknowledge' }).click();
    await toast(page, 'Issue acknowledged');
    await page.locator('.page-head .badge', { hasText: 'Acknowledged' }).waitFor();
    await page.locator('ol.timeline li.k-acknowledged').waitFor();
    await page.getByRole('textbox', { name: 'Add a comment' }).fill('Looking at the warehouse catalog now');
    await page.getByRole('button', { name: 'Comment', exact: true }).click();
    await page.locator('ol.timeline').getByText('Looking at the warehouse catalog now').waitFor();
    await page.getByRole('button', { name: 'Close…' }).click();
    await page.getByLabel('Comment (optional)').fill('SKU added to the catalog');
    await page.getByRole('button', { name: 'Close issue' }).click();
    await toast(page, 'Issue closed');
    await page.locator('.page-head .badge', { hasText: 'Closed' }).waitFor();
    await page.locator('ol.timeline li.k-closed').waitFor();
    await page.getByRole('button', { name: 'Reopen' }).waitFor();
    const issue = await srv.api('GET', `/v1/issues/${st.issue}`, undefined, st.key);
    assert.equal(issue.status, 'closed');
    assert.equal(issue.close_reason, 'manual');
    // the alert's page: message, details, its issue, and the related tasks
    await page.goto(`${srv.url}/#/alerts?connection=shopify-main`);
    await page.locator('tbody tr').first().waitFor();
    assert.equal(await page.locator('tbody tr').count(), 3);
    await page.locator('tbody tr a', { hasText: 'order.import_failed' }).first().click();
    await page.getByRole('heading', { name: 'Details' }).waitFor();
    await page.locator('pre.json', { hasText: '"sku": "ABC-1"' }).waitFor();
    await page.getByRole('link', { name: 'order.import_failed on shopify-main' }).waitFor();
    await shot(page, 'alert');
    await page.getByRole('link', { name: 'Find related tasks' }).click();
    await page.getByRole('heading', { name: 'Tasks' }).waitFor();
    assert.match(page.url(), /#\/tasks\?connection=shopify-main/);
  });

  it("follows an email's issue link (sign-in first) and its unsubscribe link", async () => {
    const mails = await peers.mail();
    const mine = mails.find((m) => m.to === 'oncall@acme.example');
    const issueLink = mine.text.match(/(http:\/\/\S+\/#\/issues\/iss_\w+)/)[1];
    assert.ok(issueLink.endsWith(st.issue), issueLink);
    const fresh = await newPage(browser); // a new browser context: not signed in
    await fresh.goto(issueLink);
    await fresh.getByText(`Sign in to open issue ${st.issue}`).waitFor();
    await fresh.getByLabel('API key or admin token').fill(st.key);
    await fresh.getByRole('button', { name: 'Sign in' }).click();
    await fresh.getByRole('heading', { name: 'order.import_failed on shopify-main' }).waitFor();
    assert.ok(fresh.url().endsWith(`#/issues/${st.issue}`));

    const unsub = mine.list_unsubscribe.slice(1, -1);
    assert.equal(mine.list_unsubscribe_post, 'List-Unsubscribe=One-Click');
    assert.ok(mine.text.includes(`Stop these mails: ${unsub}`));
    await fresh.goto(unsub);
    await fresh.getByRole('heading', { name: 'Stop these mails?' }).waitFor();
    await fresh.getByText('oncall@acme.example').waitFor();
    await shot(fresh, 'unsubscribe');
    let ch = (await srv.api('GET', '/v1/notification-channels', undefined, st.key)).data[0];
    assert.deepEqual(ch.addresses, ['ops@acme.example', 'oncall@acme.example']); // a GET changes nothing
    await fresh.getByRole('button', { name: 'Unsubscribe' }).click();
    await fresh.getByRole('heading', { name: 'Unsubscribed' }).waitFor();
    ch = (await srv.api('GET', '/v1/notification-channels', undefined, st.key)).data[0];
    assert.deepEqual(ch.addresses, ['ops@acme.example']);
    assert.equal(ch.unsubscribed[0].address, 'oncall@acme.example');
    assert.deepEqual(fresh.problems, []);
    await fresh.context().close();
    // the channel's page shows who unsubscribed
    await page.goto(`${srv.url}/#/notification-channels/${ch.id}`);
    await page.getByRole('heading', { name: 'Unsubscribed' }).waitFor();
    await page.getByRole('cell', { name: 'oncall@acme.example' }).waitFor();
    await shot(page, 'channel');
  });

  it('creates a webhook integration from the form, publishes, sees success, rejection and redelivery', async () => {
    await page.goto(`${srv.url}/#/integrations`);
    await page.getByText('No integrations yet').waitFor();
    await page.getByRole('link', { name: 'New Integration' }).first().click();
    await page.getByRole('heading', { name: 'New Integration' }).waitFor();
    // S3 is offered first, as the recommended target
    const targets = page.getByRole('radiogroup', { name: 'Integration target' }).getByRole('radio');
    assert.match(await targets.first().getAttribute('value'), /s3/);
    assert.equal(await targets.first().isChecked(), true);
    await page.getByLabel('Integration ID').fill('erp-orders');
    await page.locator('input[name=ev][value=order]').check();
    await page.getByRole('radio', { name: /Webhook/ }).check();
    await page.getByLabel('Callback URL').fill('not a url');
    await page.getByRole('button', { name: 'Create' }).click();
    await page.locator('#i-url[aria-invalid="true"]').waitFor(); // the API's 422 next to its field
    await page.locator('#err-target\\.url').waitFor();
    await page.getByLabel('Callback URL').fill(peers.receiverUrl('/erp'));
    await page.getByLabel('API Key', { exact: true }).fill('erp-secret-1234');
    await page.getByRole('button', { name: 'Create' }).click();
    await page.getByRole('heading', { name: 'Integration erp-orders created' }).waitFor();
    const secret = (await page.locator('[data-secret]').textContent()).trim();
    assert.match(secret, /^whsec_/);
    await shot(page, 'integration-created');
    await page.getByRole('button', { name: 'Send test' }).click();
    await toast(page, 'Test sent to erp-orders: HTTP 200');
    await until(async () => (await peers.count('/erp')) >= 1, 'the test request');
    const got = await srv.api('GET', '/v1/integrations/erp-orders', undefined, st.key);
    assert.equal(got.target.api_key, '****1234'); // the secret is masked, never shown back

    // publish; the events view shows success
    const ids = (await srv.api('POST', '/v1/events', { events: [1, 2, 3].map((i) => ({ type: 'order.created', entity_id: `ORD-${100 + i}`, payload: { i } })) }, st.key)).ids;
    await page.getByRole('link', { name: 'View Events' }).click();
    await until(async () => {
      await page.getByRole('button', { name: 'Filter' }).click();
      return (await page.locator('tbody .badge', { hasText: 'Success' }).count()) === 3;
    }, 'three successful deliveries');
    await shot(page, 'events');
    // an event's attempts
    await page.getByRole('link', { name: ids[0] }).click();
    await page.getByRole('heading', { name: 'Attempts' }).waitFor();
    await page.locator('tbody .badge', { hasText: 'HTTP 200' }).waitFor();
    await page.locator('pre.json', { hasText: '"i": 1' }).waitFor();
    await shot(page, 'attempts');

    // the receiver rejects: the rejected event shows with the consumer's answer; redeliver it
    await peers.answer('/erp', 422);
    const [bad] = (await srv.api('POST', '/v1/events', { type: 'order.updated', entity_id: 'ORD-200', payload: {} }, st.key)).ids;
    await page.goto(`${srv.url}/#/integrations/erp-orders/rejected`);
    await until(async () => {
      await page.getByRole('button', { name: 'Filter' }).click();
      return page.getByRole('link', { name: bad }).isVisible();
    }, 'the rejected event');
    await page.getByRole('cell', { name: /HTTP 422/ }).waitFor();
    await shot(page, 'rejected');
    await peers.answer('/erp', 200);
    const before = await peers.count('/erp');
    await page.getByRole('button', { name: 'Redeliver', exact: true }).click();
    await toast(page, 'Queued 1 event for redelivery to erp-orders');
    await until(async () => (await peers.count('/erp')) > before, 'the redelivery');
  });

  it('pauses and resumes from the toggle and sees the log rows', async () => {
    await page.goto(`${srv.url}/#/integrations`);
    const toggle = page.getByRole('switch', { name: 'erp-orders active' });
    assert.equal(await toggle.getAttribute('aria-checked'), 'true');
    await toggle.click();
    await toast(page, 'Paused erp-orders');
    await page.locator('[role=switch][aria-checked="false"]').waitFor();
    await page.getByRole('link', { name: 'Paused', exact: true }).click();
    await page.getByRole('link', { name: 'erp-orders' }).waitFor();
    await shot(page, 'integrations-paused');
    await page.getByRole('switch', { name: 'erp-orders active' }).click();
    await toast(page, 'Resumed erp-orders');
    await page.getByText('No paused integrations').waitFor(); // it left the tab without a reload
    await page.getByRole('link', { name: 'All', exact: true }).click();
    await page.locator('summary', { hasText: 'Actions' }).first().click();
    await page.getByRole('link', { name: 'View Logs' }).click();
    await page.getByRole('heading', { name: 'Logs' }).waitFor();
    await page.getByRole('cell', { name: 'paused by key ops-console: paused from the console' }).waitFor();
    await page.getByRole('cell', { name: 'resumed by key ops-console' }).waitFor();
    assert.equal(await page.locator('tbody tr').count(), 3); // created, paused, resumed
    await shot(page, 'logs');
  });

  it('filters View Events by Domain Entity ID (a deep link)', async () => {
    await page.goto(`${srv.url}/#/integrations/erp-orders/events`);
    // keyboard: the skip link is the first stop and leads to the content, not to a route
    await page.getByRole('heading', { name: 'Events' }).waitFor();
    await page.locator('a.skip').focus();
    await page.keyboard.press('Enter');
    assert.ok(page.url().endsWith('#/integrations/erp-orders/events'), page.url());
    assert.equal(await page.evaluate(() => document.activeElement.tagName), 'MAIN');
    await page.getByLabel('Domain Entity ID').fill('ORD-102');
    await page.getByRole('button', { name: 'Filter' }).click();
    await until(() => page.url().includes('entity_id=ORD-102'), 'the filter in the URL');
    await page.locator('tbody tr').first().waitFor();
    const entities = await page.locator('tbody tr td:nth-child(2)').allTextContents();
    assert.deepEqual(entities.map((e) => e.trim()), ['ORD-102']);
    await page.reload(); // the deep link keeps the filter
    await page.locator('tbody tr').first().waitFor();
    assert.equal(await page.getByLabel('Domain Entity ID').inputValue(), 'ORD-102');
    assert.equal(await page.locator('tbody tr').count(), 1);
  });

  it('pages through a long list with the API cursor', async () => {
    await srv.api('POST', '/v1/alerts', { alerts: Array.from({ length: 60 }, (_, i) => ({
      event: 'inventory.sync_failed', connection: 'bulk-sync', entity_id: `SKU-${i}`, message: `stock level ${i} rejected` })) }, st.key);
    await page.goto(`${srv.url}/#/alerts?connection=bulk-sync`);
    await page.getByText('Page 1').waitFor();
    assert.equal(await page.locator('tbody tr').count(), 50);
    assert.equal(await page.getByRole('button', { name: '← Newer' }).isDisabled(), true);
    await page.getByRole('button', { name: 'Older →' }).click();
    await page.getByText('Page 2').waitFor();
    assert.equal(await page.locator('tbody tr').count(), 10);
    assert.equal(await page.getByRole('button', { name: 'Older →' }).isDisabled(), true);
    await page.getByRole('cell', { name: 'stock level 0 rejected' }).waitFor(); // the oldest
    await page.getByRole('button', { name: '← Newer' }).click();
    await page.getByText('Page 1').waitFor();
    await page.getByRole('cell', { name: 'stock level 59 rejected' }).waitFor();
  });

  it('shows S3 wrong-secret errors by the field, then creates the S3 integration', async () => {
    await page.goto(`${srv.url}/#/integrations/new`);
    await page.getByLabel('Integration ID').fill('warehouse');
    await page.locator('input[name=ev][value=shipment]').check();
    await page.getByLabel('AWS Access Key').fill(S3.akid);
    await page.getByLabel('AWS Secret Key').fill('not-the-secret');
    await page.getByLabel('AWS Region').fill(S3.region);
    await page.getByLabel('S3 Bucket Name').fill(S3.bucket);
    await page.getByLabel('Key Prefix').fill('sluice/');
    await page.getByText('S3-compatible storage and compression').click();
    await page.getByLabel('Endpoint URL').fill(s3.endpoint);
    await page.getByRole('button', { name: 'Create' }).click();
    const err = page.locator('#err-target\\.secret_access_key');
    await err.waitFor();
    assert.match(await err.textContent(), /SignatureDoesNotMatch/);
    assert.equal(await page.getByLabel('AWS Secret Key').getAttribute('aria-invalid'), 'true');
    await shot(page, 'integration-s3-error');
    await page.getByLabel('AWS Secret Key').fill(S3.secret);
    await page.getByRole('button', { name: 'Create' }).click();
    await page.getByRole('heading', { name: 'Integration warehouse created' }).waitFor();
    assert.equal(await page.locator('[data-secret]').count(), 0); // S3 has no signing secret
  });

  it('edits an integration: the masked secret stays unless retyped', async () => {
    await page.goto(`${srv.url}/#/integrations/erp-orders/edit`);
    await page.getByRole('heading', { name: 'Edit Integration Details' }).waitFor();
    await page.getByText('****1234 is kept unless you type a new one.').waitFor();
    await page.locator('input[name=ev][value="return.created"]').check();
    await page.getByRole('button', { name: 'Save' }).click();
    await toast(page, 'Saved erp-orders');
    const i = await srv.api('GET', '/v1/integrations/erp-orders', undefined, st.key);
    assert.deepEqual(i.events.sort(), ['order', 'return.created']);
    assert.equal(i.target.api_key, '****1234');
    await page.getByRole('link', { name: 'erp-orders' }).waitFor();
    await shot(page, 'integrations');
  });

  it('a view-only key sees the pages but not the actions, with the reason', async () => {
    const p = await newPage(browser);
    await signIn(p, srv.url, st.viewKey, '#/integrations');
    await p.getByText('lacks tools:manage').first().waitFor();
    assert.equal(await p.getByRole('button', { name: 'New Integration' }).isDisabled(), true);
    assert.equal(await p.getByRole('switch', { name: 'erp-orders active' }).isDisabled(), true);
    await p.goto(`${srv.url}/#/issues/${st.issue}`);
    await p.getByText('lacks the alerts:manage permission').waitFor();
    assert.equal(await p.getByRole('button', { name: 'Reopen' }).count(), 0);
    assert.deepEqual(p.problems, []);
    await p.context().close();
    // a key that may only publish: nothing to read, and the console says why
    const pub = (await srv.admin('POST', '/v1/admin/tenants/acme/keys', { name: 'publisher', permissions: ['events:publish'] })).key;
    const q = await newPage(browser);
    await signIn(q, srv.url, pub);
    await q.getByText('may not read integrations or alerts').waitFor();
    assert.equal(await q.locator('nav.side a').count(), 1); // Overview only
    assert.deepEqual(q.problems, []);
    await q.context().close();
  });

  it('screenshots every page at 1366x850 and 390x844, without errors', async () => {
    const ch = (await srv.api('GET', '/v1/notification-channels', undefined, st.key)).data[0];
    const pol = (await srv.api('GET', '/v1/alert-policies', undefined, st.key)).data[0];
    const alert = (await srv.api('GET', '/v1/alerts?limit=1', undefined, st.key)).data[0];
    const task = await srv.api('POST', '/v1/tasks', { kind: 'order_import', connection: 'shopify-main', status: 'failed' }, st.key);
    const ev = (await srv.api('GET', '/v1/integrations/erp-orders/events?limit=1', undefined, st.key)).data[0];
    const pages = {
      overview: '/', integrations: '/integrations', 'integration-new': '/integrations/new',
      events: '/integrations/erp-orders/events', attempts: `/integrations/erp-orders/events/${ev.event_id}`,
      rejected: '/integrations/erp-orders/rejected', logs: '/integrations/erp-orders/logs', edit: '/integrations/erp-orders/edit',
      alerts: '/alerts', alert: `/alerts/${alert.id}`, tasks: '/tasks', task: `/tasks/${task.id}`,
      issues: '/issues?status=closed', issue: `/issues/${st.issue}`,
      channels: '/notification-channels', channel: `/notification-channels/${ch.id}`, 'channel-new': '/notification-channels/new',
      policies: '/alert-policies', policy: `/alert-policies/${pol.id}`, 'policy-new': '/alert-policies/new',
    };
    for (const [w, h, tag] of [[1366, 850, 'wide'], [390, 844, 'phone']]) {
      const p = await newPage(browser, w, h);
      await signIn(p, srv.url, st.key);
      for (const [name, hash] of Object.entries(pages)) {
        await p.goto(`${srv.url}/#${hash}`);
        await p.locator('main h1').first().waitFor();
        await p.waitForFunction(() => !document.querySelector('.spinner'));
        // every page has one h1 and every form control a label
        assert.equal(await p.locator('main h1').count(), 1, name);
        const unlabelled = await p.evaluate(() => [...document.querySelectorAll('main input:not([type=hidden]), main select, main textarea')]
          .filter((el) => !(el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby'))).map((el) => el.outerHTML));
        assert.deepEqual(unlabelled, [], name);
        await shot(p, `${tag}-${name}`);
      }
      const sign = await newPage(browser, w, h);
      await sign.goto(`${srv.url}/`);
      await sign.getByLabel('API key or admin token').waitFor();
      await shot(sign, `${tag}-signin`);
      const adm = await newPage(browser, w, h);
      await signIn(adm, srv.url, srv.token);
      await adm.getByRole('button', { name: 'API keys' }).first().click();
      await adm.getByRole('heading', { name: 'API keys of acme' }).waitFor();
      await shot(adm, `${tag}-admin`);
      assert.deepEqual([...p.problems, ...sign.problems, ...adm.problems], []);
      await Promise.all([p, sign, adm].map((x) => x.context().close()));
    }
    assert.deepEqual(page.problems, []);
  });
});
