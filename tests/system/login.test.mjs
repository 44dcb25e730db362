// Log in with Bitbucket Data Center (OAuth 2), driven over HTTP with a
// cookie jar, against the whole system: every rejection promised in
// docs/security.md's OAuth list, the error pages a user can meet, token
// refresh with rotation, and the account page.
//
// Two Bitbucket emulators: A (the harness's) shows its login and consent
// pages like a real Bitbucket; B auto-approves, for the logins that only
// need to get through.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPortico, startEmulator, waitFor, sleep } from './harness.mjs';
import { Client, csrfFrom } from './client.mjs';
import {
  setupAdmin, createIntegration, startLogin, authorizeAuto, authorizeInteractive, loginAuto, text,
} from './login_lib.mjs';

const LOGIN_TTL = 30; // the smallest PORTICO_LOGIN_TTL_SECONDS allows
const BB_TIMEOUT_MS = 8000;

let sys, admin, emuB, A, B, D, emuD;
// A login started in before(), finished after it expired (see the last tests).
let expiring;

before(async () => {
  sys = await startPortico({
    name: 'login',
    brokers: 2,
    // The token tests below expect every account page to reach Bitbucket:
    // the web's repository cache (tests/system/cache.test.mjs) is off here.
    env: {
      // Every line the services can write, for the secret scan below.
      PORTICO_LOG_LEVEL: 'debug',
      PORTICO_LOGIN_TTL_SECONDS: String(LOGIN_TTL),
      PORTICO_BITBUCKET_TIMEOUT_MS: String(BB_TIMEOUT_MS),
      PORTICO_REPOSITORY_CACHE_SECONDS: '0',
      // Dozens of logins a minute from this one address: the per-client
      // limits are tested in edge.test.mjs.
      PORTICO_LOGIN_RATE_PER_MINUTE: '1000',
      PORTICO_CALLBACK_RATE_PER_MINUTE: '1000',
    },
  });
  emuB = await startEmulator({ autoApprove: 'jdoe', logDir: sys.logDir });
  emuD = await startEmulator({ autoApprove: 'jdoe', logDir: sys.logDir });
  admin = await setupAdmin(sys);
  A = await createIntegration(admin, sys.emulator, { name: 'Bitbucket A' });
  B = await createIntegration(admin, emuB, { name: 'Bitbucket B' });
  D = await createIntegration(admin, emuD, { name: 'Bitbucket D' });
  // Start a login now and get its code; its callback is opened after the
  // pending login has expired.
  const c = new Client(sys.webUrl);
  const s = await startLogin(c, B.id);
  expiring = { client: c, callback: await authorizeAuto(c, s.location, 'user90'), at: Date.now() };
});

after(async () => {
  if (emuB) await emuB.stop();
  if (emuD) await emuD.stop();
  if (sys) await sys.stop();
});

const stats = async (emu) => (await emu.admin('stats', undefined, 'GET')).json;

test('the login page lists each enabled integration as a GET link', async () => {
  const c = new Client(sys.webUrl);
  const r = await c.get('/login?return_to=/account');
  assert.equal(r.status, 200);
  for (const [name, i] of [['Bitbucket A', A], ['Bitbucket B', B]]) {
    assert.match(r.text, new RegExp(`<a class="button" href="/login/start/${i.id}\\?return_to=%2Faccount">Log in with ${name}</a>`));
  }
  assert.doesNotMatch(r.text, /<form[^>]+action="[^"]*login\/start/);
  const home = await c.get('/');
  assert.equal(home.status, 200);
  assert.match(home.text, /Log in with Bitbucket A/);
});

