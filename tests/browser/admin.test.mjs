// The operator's walkthrough in headless Chromium, from the setup token to
// the integration listed on the Admin page, once with JavaScript and once
// without. The test plays the Bitbucket admin through the emulator's
// application-link API, with the callback URL read from the page. A
// screenshot of every step goes to tests/artifacts/screenshots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { startPortico, ARTIFACTS } from '../system/harness.mjs';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const SHOTS = join(ARTIFACTS, 'screenshots');
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

let sys;
let browser;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  sys = await startPortico({ name: 'browser-admin', autoApprove: 'jdoe' });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
});
after(async () => {
  if (browser) await browser.close();
  if (sys) await sys.stop();
});

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function walkthrough({ js, prefix, displayName, viewport }) {
  const context = await browser.newContext({ javaScriptEnabled: js, viewport: viewport || { width: 1100, height: 900 } });
  const page = await context.newPage();
  const failures = [];
  // Console errors (CSP violations show up here) and failed loads, except the
  // favicon Chromium asks for on its own.
  page.on('console', (m) => {
    if (m.type() === 'error' && !/\/favicon\.ico$/.test(m.location().url || '')) failures.push(`${m.text()} ${m.location().url || ''}`);
  });
  try {
    // 1. Setup Mode: /admin asks for the setup token.
    await page.goto(`${sys.webUrl}/admin`);
    await assertVisible(page.getByLabel('Setup token'));
    await shot(page, `${prefix}-01-setup-token`);
    await page.getByLabel('Setup token').fill(sys.setupToken);
    await page.getByRole('button', { name: 'Open the Admin section' }).click();
    await page.waitForURL(`${sys.webUrl}/admin`);
    await assertVisible(page.getByText('Setup Mode is on.'));
    await shot(page, `${prefix}-02-admin-home`);

    // 2. Add Integration.
    await page.getByRole('link', { name: 'Add Integration' }).click();
    await page.waitForURL(/\/admin\/integrations\/new$/);
    await page.getByLabel('Platform').selectOption({ label: 'Bitbucket Data Center / Server' });
    assert.equal(await page.locator('#callback-block').isVisible(), false, 'no callback block before the base URL');
    await shot(page, `${prefix}-03-add-integration`);

    // 3. Platform, Base URL, OAuth version; then the callback URL and the link.
    await page.getByLabel('Base URL').fill(sys.emulatorUrl);
    await page.getByLabel('OAuth version').selectOption({ label: 'OAuth 2' });
    if (!js) {
      await assertVisible(page.getByRole('button', { name: 'Continue' }));
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.waitForURL(/\/admin\/integrations\/new$/);
    } else {
      assert.equal(await page.getByRole('button', { name: 'Continue' }).isVisible(), false, 'no Continue step with JS');
    }
    const callbackField = page.getByLabel('Callback URL / Redirect URL');
    await assertVisible(callbackField);
    assert.equal(await callbackField.getAttribute('readonly'), '');
    const callback = await callbackField.inputValue();
    const id = await page.locator('input[name=id]').inputValue();
    assert.equal(callback, `${sys.webUrl}/oauth/callback/${id}`);
    const link = page.locator('#applinks-link');
    assert.equal(await link.getAttribute('href'), `${sys.emulatorUrl}/plugins/servlet/applinks/listApplicationLinks`);
    assert.equal(await link.getAttribute('target'), '_blank');
    assert.equal(await link.getAttribute('rel'), 'noopener noreferrer');
    assert.equal(await page.locator('[data-copy="callback-url"]').isVisible(), js, 'copy button only with JS');
    await assertVisible(page.getByText('External application'));
    await shot(page, `${prefix}-04-callback-url`);

    // 4. The Bitbucket admin creates the application link with that callback URL.
    const link2 = await sys.emulator.admin('applinks', { name: `Portico ${prefix}`, redirect_url: callback, permissions: ['REPO_READ'] });
    assert.ok([200, 201].includes(link2.status), link2.text);
    await page.getByLabel('Client ID').fill(link2.json.client_id);
    await page.getByLabel('Client Secret').fill(link2.json.client_secret);
    await page.locator('details.more summary').click();
    await page.getByLabel('Display name').fill(displayName);
    await shot(page, `${prefix}-05-credentials`);
    await page.getByRole('button', { name: 'Create Integration' }).click();

    // 5. Back on the Admin page, listed, with a confirmation.
    await page.waitForURL(new RegExp(`/admin\\?created=${id}$`));
    await assertVisible(page.getByText(`${displayName} created`));
    const row = page.locator(`tr[data-integration-id="${id}"]`);
    await assertVisible(row);
    assert.match(await row.innerText(), /OAuth 2/);
    assert.match(await row.innerText(), /enabled/);
    assert.match(await row.innerText(), /8\.9\.0/);
    await shot(page, `${prefix}-06-integration-listed`);

    // 6. The integration page: secret masked, the two-factor hint.
    await row.getByRole('link', { name: displayName }).click();
    await page.waitForURL(new RegExp(`/admin/integrations/${id}$`));
    await assertVisible(page.getByText('••••••••'));
    assert.ok(!(await page.content()).includes(link2.json.client_secret));
    await assertVisible(page.getByText('U2F & TOTP'));
    await page.getByRole('button', { name: 'Test connection' }).click();
    await page.waitForURL(/tested=ok$/);
    await assertVisible(page.getByText('Connection works'));
    await shot(page, `${prefix}-07-integration-page`);
    assert.deepEqual(failures, [], 'no console errors (CSP violations would show here)');
    return { id, context, page };
  } catch (e) {
    await shot(page, `${prefix}-failed`).catch(() => {});
    await context.close();
    throw e;
  }
}

