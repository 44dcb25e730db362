// The account page with the web's caches off (services/web/account.c): the
// web asks the broker for the repositories with the session's hash, and the
// registry checks the session in the call that reads the credentials
// (user.credentials), so a page view costs the web one bus call, and the
// page is the same as session.lookup and user.get would have made it. When
// that call fails for another reason than the session, the page looks the
// session up alone and says why the repositories are missing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startPortico } from './harness.mjs';
import { Client, csrfFrom } from './client.mjs';
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
  assert.deepEqual(callsDelta(await busCalls(`${sys.opsUrl}/metrics`), seen), { 'broker user.repositories': 1 });
});

test('without caches, a cookie the registry does not know goes to the login page, as before', async () => {
  const c = new Client(sys.webUrl);
  c.setCookie('portico_session', 'A'.repeat(43));
  const seen = await busCalls(`${sys.opsUrl}/metrics`);
  const r = await c.get('/account');
  assert.equal(r.status, 303);
  assert.equal(r.location, '/login?return_to=/account');
  assert.deepEqual(callsDelta(await busCalls(`${sys.opsUrl}/metrics`), seen), { 'broker user.repositories': 1 });
  // A logged-out session is gone the same way.
  const u = new Client(sys.webUrl);
  assert.equal((await loginAuto(u, A.id, { user: 'user62' })).status, 303);
  const cookie = u.cookie('portico_session');
  const page = await u.get('/account');
  assert.equal(page.status, 200);
  const out = await u.post('/logout', { csrf: csrfFrom(page.text) });
  assert.equal(out.status, 303);
  u.setCookie('portico_session', cookie);
  const again = await u.get('/account');
  assert.equal(again.status, 303);
  assert.equal(again.location, '/login?return_to=/account');
});

test('without caches, a Setup Mode session (no user) goes to the login page', async () => {
  const admin = await setupAdmin(sys);
  const r = await admin.get('/account');
  assert.equal(r.status, 303);
  assert.equal(r.location, '/login?return_to=/account');
});

test('without caches, an integration the user has no identity at: the account and a notice', async () => {
  const c = new Client(sys.webUrl);
  assert.equal((await loginAuto(c, A.id, { user: 'user63' })).status, 303);
  const seen = await busCalls(`${sys.opsUrl}/metrics`);
  const page = await c.get('/account?integration=999999');
  assert.equal(page.status, 200);
  assert.match(text(page.text), /user63/);
  assert.doesNotMatch(page.text, /<table class="repositories">/);
  assert.match(text(page.text), /Portico could not get your repositories/);
  assert.deepEqual(callsDelta(await busCalls(`${sys.opsUrl}/metrics`), seen), { 'broker user.repositories': 1 });
});

test('without caches, a revoked grant: the account, the notice, and a session.lookup of its own', async () => {
  const c = new Client(sys.webUrl);
  assert.equal((await loginAuto(c, A.id, { user: 'user64' })).status, 303);
  await sys.emulator.admin('tokens/revoke', { username: 'user64' });
  const seen = await busCalls(`${sys.opsUrl}/metrics`);
  const r = await c.get('/account');
  assert.equal(r.status, 200);
  assert.match(text(r.text), /user64/);
  assert.match(text(r.text), /Your Bitbucket authorization has expired or was revoked: log in again/);
  assert.match(r.text, new RegExp(`href="/login/start/${A.id}\\?return_to=/account">Log in again`));
  assert.deepEqual(callsDelta(await busCalls(`${sys.opsUrl}/metrics`), seen),
    { 'broker user.repositories': 1, 'registry session.lookup': 1 });
});

test('the session cookie counts only under its exact name, sent once', async () => {
  const u = new Client(sys.webUrl);
  assert.equal((await loginAuto(u, A.id, { user: 'user64' })).status, 303);
  const token = u.cookie('portico_session');
  const as = (cookie) => new Client(sys.webUrl).get('/account', { headers: { cookie } });
  assert.equal((await as(`a=b; portico_session=${token}`)).status, 200);
  // Inside another cookie's value, in another case, or twice (one of them
  // perhaps set by a neighbouring site): no session.
  for (const cookie of [`a=x portico_session=${token}`, `PORTICO_SESSION=${token}`,
    `portico_session=${token}; portico_session=${token}`]) {
    const r = await as(cookie);
    assert.equal(r.status, 303, cookie.replace(token, 'TOKEN'));
    assert.equal(r.location, '/login?return_to=/account');
  }
});