test('full login through Bitbucket\'s login and consent pages', async () => {
  // In the browser that proved the setup token: Setup Mode is its own.
  const c = await setupAdmin(sys);
  const start = await startLogin(c, A.id, '/account');
  const auth = new URL(start.location);
  assert.equal(`${auth.origin}${auth.pathname}`, `${sys.emulatorUrl}/rest/oauth2/latest/authorize`);
  const p = auth.searchParams;
  assert.equal(p.get('client_id'), A.clientId);
  assert.equal(p.get('redirect_uri'), `${sys.webUrl}/oauth/callback/${A.id}`);
  assert.equal(p.get('response_type'), 'code');
  assert.equal(p.get('scope'), 'REPO_READ');
  assert.equal(p.get('code_challenge_method'), 'S256');
  assert.match(p.get('code_challenge'), /^[A-Za-z0-9_-]{43}$/);
  assert.match(p.get('state'), /^[A-Za-z0-9_-]{43}$/);
  const setCookie = start.headers.getSetCookie().find((l) => l.startsWith('portico_login='));
  assert.ok(setCookie, 'the start sets the browser-binding cookie');
  assert.match(setCookie, /^portico_login=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax$/);

  const callback = await authorizeInteractive(c, start.location, { user: 'jdoe' });
  assert.ok(callback.startsWith(`${sys.webUrl}/oauth/callback/${A.id}?`), callback);
  const r = await c.get(callback);
  assert.equal(r.status, 303, text(r.text));
  assert.equal(r.location, '/account');
  assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
  assert.ok(c.cookie('portico_session'), 'a session cookie was set');
  assert.equal(c.cookie('portico_login'), undefined, 'the binding cookie is cleared');
  const sessionLine = r.headers.getSetCookie().find((l) => l.startsWith('portico_session='));
  assert.match(sessionLine, /HttpOnly; SameSite=Lax/);

  const acct = await c.get('/account');
  assert.equal(acct.status, 200);
  const t = text(acct.text);
  assert.match(t, /John Doe/);
  assert.match(t, /jdoe@example\.com/);
  assert.match(t, /Bitbucket A/);
  assert.match(acct.text, /<table class="repositories">/);
  assert.match(t, /Next page/, 'jdoe reads 45 repositories: more than one page of 25');
  const rows = acct.text.match(/<tr><td>/g) || [];
  assert.ok(rows.length >= 25, `rows: ${rows.length}`);
  assert.match(acct.text, /<code>http:\/\/127\.0\.0\.1:\d+\/bitbucket\/scm\/[^<]+\.git<\/code>/);
  // The first user to log in from the setup session while Setup Mode is on is admin.
  assert.match(acct.text, /<span class="badge ok">admin<\/span>/);
});

test('the repositories are paged with Bitbucket\'s nextPageStart', async () => {
  const c = new Client(sys.webUrl);
  assert.equal((await loginAuto(c, B.id, { user: 'jdoe' })).status, 303);
  const p1 = await c.get('/account');
  const next = p1.text.match(/href="\/account\?start=(\d+)#repositories">Next page/);
  assert.ok(next, 'a Next page link');
  const p2 = await c.get(`/account?start=${next[1]}`);
  assert.equal(p2.status, 200);
  assert.doesNotMatch(p2.text, /Next page/);
  assert.match(p2.text, /First page/);
  const names = (html) => {
    const table = html.match(/<table class="repositories">([\s\S]*?)<\/table>/)[1];
    return [...table.matchAll(/<tr><td>([^<]*)<\/td><td>([^<]*)<\/td>/g)].map((m) => `${m[1]}/${m[2]}`);
  };
  const a = names(p1.text), b = names(p2.text);
  assert.equal(a.length, 25);
  assert.equal(a.length + b.length, 45);
  assert.equal(new Set([...a, ...b]).size, 45, 'no repository twice');
});

test('missing state: a clear page, no session', async () => {
  const c = new Client(sys.webUrl);
  const r = await c.get(`/oauth/callback/${B.id}?code=abc`);
  assert.equal(r.status, 400);
  assert.match(text(r.text), /did not carry the sign-in state/);
  assert.match(text(r.text), /Start again/);
  assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
  assert.equal(c.cookie('portico_session'), undefined);
});

test('unknown state: "expired or was already used"', async () => {
  const c = new Client(sys.webUrl);
  await startLogin(c, B.id); // this browser has a binding cookie
  const r = await c.get(`/oauth/callback/${B.id}?code=abc&state=${'x'.repeat(43)}`);
  assert.equal(r.status, 400);
  assert.match(text(r.text), /This sign-in link has expired or was already used: start again/);
  assert.equal(c.cookie('portico_session'), undefined);
});

