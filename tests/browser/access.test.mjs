// Who may log in, in headless Chromium: an admin sets the integration's
// access rules on its page (Edit access rules, like Add Integration's
// form); a person who can read the project gets in; one who cannot, and one
// who does not match the patterns, get the "Access is restricted" page that
// says whom to ask; a user disabled in Bitbucket while signed in is signed
// out within the re-check bound and marked on the Users page. Screenshots
// go to tests/artifacts/screenshots/access-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { startPortico, waitFor, ARTIFACTS } from '../system/harness.mjs';
import { setupAdmin, createIntegration } from '../system/login_lib.mjs';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const SHOTS = join(ARTIFACTS, 'screenshots');
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];
const RECHECK_S = 3;

let sys, browser, integration, adminCtx, adminPage;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  sys = await startPortico({ name: 'browser-access', env: { PORTICO_ACCESS_RECHECK_SECONDS: String(RECHECK_S) } });
  integration = await createIntegration(await setupAdmin(sys), sys.emulator, { name: 'Example Bitbucket' });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  adminCtx = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  adminPage = await adminCtx.newPage();
  await adminPage.goto(`${sys.webUrl}/admin`);
  await adminPage.getByLabel('Setup token').fill(sys.setupToken);
  await adminPage.getByRole('button', { name: 'Open the Admin section' }).click();
  await adminPage.waitForURL(`${sys.webUrl}/admin`);
});

after(async () => {
  if (adminCtx) await adminCtx.close();
  if (browser) await browser.close();
  if (sys) await sys.stop();
});

const shot = (page, name) => page.screenshot({ path: join(SHOTS, `access-${name}.png`), fullPage: true });

async function setRules({ resource = '', patterns = '', contact = '' }, name) {
  const page = adminPage;
  await page.goto(`${sys.webUrl}/admin/integrations/${integration.id}`);
  await page.getByRole('link', { name: 'Edit access rules' }).click();
  await page.waitForURL(/\/access$/);
  assert.match(await page.textContent('#access-rule-sentence'), /pass every rule that is set/);
  await page.getByLabel('Bitbucket project or repository').fill(resource);
  await page.getByLabel('User names and e-mail addresses').fill(patterns);
  await page.getByLabel('Whom to ask for access').fill(contact);
  if (name) await shot(page, `${name}-form`);
  await page.getByRole('button', { name: 'Save access rules' }).click();
  await page.waitForURL(/access=saved/);
  if (name) await shot(page, `${name}-saved`);
  return page.textContent('#access-summary');
}

// Log in through the emulator's pages; returns the page where Portico ends up.
async function login(context, user) {
  const page = await context.newPage();
  await page.goto(`${sys.webUrl}/login`);
  await page.getByRole('link', { name: 'Log in with Example Bitbucket' }).click();
  await page.waitForURL((u) => u.toString().startsWith(sys.emulatorUrl));
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password').fill('password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('button', { name: 'Allow' }).click();
  await page.waitForURL((u) => u.toString().startsWith(sys.webUrl) && !u.pathname.startsWith('/bitbucket'));
  await page.waitForLoadState();
  return page;
}

test('a project rule: allowed and refused by project', async () => {
  const summary = await setRules({ resource: 'PROJ', contact: 'the platform team' }, '01-project');
  assert.match(summary, /Only people who can read the Bitbucket project PROJ may log in/);

  const ok = await browser.newContext();
  const page = await login(ok, 'jdoe');
  await page.waitForURL(`${sys.webUrl}/account`);
  await shot(page, '02-allowed');
  await ok.close();

  const no = await browser.newContext();
  const refused = await login(no, 'zoë');
  const body = await refused.textContent('body');
  assert.match(body, /Access is restricted/);
  assert.match(body, /Ask the platform team for access\./);
  await shot(refused, '03-refused-by-project');
  await no.close();
});

test('a pattern rule: refused by pattern', async () => {
  const summary = await setRules({ patterns: 'jdoe\n*@corp.example' }, '04-patterns');
  assert.match(summary, /match one of 2 user names, e-mail addresses or patterns/);
  const no = await browser.newContext();
  const refused = await login(no, 'jane.doe@example.com');
  assert.match(await refused.textContent('body'), /Access is restricted/);
  assert.match(await refused.textContent('body'), /Ask a Portico admin for access\./);
  await shot(refused, '05-refused-by-pattern');
  await no.close();

  await adminPage.goto(`${sys.webUrl}/admin/audit`);
  assert.match(await adminPage.textContent('body'), /login\.refused/);
  await shot(adminPage, '06-audit');
  await adminPage.goto(`${sys.webUrl}/admin/users`);
  const refusedRows = adminPage.locator('#refused-logins table tr');
  assert.match(await adminPage.textContent('#refused-logins'), /jane\.doe@example\.com.*matches no user name or e-mail pattern/s);
  assert.match(await adminPage.textContent('#refused-logins'), /zoë.*cannot read PROJ/s);
  assert.ok((await refusedRows.count()) >= 3);
  await shot(adminPage, '06-users-refused');
});

test('a user disabled in Bitbucket while signed in is signed out and marked', async () => {
  await setRules({});
  const ctx = await browser.newContext();
  const page = await login(ctx, 'jdoe');
  await page.waitForURL(`${sys.webUrl}/account`);
  assert.equal((await sys.emulator.admin('users/disable', { username: 'jdoe' })).status, 200);
  await waitFor(async () => {
    await page.goto(`${sys.webUrl}/account`);
    return /\/login\?return_to=/.test(page.url());
  }, { timeout: (RECHECK_S + 20) * 1000, interval: 500, what: 'jdoe to be signed out' });
  await shot(page, '07-signed-out');
  await ctx.close();

  await adminPage.goto(`${sys.webUrl}/admin/users`);
  const row = adminPage.locator('tr', { hasText: 'jdoe' });
  assert.match(await row.textContent(), /access ended/);
  assert.match(await row.textContent(), /disabled or deleted in Bitbucket/);
  await shot(adminPage, '08-users-marked');
});
