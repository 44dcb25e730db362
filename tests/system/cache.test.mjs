// The web's caches of sessions, account records and repository lists
// (services/web/session.c and account.c): what they save, and that what they
// may show stale is bounded: changes made through this web count at once,
// changes made elsewhere within the cache time, and admin pages never use a
// cached session. Short cache times keep the waits short.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startPortico, waitFor, sleep, BIN } from './harness.mjs';
import { Client, csrfFrom } from './client.mjs';
import { setupAdmin, createIntegration, loginAuto, text } from './login_lib.mjs';

const SESSION_CACHE_S = 2;
const REPOS_CACHE_S = 3;

let sys, admin, A;

before(async () => {
  sys = await startPortico({
    name: 'cache',
    autoApprove: 'jdoe',
    env: { PORTICO_SESSION_CACHE_SECONDS: String(SESSION_CACHE_S), PORTICO_REPOSITORY_CACHE_SECONDS: String(REPOS_CACHE_S) },
  });
  admin = await setupAdmin(sys);
  A = await createIntegration(admin, sys.emulator, { name: 'Bitbucket A' });
});

after(async () => {
  if (sys) await sys.stop();
});

const restRequests = async () => (await sys.emulator.admin('stats', undefined, 'GET')).json.rest.requests;

async function signedIn(user) {
  const c = new Client(sys.webUrl);
  assert.equal((await loginAuto(c, A.id, { user })).status, 303);
  return c;
}

// SQL on the private cluster, as its owner: "the database by hand".
function psql(sql) {
  // As whoever runs the tests (root or not): the socket admits role portico.
  execFileSync('psql', ['-h', sys.pg.dir, '-p', String(sys.pg.port), '-U', 'portico', '-d', 'portico', '-XqAtc', sql]);
}

test('repeated account pages are answered from the cache: no new request reaches Bitbucket', async () => {
  const c = await signedIn('user50');
  assert.match((await c.get('/account')).text, /<table class="repositories">/);
  const seen = await restRequests();
  for (let i = 0; i < 5; i++) assert.match((await c.get('/account')).text, /<table class="repositories">/);
  assert.equal(await restRequests(), seen);
  // Another page of the list is another entry.
  await c.get('/account?start=25');
  assert.ok((await restRequests()) > seen);
});

// Bus calls the web has made so far (its own metrics).
async function webBusCalls() {
  const m = await (await fetch(`${sys.opsUrl}/metrics`)).text();
  return m.split('\n').filter((l) => l.startsWith('portico_bus_calls_total{')).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}

test('the page after a login comes with the login: its first view asks no service and not Bitbucket', async () => {
  const c = new Client(sys.webUrl);
  const done = await loginAuto(c, A.id, { user: 'user53' });
  assert.equal(done.status, 303);
  assert.equal(new URL(done.location, sys.webUrl).pathname, '/account');
  const calls = await webBusCalls();
  const rest = await restRequests();
  const page = await c.get('/account');
  assert.equal(page.status, 200);
  assert.match(page.text, /<table class="repositories">/);
  assert.match(text(page.text), /as user53\./);
  assert.equal(await webBusCalls(), calls, 'the session, the account and the repositories came with the login');
  assert.equal(await restRequests(), rest);
  // The same list as the account page fetches itself once the cache is over.
  await sleep(REPOS_CACHE_S * 1000 + 200);
  const fresh = await c.get('/account');
  assert.equal(text(fresh.text).replace(/Last login.*?(?=Repositories)/s, ''), text(page.text).replace(/Last login.*?(?=Repositories)/s, ''));
});

test('a revoked grant shows once the repository cache time is over, not later; logging in again shows the list at once', async () => {
  const c = await signedIn('user51');
  assert.match((await c.get('/account')).text, /<table class="repositories">/);
  await sys.emulator.admin('tokens/revoke', { username: 'user51' });
  const revokedAt = Date.now();
  await waitFor(async () => /log in again/.test(text((await c.get('/account')).text)), {
    timeout: REPOS_CACHE_S * 1000 + 2000, interval: 200, what: 'the account page to say "log in again"',
  });
  assert.ok(Date.now() - revokedAt <= REPOS_CACHE_S * 1000 + 2000);
  assert.equal((await loginAuto(c, A.id, { user: 'user51' })).status, 303);
  assert.match((await c.get('/account')).text, /<table class="repositories">/);
});

test('logout forgets the cached account: after logging in again the list is fetched afresh', async () => {
  const c = await signedIn('user52');
  const page = await c.get('/account');
  const seen = await restRequests();
  const old = c.cookie('portico_session');
  assert.equal((await c.post('/logout', { csrf: csrfFrom(page.text) })).status, 303);
  const replay = new Client(sys.webUrl);
  replay.setCookie('portico_session', old);
  assert.equal((await replay.get('/account')).status, 303, 'the old cookie is refused at once');
  assert.equal((await replay.get('/')).text.includes('You are signed in'), false);
  assert.equal((await loginAuto(c, A.id, { user: 'user52' })).status, 303);
  assert.match((await c.get('/account')).text, /<table class="repositories">/);
  assert.ok((await restRequests()) > seen);
});

