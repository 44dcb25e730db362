// A user's login in headless Chromium: Portico's login page, Bitbucket's
// (the emulator's) login and consent pages, back to Portico's account page
// with the repositories listed; then Deny, and logout. A screenshot of each
// step goes to tests/artifacts/screenshots/login-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { startPortico, ARTIFACTS } from '../system/harness.mjs';
import { setupAdmin, createIntegration } from '../system/login_lib.mjs';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const SHOTS = join(ARTIFACTS, 'screenshots');
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

let sys, browser, integration;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  sys = await startPortico({ name: 'browser-login' });
  const admin = await setupAdmin(sys);
  integration = await createIntegration(admin, sys.emulator, { name: 'Example Bitbucket' });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
});

after(async () => {
  if (browser) await browser.close();
  if (sys) await sys.stop();
});

const shot = (page, name) => page.screenshot({ path: join(SHOTS, `login-${name}.png`), fullPage: true });

// Console errors (a CSP violation shows up there) and requests that left
// loopback, which would be third-party resources.
function watch(page) {
  const problems = [];
  page.on('console', (m) => {
    const url = m.location().url || '';
    // An error page's own status is reported too; that is not a problem.
    if (m.type() !== 'error' || /favicon\.ico/.test(url) || url.startsWith(`${sys.webUrl}/oauth/callback/`)) return;
    problems.push(`console: ${m.text()} ${url}`);
  });
  page.on('request', (req) => {
    const u = new URL(req.url());
    if (u.protocol.startsWith('http') && u.hostname !== '127.0.0.1') problems.push(`off-site request: ${req.url()}`);
  });
  return problems;
}

async function bitbucketLogin(page, user) {
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password').fill('password');
  await page.getByRole('button', { name: 'Log in' }).click();
}

test('log in through Bitbucket\'s pages and land on the account page with the repositories', async () => {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  const problems = watch(page);
  const referers = [];
  page.on('request', (req) => {
    if (req.url().startsWith(sys.webUrl) && req.headers().referer) referers.push(req.headers().referer);
  });
  try {
    await page.goto(`${sys.webUrl}/`);
    await shot(page, '01-home');
    await page.getByRole('link', { name: 'Log in with Example Bitbucket' }).first().click();

    // Bitbucket's login page, then its consent page.
    await page.waitForURL((u) => u.toString().startsWith(sys.emulatorUrl));
    await shot(page, '02-bitbucket-login');
    await bitbucketLogin(page, 'jdoe');
    await page.getByRole('button', { name: 'Allow' }).waitFor();
    assert.match(await page.textContent('body'), /REPO_READ/);
    await shot(page, '03-bitbucket-consent');
    const callbackResponse = page.waitForResponse((r) => r.url().startsWith(`${sys.webUrl}/oauth/callback/`));
    await page.getByRole('button', { name: 'Allow' }).click();
    const cb = await callbackResponse;
    assert.equal(cb.status(), 303);
    assert.equal(cb.headers()['referrer-policy'], 'no-referrer');

    await page.waitForURL(`${sys.webUrl}/account`);
    await page.locator('table.repositories').waitFor();
    await shot(page, '04-account');
    const body = await page.textContent('body');
    assert.match(body, /Your account/);
    assert.match(body, /John Doe/);
    assert.match(body, /Example Bitbucket/);
    const rows = await page.locator('table.repositories tr').count();
    assert.ok(rows > 1, `repository rows: ${rows}`);
    // The page after the callback was not given the callback URL (with its code) as Referer.
    for (const r of referers) assert.doesNotMatch(r, /\/oauth\/callback\//, `referer ${r}`);

    await page.getByRole('link', { name: 'Next page' }).click();
    await page.waitForURL(/\/account\?start=\d+/);
    await shot(page, '05-account-page-2');

    // Logout is a POST with a CSRF token; afterwards /account wants a login.
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForURL(`${sys.webUrl}/`);
    await shot(page, '06-logged-out');
    await page.goto(`${sys.webUrl}/account`);
    await page.waitForURL(/\/login\?return_to=/);
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test('Deny in Bitbucket shows what happened and what to do', async () => {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  const problems = watch(page);
  try {
    await page.goto(`${sys.webUrl}/login`);
    await page.getByRole('link', { name: 'Log in with Example Bitbucket' }).click();
    await page.waitForURL((u) => u.toString().startsWith(sys.emulatorUrl));
    await bitbucketLogin(page, 'zoë');
    await page.getByRole('button', { name: 'Deny' }).click();
    await page.waitForURL(/\/oauth\/callback\//);
    const body = await page.textContent('body');
    assert.match(body, /You declined access in Bitbucket/);
    assert.match(body, /choose Allow/);
    await shot(page, '07-denied');
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test('a display name with <script> stays text in the browser', async () => {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  let dialogs = 0;
  page.on('dialog', async (d) => { dialogs++; await d.dismiss(); });
  try {
    await page.goto(`${sys.webUrl}/login/start/${integration.id}`);
    await bitbucketLogin(page, 'jane.doe@example.com');
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL(`${sys.webUrl}/account`);
    await page.locator('table.identities').waitFor();
    const cell = await page.locator('table.identities td', { hasText: 'alert(1)' }).first().textContent();
    assert.equal(cell, 'Jane "JD" Doe <script>alert(1)</script>');
    await shot(page, '08-script-display-name');
    assert.equal(dialogs, 0, 'no script ran');
  } finally {
    await context.close();
  }
});