async function assertVisible(locator) {
  await locator.first().waitFor({ state: 'visible', timeout: 5000 });
}

test('walkthrough with JavaScript: setup token to integration listed', async () => {
  const { context } = await walkthrough({ js: true, prefix: 'admin-js', displayName: 'Acme Bitbucket' });
  await context.close();
});

test('walkthrough without JavaScript: a two-step form', async () => {
  const { context } = await walkthrough({ js: false, prefix: 'admin-nojs', displayName: 'Acme Bitbucket (no JS)' });
  await context.close();
});

test('the form on a narrow screen, and its validation messages', async () => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const page = await context.newPage();
  await page.goto(`${sys.webUrl}/admin`);
  await page.getByLabel('Setup token').fill(sys.setupToken);
  await page.getByRole('button', { name: 'Open the Admin section' }).click();
  await page.waitForURL(`${sys.webUrl}/admin`);
  await shot(page, 'admin-mobile-01-home');
  await page.getByRole('link', { name: 'Add Integration' }).click();
  await page.getByLabel('Base URL').fill('http://127.0.0.1:1/');
  await page.getByLabel('Client ID').fill('client');
  await page.getByLabel('Client Secret').fill('secret');
  await page.getByRole('button', { name: 'Create Integration' }).click();
  await assertVisible(page.locator('#base-url-error'));
  assert.match(await page.locator('#base-url-error').innerText(), /could not connect/);
  assert.equal(await page.getByLabel('Client Secret').inputValue(), '', 'the secret is not sent back');
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `no horizontal scrolling on a phone (${width}px)`);
  await shot(page, 'admin-mobile-02-error');
  await context.close();
});

test('as the first admin: OAuth 1 with its warning and keys, delete, users, audit, Finish setup', async () => {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  page.on('dialog', (d) => d.accept());
  try {
    // In a browser that proved the setup token, jdoe logs in through the
    // first integration and becomes admin (Setup Mode is on).
    await page.goto(`${sys.webUrl}/admin`);
    await page.getByLabel('Setup token').fill(sys.setupToken);
    await page.getByRole('button', { name: 'Open the Admin section' }).click();
    await page.waitForURL(`${sys.webUrl}/admin`);
    await page.goto(`${sys.webUrl}/login`);
    const start = page.locator('a[href*="/login/start/"]').first();
    const href = await start.getAttribute('href');
    await page.goto(`${sys.webUrl}${href.replace(/\?.*$/, '')}?return_to=%2Fadmin`);
    await page.waitForURL(`${sys.webUrl}/admin`);
    await assertVisible(page.getByRole('button', { name: 'Finish setup' }));
    await shot(page, 'admin-extra-01-first-admin');

    // OAuth 1 on Bitbucket 8.9: a warning and a box to tick.
    await page.getByRole('link', { name: 'Add Integration' }).click();
    await page.getByLabel('Base URL').fill(sys.emulatorUrl);
    await page.getByLabel('OAuth version').selectOption('1');
    assert.equal(await page.getByLabel('Client ID').isVisible(), false, 'no client ID for OAuth 1');
    await assertVisible(page.getByText('Press Create Integration first'));
    await page.locator('details.more summary').click();
    await page.getByLabel('Display name').fill('Legacy OAuth 1');
    await page.getByRole('button', { name: 'Create Integration' }).click();
    await assertVisible(page.locator('#oauth-warning'));
    await shot(page, 'admin-extra-02-oauth1-warning');
    await page.getByLabel('Use OAuth 1 anyway').check();
    await page.getByRole('button', { name: 'Create Integration' }).click();
    await page.waitForURL(/\/admin\?created=\d+$/);
    await page.getByRole('link', { name: 'open it' }).click();
    await assertVisible(page.getByLabel('Consumer Key'));
    assert.match(await page.getByLabel('Public Key').inputValue(), /BEGIN PUBLIC KEY/);
    await assertVisible(page.locator('[data-copy="public-key"]'));
    await shot(page, 'admin-extra-03-oauth1-keys');

    // Delete: the confirmation page says what happens.
    await page.getByRole('link', { name: 'Delete…' }).click();
    await assertVisible(page.getByText('lose access'));
    await shot(page, 'admin-extra-04-delete-confirm');
    await page.getByRole('button', { name: 'Delete integration' }).click();
    await page.waitForURL(/\/admin\?deleted=1/);
    await assertVisible(page.getByText('Integration deleted'));

    // Users and audit log.
    await page.getByRole('link', { name: 'Users', exact: true }).click();
    await assertVisible(page.getByText('John Doe'));
    await shot(page, 'admin-extra-05-users');
    await page.getByRole('link', { name: 'Audit log' }).click();
    await assertVisible(page.locator('table.audit'));
    await shot(page, 'admin-extra-06-audit');

    // Finish setup: the banner goes away.
    await page.getByRole('link', { name: 'Integrations' }).click();
    await page.getByRole('button', { name: 'Finish setup' }).click();
    await page.waitForURL(/\/admin\?finished=1$/);
    await assertVisible(page.getByText('Setup finished'));
    assert.equal(await page.getByText('Setup Mode is on.').count(), 0);
    await shot(page, 'admin-extra-07-setup-finished');
  } catch (e) {
    await shot(page, 'admin-extra-failed').catch(() => {});
    throw e;
  } finally {
    await context.close();
  }
});