test('replayed state: refused in another browser; the browser it signed in goes to its account', async () => {
  const c = new Client(sys.webUrl);
  const s = await startLogin(c, B.id);
  const binding = c.cookie('portico_login');
  const callback = await authorizeAuto(c, s.location, 'user1');
  assert.equal((await c.get(callback)).status, 303);
  const session = c.cookie('portico_session');
  // The same browser, signed in by it a moment ago (Back to Bitbucket's
  // consent page and Allow again, or a double click): its account, not an
  // error page, with the binding cookie (cleared at sign-in) or with it put
  // back as it was. The session stays the one it had.
  for (const put of [false, true]) {
    if (put) c.setCookie('portico_login', binding);
    const again = await c.get(callback);
    assert.equal(again.status, 303, text(again.text));
    assert.equal(again.location, '/account');
    assert.equal(c.cookie('portico_session'), session, 'the replay did not change the session');
  }
  // A browser signed in as nobody gets the page that says why.
  const fresh = new Client(sys.webUrl);
  await startLogin(fresh, B.id);
  const refused = await fresh.get(callback);
  assert.notEqual(refused.status, 303);
  assert.equal(fresh.cookie('portico_session'), undefined);
  // Without the binding cookie.
  const other = new Client(sys.webUrl);
  const r = await other.get(callback);
  assert.equal(r.status, 400);
  assert.match(text(r.text), /expired or was already used/);
  assert.equal(other.cookie('portico_session'), undefined);
});

test('two logins started in two tabs: the second callback, after the first signed in, lands on the account', async () => {
  const c = new Client(sys.webUrl);
  const a = await startLogin(c, B.id);
  const b = await startLogin(c, B.id); // the second tab: the same binding cookie
  const callbackA = await authorizeAuto(c, a.location, 'user35');
  const callbackB = await authorizeAuto(c, b.location, 'user35');
  const ra = await c.get(callbackA);
  assert.equal(ra.status, 303, text(ra.text));
  const session = c.cookie('portico_session');
  assert.ok(session);
  // The first cleared the binding cookie: not "started in another browser".
  const rb = await c.get(callbackB);
  assert.equal(rb.status, 303, text(rb.text));
  assert.equal(rb.location, '/account');
  assert.equal(c.cookie('portico_session'), session);
  assert.equal((await c.get('/account')).status, 200);
});

test('state from another browser is refused and does not burn the login', async () => {
  const victim = new Client(sys.webUrl);
  const s = await startLogin(victim, B.id);
  const callback = await authorizeAuto(victim, s.location, 'user2');
  // An attacker with a binding cookie of their own, and one without any.
  const withCookie = new Client(sys.webUrl);
  await startLogin(withCookie, B.id);
  for (const attacker of [withCookie, new Client(sys.webUrl)]) {
    const r = await attacker.get(callback);
    assert.equal(r.status, 403);
    assert.match(text(r.text), /started in another browser/);
    assert.equal(attacker.cookie('portico_session'), undefined);
  }
  // The browser that started it still finishes (within the code's 10 s).
  const ok = await victim.get(callback);
  assert.equal(ok.status, 303, text(ok.text));
  assert.equal(ok.location, '/account');
});

test('state from another integration is refused (mix-up defence)', async () => {
  const c = new Client(sys.webUrl);
  const s = await startLogin(c, B.id);
  const callback = await authorizeAuto(c, s.location, 'user3');
  const wrong = callback.replace(`/oauth/callback/${B.id}?`, `/oauth/callback/${A.id}?`);
  assert.notEqual(wrong, callback);
  const r = await c.get(wrong);
  assert.equal(r.status, 403);
  assert.match(text(r.text), /another Bitbucket integration/);
  assert.equal(c.cookie('portico_session'), undefined);
  const ok = await c.get(callback);
  assert.equal(ok.status, 303, text(ok.text));
});

test('Deny in Bitbucket: a clear page, and the pending login is consumed', async () => {
  const c = new Client(sys.webUrl);
  const s = await startLogin(c, A.id);
  const binding = c.cookie('portico_login');
  const callback = await authorizeInteractive(c, s.location, { user: 'zoë', decision: 'deny' });
  assert.match(callback, /[?&]error=access_denied/);
  const r = await c.get(callback);
  assert.equal(r.status, 403);
  assert.match(text(r.text), /You declined access in Bitbucket/);
  assert.match(text(r.text), /choose Allow/);
  assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
  c.setCookie('portico_login', binding);
  const again = await c.get(callback);
  assert.match(text(again.text), /expired or was already used/);
});

