// Names as long as Bitbucket lets them be, in letters of two bytes: the
// emulator's user "l" + 120 "ö" (241 bytes) with the display name 128 "é"
// (256 bytes, one more than Portico keeps). The login must not fail on a
// name cut inside a letter, and an admin with that name must be able to
// change things, named whole in the audit log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startPortico } from './harness.mjs';
import { csrfFrom } from './client.mjs';
import { setupAdmin, createIntegration, loginAuto, text } from './login_lib.mjs';

const NAME = 'l' + '\u00f6'.repeat(120);
const DISPLAY = '\u00e9'.repeat(128);
let sys;

before(async () => {
  sys = await startPortico({ name: 'long-names', autoApprove: 'jdoe' });
});
after(async () => {
  if (sys) await sys.stop();
});

test('the longest names: the login works, the display name is cut at a letter, the admin is named whole', async () => {
  assert.equal(Buffer.byteLength(NAME), 241);
  assert.equal(Buffer.byteLength(DISPLAY), 256);
  const c = await setupAdmin(sys);
  const A = await createIntegration(c, sys.emulator, { name: 'Bitbucket A' });

  // The first login from the Setup Mode session makes this person admin.
  const r = await loginAuto(c, A.id, { user: NAME });
  assert.equal(r.status, 303, text(r.text).slice(0, 400));
  const acct = await c.get('/account');
  assert.equal(acct.status, 200);
  assert.ok(acct.text.includes(NAME), 'the user name, whole');
  assert.ok(acct.text.includes(DISPLAY.slice(0, 127)), 'the display name, 127 letters of it');
  assert.ok(!acct.text.includes(DISPLAY), 'the display name is cut to what the registry keeps');
  assert.ok(!acct.text.includes('\ufffd'), 'no letter is cut in two');
  assert.match(acct.text, /<span class="badge ok">admin<\/span>/);

  // An admin's change is recorded with the whole name as its actor.
  const page = await c.get(`/admin/integrations/${A.id}`);
  assert.equal(page.status, 200);
  const off = await c.post(`/admin/integrations/${A.id}/disable`, { csrf: csrfFrom(page.text) });
  assert.equal(off.status, 303, text(off.text).slice(0, 400));
  assert.match((await c.get(off.location)).text, /badge off">disabled/);
  const audit = await c.get('/admin/audit');
  assert.equal(audit.status, 200);
  const row = (audit.text.match(/<tr[^>]*>.*?<\/tr>/gs) || []).find((t) => /integration\.update/.test(t));
  assert.ok(row, 'an audit entry for the disable');
  assert.ok(row.includes(NAME), `the actor, whole: ${text(row)}`);
});
