// The broker's integration.check, as the Admin pages use it (Create
// Integration, Test connection), against emulators of several Bitbucket
// versions; and the home page of a fresh install.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startPortico, startEmulator } from './harness.mjs';
import { Client, csrfFrom } from './client.mjs';
import { setupAdmin, createIntegration, text } from './login_lib.mjs';

let sys, admin;
const emulators = {};

before(async () => {
  sys = await startPortico({ name: 'login-check', emulatorVersion: '8.9.0' });
  for (const v of ['7.9.0', '7.20.5', '7.21.0']) emulators[v] = await startEmulator({ version: v, logDir: sys.logDir });
});

after(async () => {
  for (const e of Object.values(emulators)) await e.stop();
  if (sys) await sys.stop();
});

test('a fresh install in Setup Mode: the home page points to /admin', async () => {
  const c = new Client(sys.webUrl);
  const r = await c.get('/');
  assert.equal(r.status, 200);
  assert.match(text(r.text), /Setup Mode/);
  assert.match(r.text, /href="\/admin"/);
  const login = await c.get('/login');
  assert.match(text(login.text), /no Bitbucket integration/);
});

async function tryCreate(base, oauthVersion, extra = {}) {
  const form = await admin.get('/admin/integrations/new');
  const id = form.text.match(/name="id" value="(\d+)"/)[1];
  return admin.post('/admin/integrations', {
    csrf: csrfFrom(form.text), id, platform: 'bitbucket-dc', base_url: base, oauth_version: String(oauthVersion),
    client_id: 'a'.repeat(32), client_secret: 'b'.repeat(64), name: `Check ${id}`, ...extra,
  });
}

test('OAuth 2 needs Bitbucket 7.21 or newer, compared as numbers', async () => {
  admin = await setupAdmin(sys);
  for (const v of ['7.9.0', '7.20.5']) {
    const r = await tryCreate(emulators[v].url, 2);
    assert.equal(r.status, 400, `${v}: ${r.status}`);
    assert.match(text(r.text), /older than 7\.21/, v);
    assert.match(text(r.text), /OAuth 1/, v);
  }
  const ok = await tryCreate(emulators['7.21.0'].url, 2);
  assert.equal(ok.status, 303, text(ok.text).slice(0, 400));
});

test('OAuth 1 on Bitbucket 8: a warning, not a refusal', async () => {
  const r = await tryCreate(sys.emulatorUrl, 1);
  assert.equal(r.status, 200);
  assert.match(text(r.text), /From Bitbucket 8 on, OAuth 1 application links can no longer be used for synchronisation/);
});

test('not Bitbucket, or not reachable: clear messages', async () => {
  const notBb = await tryCreate(`${sys.webUrl}/nothing-here`, 2);
  assert.equal(notBb.status, 400);
  assert.match(text(notBb.text), /not as Bitbucket Data Center/);
  const down = await tryCreate('http://127.0.0.1:9/bitbucket', 2);
  assert.equal(down.status, 400);
  assert.match(text(down.text), /could not connect to this address/);
});

test('Test connection records the result on the integration', async () => {
  const emu = await startEmulator({ version: '8.5.1', logDir: sys.logDir });
  const i = await createIntegration(admin, emu, { name: 'Tested' });
  const page = await admin.get(`/admin/integrations/${i.id}`);
  const csrf = csrfFrom(page.text);
  let r = await admin.post(`/admin/integrations/${i.id}/test`, { csrf });
  assert.equal(r.status, 303);
  r = await admin.follow(r);
  assert.match(text(r.text), /Connection works/);
  assert.match(text(r.text), /8\.5\.1/);
  await emu.stop();
  r = await admin.follow(await admin.post(`/admin/integrations/${i.id}/test`, { csrf }));
  assert.match(text(r.text), /Test failed: Portico could not connect/);
});