test('an admin ending a user\'s sessions through the Admin section counts at once', async () => {
  const c = await signedIn('user53');
  assert.equal((await c.get('/account')).status, 200);
  assert.equal((await c.get('/account')).status, 200);
  const users = await admin.get('/admin/users');
  const id = users.text.match(/<tr data-user-id="(\d+)"><td><strong>User 53/)[1];
  const end = await admin.post(`/admin/users/${id}/sessions`, { csrf: csrfFrom(users.text) });
  assert.equal(end.location, '/admin/users?ended=1');
  const r = await c.get('/account');
  assert.equal(r.status, 303);
  assert.equal(r.location, '/login?return_to=/account');
});

test('a session ended in the database by hand is refused within the session cache time', async () => {
  const c = await signedIn('user54');
  assert.equal((await c.get('/account')).status, 200);
  psql("DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE name = 'user54')");
  const endedAt = Date.now();
  await waitFor(async () => (await c.get('/account')).status === 303, {
    timeout: SESSION_CACHE_S * 1000 + 2000, interval: 100, what: 'the ended session to be refused',
  });
  assert.ok(Date.now() - endedAt <= SESSION_CACHE_S * 1000 + 2000);
});

test('admin pages never use a cached session: an admin role revoked with the registry CLI is refused at once', async () => {
  // An admin granted through the Admin section logs in again (a privilege
  // change ends the sessions).
  let c = await signedIn('user55');
  const users = await admin.get('/admin/users');
  const id = users.text.match(/<tr data-user-id="(\d+)"><td><strong>User 55/)[1];
  const grant = await admin.post(`/admin/users/${id}/admin`, { csrf: csrfFrom(users.text), admin: '1' });
  assert.equal(grant.location, '/admin/users?granted=1');
  c = await signedIn('user55');
  assert.equal((await c.get('/admin/users')).status, 200);
  assert.match((await c.get('/')).text, /href="\/admin">Admin</);
  execFileSync(join(BIN, 'portico-registry'), ['admin', 'revoke', 'user55'], { env: sys.env, stdio: 'ignore' });
  // (Setup Mode is still on here, so a non-admin is sent to the setup token form.)
  const r = await c.get('/admin/users');
  assert.equal(r.status, 303);
  assert.equal(r.location, '/admin');
  // Other pages catch up within the session cache time.
  await sleep(SESSION_CACHE_S * 1000 + 200);
  assert.doesNotMatch((await c.get('/')).text, /href="\/admin">Admin</);
});

test('a wrong setup token from anyone does not empty the caches', async () => {
  const c = await signedIn('user57');
  assert.match((await c.get('/account')).text, /<table class="repositories">/);
  const seen = await restRequests();
  const stranger = new Client(sys.webUrl);
  for (let i = 0; i < 3; i++) {
    const form = await stranger.get('/admin');
    const r = await stranger.post('/admin/setup-token', { csrf: csrfFrom(form.text), token: `wrong-${i}-${'x'.repeat(30)}` });
    assert.equal(r.status, 403, r.text.slice(0, 200));
    assert.match((await c.get('/account')).text, /<table class="repositories">/);
  }
  assert.equal(await restRequests(), seen, 'the repository list came from the cache each time');
});

test('opening Add Integration (a GET another site can make an admin\'s browser send) does not empty the caches', async () => {
  const c = await signedIn('user58');
  assert.match((await c.get('/account')).text, /<table class="repositories">/);
  const seen = await restRequests();
  for (let i = 0; i < 3; i++) {
    const form = await admin.get('/admin/integrations/new');
    assert.equal(form.status, 200);
    assert.match((await c.get('/account')).text, /<table class="repositories">/);
  }
  assert.equal(await restRequests(), seen, 'the repository list came from the cache each time');
});

test('with the registry down, a signed-in page says the service is unavailable instead of asking to log in; the session holds', async () => {
  const c = await signedIn('user56');
  const page = await c.get('/account');
  assert.equal(page.status, 200);
  const cookie = c.cookie('portico_session');
  await sys.kill('registry');
  // Past the session cache: the web has to ask the registry, which is gone.
  await sleep(SESSION_CACHE_S * 1000 + 200);
  for (const path of ['/account', '/admin/users']) {
    const r = await c.get(path);
    assert.equal(r.status, 503, `${path} with the registry down: ${r.status} ${r.location || ''}`);
    assert.match(text(r.text), /Service unavailable/);
  }
  assert.equal(c.cookie('portico_session'), cookie, 'the cookie is kept');
  // Logging out cannot end the session now: the page says so, and does
  // not pretend it did.
  const out = await c.post('/logout', { csrf: csrfFrom(page.text) });
  assert.equal(out.status, 503, `logout with the registry down: ${out.status} ${out.location || ''}`);
  assert.match(text(out.text), /Could not log you out/);
  assert.equal(c.cookie('portico_session'), cookie, 'the cookie is kept');
  await sys.restart('registry');
  await sys.ready(60000);
  await waitFor(async () => (await c.get('/account')).status === 200, { timeout: 30000, what: 'the account page once the registry is back' });
  // Then it works, and the session is over.
  assert.equal((await c.post('/logout', { csrf: csrfFrom(page.text) })).status, 303);
  const replay = new Client(sys.webUrl);
  replay.setCookie('portico_session', cookie);
  assert.equal((await replay.get('/account')).status, 303);
});
