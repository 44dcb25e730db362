// OAuth 1 (Bitbucket older than 7.21) end to end in headless Chromium, the
// way an operator and a user go through it: the setup token, Add
// Integration with OAuth 1, the integration page with the Consumer Key and
// Public Key, Test connection telling that Bitbucket does not know them
// yet, the Bitbucket admin's application-link pages (Atlassian product,
// Application URL, Application Name, Incoming Authentication) with those
// values pasted in, Test connection again, logging out of Setup Mode, and
// the user's login through Bitbucket's login and consent pages to the
// account page with the repositories. A screenshot of each step goes to
// tests/artifacts/screenshots/oauth1-*.png.
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

let sys, browser;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  sys = await startPortico({ name: 'browser-oauth1', emulatorVersion: '7.6.0' });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
});

after(async () => {
  if (browser) await browser.close();
  if (sys) await sys.stop();
});

const shot = (page, name) => page.screenshot({ path: join(SHOTS, `oauth1-${name}.png`), fullPage: true });

async function visible(locator) {
  await locator.first().waitFor({ state: 'visible', timeout: 5000 });
}

async function bitbucketLogin(page, user) {
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password').fill('password');
  await page.getByRole('button', { name: 'Log in' }).click();
}

test('OAuth 1: set up the integration and the application link, then log in and see the repositories', async () => {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => {
    const url = m.location().url || '';
    // Error pages report their own status; the emulator is not Portico.
    if (m.type() !== 'error' || /favicon\.ico/.test(url) || url.startsWith(sys.emulatorUrl) ||
        url.startsWith(`${sys.webUrl}/login/start/`)) return;
    problems.push(`console: ${m.text()} ${url}`);
  });
  page.on('request', (req) => {
    const u = new URL(req.url());
    if (u.protocol.startsWith('http') && u.hostname !== '127.0.0.1') problems.push(`off-site request: ${req.url()}`);
  });
  try {
    // 1. Setup Mode: the setup token opens the Admin section.
    await page.goto(`${sys.webUrl}/admin`);
    await page.getByLabel('Setup token').fill(sys.setupToken);
    await shot(page, '01-setup-token');
    await page.getByRole('button', { name: 'Open the Admin section' }).click();
    await page.waitForURL(`${sys.webUrl}/admin`);
    await visible(page.getByText('Setup Mode is on.'));

    // 2. Add Integration with OAuth 1 (Bitbucket 7.6 has no OAuth 2).
    await page.getByRole('link', { name: 'Add Integration' }).click();
    await page.waitForURL(/\/admin\/integrations\/new$/);
    await page.getByLabel('Platform').selectOption({ label: 'Bitbucket Data Center / Server' });
    await page.getByLabel('Base URL').fill(sys.emulatorUrl);
    await page.getByLabel('OAuth version').selectOption({ label: 'OAuth 1' });
    assert.equal(await page.getByLabel('Client ID').isVisible(), false, 'no Client ID for OAuth 1');
    await page.locator('details.more summary').click();
    await page.getByLabel('Display name').fill('Old Bitbucket');
    await shot(page, '02-add-integration');
    await page.getByRole('button', { name: 'Create Integration' }).click();
    await page.waitForURL(/\/admin\?created=\d+$/);
    const id = page.url().match(/created=(\d+)/)[1];
    const row = page.locator(`tr[data-integration-id="${id}"]`);
    assert.match(await row.innerText(), /OAuth 1/);
    assert.match(await row.innerText(), /7\.6\.0/);
    await shot(page, '03-created');

    // 3. The integration page: what to paste into Bitbucket.
    await page.getByRole('link', { name: 'open it' }).click();
    await page.waitForURL(new RegExp(`/admin/integrations/${id}$`));
    const consumerKey = await page.getByLabel('Consumer Key').inputValue();
    const publicKey = await page.getByLabel('Public Key').inputValue();
    assert.match(consumerKey, /\S{8,}/);
    assert.match(publicKey, /^-----BEGIN PUBLIC KEY-----[\s\S]+-----END PUBLIC KEY-----\s*$/);
    assert.doesNotMatch(await page.content(), /PRIVATE KEY/);
    await visible(page.getByText('Incoming Authentication'));
    await shot(page, '04-integration-keys');

    // Bitbucket does not know the consumer yet: Test connection says what to do.
    await page.getByRole('button', { name: 'Test connection' }).click();
    await page.waitForURL(/tested=oauth1_link$/);
    await visible(page.getByText('does not know this consumer key / public key yet'));
    await shot(page, '05-test-not-linked');
    const applinks = await page.locator('#applinks-link').getAttribute('href');
    // A user trying to log in now learns whom to ask.
    await page.goto(`${sys.webUrl}/login`);
    await page.getByRole('link', { name: 'Log in with Old Bitbucket' }).click();
    await visible(page.getByRole('heading', { name: "Bitbucket does not know Portico's consumer key yet" }));
    await visible(page.getByText('Incoming Authentication with the Consumer Key and Public Key'));
    await shot(page, '05b-login-not-linked');

    // 4. The Bitbucket admin: Administration > Application links.
    assert.equal(applinks, `${sys.emulatorUrl}/plugins/servlet/applinks/listApplicationLinks`);
    await page.goto(applinks);
    await bitbucketLogin(page, 'admin');
    await page.waitForURL(/listApplicationLinks/);
    await shot(page, '06-bitbucket-applinks');
    await page.getByRole('button', { name: 'Create link' }).click();
    await page.getByLabel('Atlassian product').check();
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByLabel('Application URL').fill(sys.webUrl);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByLabel('Application Name').fill('Portico');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByLabel('Consumer Key').fill(consumerKey);
    await page.getByLabel('Consumer Name').fill('Portico');
    await page.getByLabel('Public Key').fill(publicKey);
    assert.equal(await page.getByLabel('Consumer Callback URL (optional)').inputValue(), '', 'left empty');
    await shot(page, '07-bitbucket-incoming-authentication');
    await page.getByRole('button', { name: 'Save' }).click();
    await visible(page.locator('#created'));
    assert.equal(await page.getByLabel('Consumer Key').inputValue(), consumerKey);
    await shot(page, '08-bitbucket-link-created');
    // The Bitbucket admin logs out there.
    await page.goto(`${sys.emulatorUrl}/plugins/servlet/applinks/listApplicationLinks`);
    await page.getByRole('link', { name: 'Log out' }).click();

    // 5. Back in Portico: Test connection now works.
    await page.goto(`${sys.webUrl}/admin/integrations/${id}`);
    await page.getByRole('button', { name: 'Test connection' }).click();
    await page.waitForURL(/tested=ok$/);
    await visible(page.getByText('Connection works'));
    await shot(page, '09-test-ok');

    // 6. Log out of Setup Mode; log in as a user with the integration.
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForURL(`${sys.webUrl}/`);
    await shot(page, '10-home');
    await page.getByRole('link', { name: 'Log in with Old Bitbucket' }).click();
    await page.waitForURL((u) => u.toString().startsWith(`${sys.emulatorUrl}/`));
    await shot(page, '11-bitbucket-login');
    await bitbucketLogin(page, 'jdoe');
    await page.getByRole('button', { name: 'Allow' }).waitFor();
    assert.match(await page.textContent('body'), /Portico wants access to your account/);
    assert.match(page.url(), /\/plugins\/servlet\/oauth\/authorize\?oauth_token=/);
    await shot(page, '12-bitbucket-consent');
    const callback = page.waitForResponse((r) => r.url().startsWith(`${sys.webUrl}/oauth/callback/${id}?`));
    await page.getByRole('button', { name: 'Allow' }).click();
    const cb = await callback;
    assert.equal(cb.status(), 303);
    assert.equal(cb.headers()['referrer-policy'], 'no-referrer');
    assert.match(cb.url(), /[?&]oauth_token=[^&]+&oauth_verifier=/);

    // 7. The account page, with the repositories read over signed calls.
    await page.waitForURL(`${sys.webUrl}/account`);
    await page.locator('table.repositories').waitFor();
    const body = await page.textContent('body');
    assert.match(body, /John Doe/);
    assert.match(body, /Old Bitbucket/);
    assert.ok((await page.locator('table.repositories tr').count()) > 1);
    await shot(page, '13-account');
    assert.deepEqual(problems, []);
  } catch (e) {
    await shot(page, 'failed').catch(() => {});
    throw e;
  } finally {
    await context.close();
  }
});

test('OAuth 1 errors in the browser: Deny, then a replayed callback', async () => {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  try {
    await page.goto(`${sys.webUrl}/login`);
    await page.getByRole('link', { name: 'Log in with Old Bitbucket' }).click();
    await page.waitForURL((u) => u.toString().startsWith(`${sys.emulatorUrl}/`));
    await bitbucketLogin(page, 'user21');
    await page.getByRole('button', { name: 'Deny' }).waitFor();
    const denied = page.waitForResponse((r) => r.url().includes('/oauth/callback/'));
    await page.getByRole('button', { name: 'Deny' }).click();
    const r = await denied;
    assert.equal(r.status(), 403);
    assert.match(r.url(), /oauth_verifier=denied/);
    await visible(page.getByRole('heading', { name: 'You declined access in Bitbucket' }));
    await shot(page, '14-denied');
    // The same callback again: already used.
    await page.goto(r.url());
    await visible(page.getByRole('heading', { name: /expired or was already used/ }));
    await shot(page, '15-already-used');
  } finally {
    await context.close();
  }
});
