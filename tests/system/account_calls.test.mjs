// The account page with the web's caches off (services/web/account.c): the
// session lookup brings the account along, so a page view costs the web one
// registry call and one broker call, and the page is the same as user.get
// would have made it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startPortico } from './harness.mjs';
import { Client } from './client.mjs';
import { setupAdmin, createIntegration, loginAuto, text, busCalls, callsDelta } from './login_lib.mjs';

let sys, A;

before(async () => {
  sys = await startPortico({
    name: 'account_calls',
    autoApprove: 'jdoe',
    env: { PORTICO_SESSION_CACHE_SECONDS: '0', PORTICO_REPOSITORY_CACHE_SECONDS: '0' },
  });
  const admin = await setupAdmin(sys);
  A = await createIntegration(admin, sys.emulator, { name: 'Bitbucket A' });
});

after(async () => {
  if (sys) await sys.stop();
});


test('an account page without caches: the account comes with the session, then the repositories', async () => {
  const c = new Client(sys.webUrl);
  assert.equal((await loginAuto(c, A.id, { user: 'user61' })).status, 303);
  await c.get('/account');
  const seen = await busCalls(`${sys.opsUrl}/metrics`);
  const page = await c.get('/account');
  assert.equal(page.status, 200);
  assert.match(text(page.text), /user61/);
  assert.match(text(page.text), /Bitbucket A/);
  assert.match(page.text, /<table class="repositories">/);
  assert.match(text(page.text), /as user61\./);
  assert.deepEqual(callsDelta(await busCalls(`${sys.opsUrl}/metrics`), seen), { 'registry session.lookup': 1, 'broker user.repositories': 1 });
});