test('return_to stays local', async () => {
  for (const [given, want] of [
    ['//evil.example', '/account'],
    ['https://evil.example', '/account'],
    ['/\\evil.example', '/account'],
    ['/\\/evil.example', '/account'],
    ['javascript:alert(1)', '/account'],
    ['/account?start=25', '/account?start=25'],
  ]) {
    const c = new Client(sys.webUrl);
    const list = await c.get(`/login?return_to=${encodeURIComponent(given)}`);
    assert.doesNotMatch(list.text, /evil\.example/);
    const r = await loginAuto(c, B.id, { user: 'user4', returnTo: given });
    assert.equal(r.status, 303, text(r.text));
    assert.equal(r.location, want, `return_to ${given}`);
  }
});

test('PKCE and redirect_uri on every token request; no token in any URL or log', async () => {
  const seen = { code: [], state: [] };
  for (const user of ['user5', 'user6']) {
    const c = new Client(sys.webUrl);
    const s = await startLogin(c, B.id);
    const cb = new URL(await authorizeAuto(c, s.location, user));
    seen.code.push(cb.searchParams.get('code'));
    seen.state.push(cb.searchParams.get('state'));
    assert.equal((await c.get(cb.toString())).status, 303);
    assert.equal((await c.get('/account')).status, 200);
    seen.session = c.cookie('portico_session');
  }
  for (const emu of [sys.emulator, emuB]) {
    const log = (await emu.admin('requests', undefined, 'GET')).json;
    const tokens = log.filter((e) => e.path.endsWith('/rest/oauth2/latest/token'));
    for (const e of tokens) {
      assert.equal(e.method, 'POST');
      assert.equal(e.has_redirect_uri, true, JSON.stringify(e));
      if (e.grant_type === 'authorization_code') assert.equal(e.has_code_verifier, true, JSON.stringify(e));
      assert.equal(e.query, '', 'token parameters travel in the body');
    }
    for (const e of log) assert.equal(e.query_has_token, false, JSON.stringify(e));
    const authz = log.filter((e) => e.path.endsWith('/rest/oauth2/latest/authorize'));
    for (const e of authz) assert.doesNotMatch(e.query, /token/);
  }
  const logs = sys.allLogs();
  for (const v of [...seen.code, ...seen.state, seen.session]) assert.ok(!logs.includes(v), 'a secret in the logs');
  assert.doesNotMatch(logs, /access_token=|refresh_token=|client_secret=/);
  assert.ok(!logs.includes(B.clientSecret), 'the client secret in the logs');
});

// The broker workers the web's queue counts as connected.
const workersConnected = async () => {
  const t = await (await fetch(`${sys.opsUrl}/metrics`)).text();
  const m = t.match(/^portico_broker_workers_connected (\d+)/m);
  return m ? Number(m[1]) : 0;
};

test('a broker frozen as logins start: the starts it held go to the other broker, none fails', async () => {
  // SIGSTOP: its connections stay open and it says nothing, as when its
  // machine is lost; the web notices only by its missing heartbeats (3 s).
  await waitFor(async () => (await workersConnected()) >= 16, { what: 'two brokers connected' });
  const frozen = sys.procs['broker-2'];
  frozen.child.kill('SIGSTOP');
  try {
    const t0 = Date.now();
    // At once, while the frozen broker's workers still count as recently
    // heard from: its eight, idle longest, take some of these.
    const results = await Promise.all(Array.from({ length: 16 }, async () => {
      const r = await new Client(sys.webUrl).get(`/login/start/${B.id}`);
      return { status: r.status, ms: Date.now() - t0, text: r.text };
    }));
    for (const r of results) assert.equal(r.status, 303, `a start failed after ${r.ms} ms: ${text(r.text).slice(0, 300)}`);
    // Those it held waited for the heartbeats to be missed, then went on.
    const m = (await (await fetch(`${sys.opsUrl}/metrics`)).text()).match(/^portico_broker_requests_rerouted_total (\d+)/m);
    assert.ok(m && Number(m[1]) > 0, `no start was held by the frozen broker (${results.map((r) => r.ms).join(' ')} ms)`);
    assert.ok(results.filter((r) => r.ms >= 1500).length >= Number(m[1]), 'a rerouted start did not wait for the heartbeats');
    assert.match(sys.log('web'), /sign-in request handed to another broker worker.* method="?login\.start/);
  } finally {
    frozen.child.kill('SIGCONT');
  }
  await waitFor(async () => (await workersConnected()) >= 16, { timeout: 10000, what: 'the thawed broker back' });
});

test('a broker that missed a heartbeat gets no new sign-ins', async () => {
  const rerouted = async () => {
    const m = (await (await fetch(`${sys.opsUrl}/metrics`)).text()).match(/^portico_broker_requests_rerouted_total (\d+)/m);
    return m ? Number(m[1]) : 0;
  };
  await waitFor(async () => (await workersConnected()) >= 16, { what: 'two brokers connected' });
  const before = await rerouted();
  const frozen = sys.procs['broker-2'];
  frozen.child.kill('SIGSTOP');
  try {
    // Past a missed heartbeat (2 s), before it is dropped (3 s after its
    // last one): its idle workers are the ones idle longest, yet none is
    // given one of these.
    await sleep(2100);
    const results = await Promise.all(Array.from({ length: 8 }, async () => (await new Client(sys.webUrl).get(`/login/start/${B.id}`)).status));
    assert.deepEqual(results, Array(8).fill(303));
    assert.equal(await rerouted(), before, 'a start went to the silent broker');
  } finally {
    frozen.child.kill('SIGCONT');
  }
  await waitFor(async () => (await workersConnected()) >= 16, { timeout: 10000, what: 'the thawed broker back' });
});

test('a broker killed between login start and callback: another broker finishes', async () => {
  const metric = workersConnected;
  await waitFor(async () => (await metric()) >= 16, { what: 'two brokers connected' });
  const c = new Client(sys.webUrl);
  const s = await startLogin(c, B.id);
  const callback = await authorizeAuto(c, s.location, 'user7');
  await sys.kill('broker-1', 'SIGKILL');
  await waitFor(async () => (await metric()) === 8, { timeout: 8000, what: 'the dead broker dropped' });
  const r = await c.get(callback);
  assert.equal(r.status, 303, text(r.text));
  assert.equal(r.location, '/account');
  assert.equal((await c.get('/account')).status, 200);
  await sys.startBroker();
  await waitFor(async () => (await metric()) >= 16, { what: 'a new broker connected' });
});

test('Bitbucket answering after 6.5 s for one login: other logins complete meanwhile', async () => {
  const slow = new Client(sys.webUrl);
  const s = await startLogin(slow, B.id);
  const callback = await authorizeAuto(slow, s.location, 'user8');
  await emuB.admin('faults', { latency_ms: 6500 }); // within BB_TIMEOUT_MS
  const t0 = Date.now();
  const slowDone = slow.get(callback).then((r) => ({ r, at: Date.now() }));
  // The token request reaches the emulator (which reads the fault as a
  // request arrives) through the web, the broker and the Bitbucket service:
  // time enough for that on a loaded machine.
  await sleep(2000);
  await emuB.admin('faults', { latency_ms: 0 });
  const others = await Promise.all([10, 11, 12, 13, 14].map(async (n) => {
    const c = new Client(sys.webUrl);
    const r = await loginAuto(c, B.id, { user: `user${n}` });
    return { r, at: Date.now() };
  }));
  const done = await slowDone;
  assert.equal(done.r.status, 303, text(done.r.text));
  assert.ok(done.at - t0 >= 5000, `the slow login took ${done.at - t0} ms`);
  for (const o of others) {
    assert.equal(o.r.status, 303, text(o.r.text));
    assert.ok(o.at < done.at, 'finished while the slow login was waiting');
  }
});

test('Bitbucket down: a clear error page within the deadline', async () => {
  const c = new Client(sys.webUrl);
  const s = await startLogin(c, D.id);
  const callback = await authorizeAuto(c, s.location, 'user20');
  await emuD.stop();
  const t0 = Date.now();
  const r = await c.get(callback);
  const took = Date.now() - t0;
  assert.equal(r.status, 503);
  assert.match(text(r.text), /Bitbucket is not reachable/);
  assert.match(text(r.text), /try again/i);
  assert.doesNotMatch(r.text, /127\.0\.0\.1|curl|errno|ECONNREFUSED/i, 'no internals');
  assert.ok(took < 15000, `took ${took} ms`);
});

test('Bitbucket hanging: "took too long" within the deadline', async () => {
  const c = new Client(sys.webUrl);
  const s = await startLogin(c, B.id);
  const callback = await authorizeAuto(c, s.location, 'user21');
  await emuB.admin('faults', { hang: true });
  try {
    const t0 = Date.now();
    const r = await c.get(callback);
    const took = Date.now() - t0;
    assert.equal(r.status, 504, text(r.text));
    assert.match(text(r.text), /Bitbucket took too long to answer/);
    assert.ok(took < 15000, `took ${took} ms`);
  } finally {
    await emuB.admin('faults', { hang: false });
  }
});

test('wrong client secret: the page says to ask an admin to check the Client Secret', async () => {
  // An application link whose secret differs from what the integration holds.
  const form = await admin.get('/admin/integrations/new');
  const id = form.text.match(/name="id" value="(\d+)"/)[1];
  const csrf = csrfFrom(form.text);
  const link = await emuB.admin('applinks', { name: 'Portico wrong', redirect_url: `${sys.webUrl}/oauth/callback/${id}`, permissions: ['REPO_READ'] });
  const r0 = await admin.post('/admin/integrations', {
    csrf, id, platform: 'bitbucket-dc', base_url: emuB.url, oauth_version: '2',
    client_id: link.json.client_id, client_secret: 'f'.repeat(64), name: 'Bitbucket wrong secret',
  });
  assert.equal(r0.status, 303);
  const c = new Client(sys.webUrl);
  const r = await loginAuto(c, Number(id), { user: 'user22' });
  assert.equal(r.status, 401);
  assert.match(text(r.text), /ask a Portico admin to check the integration's Client Secret/i);
  assert.ok(!r.text.includes('f'.repeat(64)));
});

test('two-factor plugin blocking OAuth: the page explains the U2F & TOTP whitelist', async () => {
  await emuB.admin('faults', { tfa_block: true });
  try {
    const c = new Client(sys.webUrl);
    const r = await loginAuto(c, B.id, { user: 'user23' });
    assert.equal(r.status, 401);
    const t = text(r.text);
    assert.match(t, /two-factor/);
    assert.match(t, /U2F & TOTP/);
    assert.match(t, /OAuth whitelist/);
    assert.equal(c.cookie('portico_session'), undefined);
  } finally {
    await emuB.admin('faults', { tfa_block: false });
  }
});

test('a token whose user id is not the record\'s: no session, and the next login works', async () => {
  // X-AUSERID names another account than users/{name} returns, as after a
  // rename with someone else taking the old name, or from a cache that
  // ignores Vary.
  await emuB.admin('faults', { auserid: 999999 });
  try {
    const c = new Client(sys.webUrl);
    const r = await loginAuto(c, B.id, { user: 'user24' });
    assert.equal(r.status, 502, text(r.text).slice(0, 400));
    assert.match(text(r.text), /Bitbucket answered something unexpected/);
    assert.equal(c.cookie('portico_session'), undefined);
    const logs = readdirSync(sys.logDir).filter((f) => f.startsWith('broker-'))
      .map((f) => readFileSync(join(sys.logDir, f), 'utf8')).join('');
    assert.match(logs, /bitbucket user id differs from the token's.*token_user_id=999999/);
  } finally {
    await emuB.admin('faults', { auserid: 0 });
  }
  const c = new Client(sys.webUrl);
  assert.equal((await loginAuto(c, B.id, { user: 'user24' })).status, 303);
  assert.match((await c.get('/account')).text, /<table class="repositories">/);
});

test('an account Bitbucket reports as not active: no session, a page that says so', async () => {
  // As the re-check ends the access of a deactivated account, a login of
  // one whose token still works does not begin it.
  await emuB.admin('faults', { record_inactive: true });
  try {
    const c = new Client(sys.webUrl);
    const r = await loginAuto(c, B.id, { user: 'user25' });
    assert.equal(r.status, 403, text(r.text).slice(0, 400));
    assert.match(text(r.text), /Your Bitbucket account is not active/);
    assert.equal(c.cookie('portico_session'), undefined);
  } finally {
    await emuB.admin('faults', { record_inactive: false });
  }
  assert.equal((await loginAuto(new Client(sys.webUrl), B.id, { user: 'user25' })).status, 303);
});

test('token expiry: one refresh, the rotated pair is stored and used', async () => {
  const c = new Client(sys.webUrl);
  assert.equal((await loginAuto(c, B.id, { user: 'user30' })).status, 303);
  assert.match((await c.get('/account')).text, /<table class="repositories">/);
  const before = await stats(emuB);
  await emuB.admin('tokens/expire', { username: 'user30' });
  const r1 = await c.get('/account');
  assert.match(r1.text, /<table class="repositories">/, text(r1.text).slice(0, 400));
  const mid = await stats(emuB);
  assert.equal(mid.grants.refresh_token - before.grants.refresh_token, 1, 'one refresh');
  // The rotated pair was stored: the next pages need no refresh, and the
  // dead refresh token is never presented again.
  for (let i = 0; i < 3; i++) assert.match((await c.get('/account')).text, /<table class="repositories">/);
  const end = await stats(emuB);
  assert.equal(end.grants.refresh_token, mid.grants.refresh_token);
  assert.equal(end.refresh_token_reuse, before.refresh_token_reuse);
  assert.equal(end.failed_refreshes, before.failed_refreshes);
});

test('a Bitbucket that does not rotate the refresh token: the one kept goes on working', async () => {
  const c = new Client(sys.webUrl);
  assert.equal((await loginAuto(c, B.id, { user: 'user34' })).status, 303);
  await c.get('/account');
  await emuB.admin('faults', { refresh_kept: true });
  try {
    for (let round = 0; round < 2; round++) {
      const before = await stats(emuB);
      await emuB.admin('tokens/expire', { username: 'user34' });
      const r = await c.get('/account');
      assert.match(r.text, /<table class="repositories">/, `round ${round}: ${text(r.text).slice(0, 300)}`);
      const end = await stats(emuB);
      assert.equal(end.grants.refresh_token - before.grants.refresh_token, 1, `round ${round}: one refresh`);
      assert.equal(end.failed_refreshes, before.failed_refreshes, `round ${round}: the kept refresh token works`);
    }
  } finally {
    await emuB.admin('faults', { refresh_kept: false });
  }
});

test('two tabs at once after expiry: still one refresh', async () => {
  const c = new Client(sys.webUrl);
  assert.equal((await loginAuto(c, B.id, { user: 'user31' })).status, 303);
  await c.get('/account');
  for (let round = 0; round < 2; round++) {
    const before = await stats(emuB);
    await emuB.admin('tokens/expire', { username: 'user31' });
    const pages = await Promise.all([c.get('/account'), c.get('/account'), c.get('/account?start=25'), c.get('/account')]);
    for (const p of pages) assert.match(p.text, /<table class="repositories">|No more repositories|lists no repository/, text(p.text).slice(0, 300));
    const end = await stats(emuB);
    assert.equal(end.grants.refresh_token - before.grants.refresh_token, 1, `round ${round}: one refresh`);
    assert.equal(end.refresh_token_reuse, before.refresh_token_reuse);
    assert.equal(end.failed_refreshes, before.failed_refreshes);
  }
});

test('a revoked grant: "Your Bitbucket authorization has expired or was revoked: log in again"', async () => {
  const c = new Client(sys.webUrl);
  assert.equal((await loginAuto(c, B.id, { user: 'user32' })).status, 303);
  await emuB.admin('tokens/revoke', { username: 'user32' });
  const r = await c.get('/account');
  assert.equal(r.status, 200);
  assert.match(text(r.text), /Your Bitbucket authorization has expired or was revoked: log in again/);
  assert.match(r.text, new RegExp(`href="/login/start/${B.id}\\?return_to=/account">Log in again`));
  // Logging in again brings the repositories back.
  assert.equal((await loginAuto(c, B.id, { user: 'user32' })).status, 303);
  assert.match((await c.get('/account')).text, /<table class="repositories">/);
});

test('a display name with <script> shows as text', async () => {
  const c = new Client(sys.webUrl);
  const r = await loginAuto(c, B.id, { user: 'jane.doe@example.com' });
  assert.equal(r.status, 303, text(r.text));
  const acct = await c.get('/account');
  assert.equal(acct.status, 200);
  assert.ok(acct.text.includes('Jane &quot;JD&quot; Doe &lt;script&gt;alert(1)&lt;/script&gt;'), 'escaped display name');
  assert.ok(!acct.text.includes('<script>alert(1)'), 'no live script');
  assert.match(acct.text, /jane\.doe@example\.com/);
  const csp = acct.headers.get('content-security-policy');
  assert.match(csp, /script-src 'self'/);
  const home = await c.get('/');
  assert.ok(!home.text.includes('<script>alert(1)'));
});

test('logout ends the session on the server: the old cookie no longer works', async () => {
  const c = new Client(sys.webUrl);
  assert.equal((await loginAuto(c, B.id, { user: 'user40' })).status, 303);
  const old = c.cookie('portico_session');
  const page = await c.get('/account');
  assert.equal(page.status, 200);
  // Without the CSRF token: refused, still signed in.
  assert.equal((await c.post('/logout', {})).status, 403);
  assert.equal((await c.get('/account')).status, 200);
  const r = await c.post('/logout', { csrf: csrfFrom(page.text) });
  assert.equal(r.status, 303);
  assert.equal(r.location, '/');
  assert.equal(c.cookie('portico_session'), undefined);
  const replay = new Client(sys.webUrl);
  replay.setCookie('portico_session', old);
  const after = await replay.get('/account');
  assert.equal(after.status, 303);
  assert.equal(after.location, '/login?return_to=/account');
});

test('a new session id at every login', async () => {
  const c = new Client(sys.webUrl);
  assert.equal((await loginAuto(c, B.id, { user: 'user41' })).status, 303);
  const first = c.cookie('portico_session');
  assert.equal((await loginAuto(c, B.id, { user: 'user41' })).status, 303);
  const second = c.cookie('portico_session');
  assert.notEqual(first, second);
  const stale = new Client(sys.webUrl);
  stale.setCookie('portico_session', first);
  assert.equal((await stale.get('/account')).status, 303, 'the old session ended at the new login');
});

test('expired state: "expired", after PORTICO_LOGIN_TTL_SECONDS', async () => {
  const wait = expiring.at + (LOGIN_TTL + 1) * 1000 - Date.now();
  if (wait > 0) await sleep(wait);
  const r = await expiring.client.get(expiring.callback);
  assert.equal(r.status, 400);
  assert.match(text(r.text), /expired or was already used: start again/);
  assert.equal(expiring.client.cookie('portico_session'), undefined);
});

test('failed logins are in the audit log, without secrets', async () => {
  const r = await admin.get('/admin/audit');
  assert.equal(r.status, 200);
  const rows = [...r.text.matchAll(/<tr>(?:(?!<\/tr>)[\s\S])*?<code>login\.failed<\/code>(?:(?!<\/tr>)[\s\S])*?<\/tr>/g)].map((m) => text(m[0]));
  const details = rows.join('\n');
  for (const d of ['denied', 'browser', 'integration', 'tfa', 'invalid_client', 'unreachable']) {
    assert.match(details, new RegExp(`\\b${d}\\b`), `an audit entry for ${d}`);
  }
  assert.match(details, new RegExp(`integration:${B.id}`));
  assert.ok(!r.text.includes(B.clientSecret));
});

test('a disabled or unknown integration cannot start a login', async () => {
  const page = await admin.get(`/admin/integrations/${D.id}`);
  const off = await admin.post(`/admin/integrations/${D.id}/disable`, { csrf: csrfFrom(page.text) });
  assert.equal(off.status, 303);
  const c = new Client(sys.webUrl);
  const list = await c.get('/login');
  assert.doesNotMatch(list.text, /Log in with Bitbucket D/);
  const disabled = await c.get(`/login/start/${D.id}`);
  assert.equal(disabled.status, 403);
  assert.match(text(disabled.text), /This Bitbucket integration is disabled/);
  const r = await c.get('/login/start/999999');
  assert.equal(r.status, 404);
  assert.match(text(r.text), /Unknown Bitbucket integration/);
  const bad = await c.get('/login/start/abc');
  assert.equal(bad.status, 404);
});
