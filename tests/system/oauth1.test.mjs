// Log in with Bitbucket Server older than 7.21 (OAuth 1.0a, RSA-SHA1),
// driven over HTTP against the whole system: the integration made through
// the Admin pages, its consumer registered in the emulator, a login through
// Bitbucket's login and consent pages, the repositories read with signed
// calls; then every way it fails in a way a person must understand: Deny,
// a replayed callback, a consumer Bitbucket does not know, a public key
// that does not match, a clock that is off (the bitbucket service run under
// faketime), a revoked token, the two-factor app.
//
// Three emulators, all Bitbucket 7.6.0: A (the harness's) has Portico's
// consumer; K never heard of it; S has it with another public key.
//
// Not covered here: oauth_problem=nonce_used. The bitbucket service makes
// a fresh random nonce for every request, so a system test cannot make it
// repeat one without a hook in production code; the emulator's own tests
// and the bitbucket service's unit tests (test_bb_json) cover the answer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { startPortico, startEmulator } from './harness.mjs';
import { Client, csrfFrom, formField } from './client.mjs';
import { setupAdmin, startLogin, text } from './login_lib.mjs';

const VERSION = '7.6.0';
// Debian's faketime package, for any architecture.
const LIBFAKETIME = ['/usr/lib', ...(existsSync('/usr/lib') ? readdirSync('/usr/lib').filter((d) => d.endsWith('-linux-gnu')).map((d) => `/usr/lib/${d}`) : [])]
  .map((d) => `${d}/faketime/libfaketimeMT.so.1`).find((p) => existsSync(p));

let sys, admin, emuK, emuS, A, K, S;

// Add Integration with OAuth 1, then read the Consumer Key and Public Key
// from the integration's page, as an admin would copy them.
async function createOAuth1(c, baseUrl, name) {
  const form = await c.get('/admin/integrations/new');
  assert.equal(form.status, 200);
  const id = formField(form.text, 'id');
  const r = await c.post('/admin/integrations', {
    csrf: csrfFrom(form.text), id, platform: 'bitbucket-dc', base_url: baseUrl, oauth_version: '1', name, ca_cert: '',
  });
  assert.equal(r.status, 303, `Create Integration: ${r.status} ${text(r.text).slice(0, 600)}`);
  assert.equal(r.location, `/admin?created=${id}`);
  const page = await c.get(`/admin/integrations/${id}`);
  assert.equal(page.status, 200);
  const consumerKey = formField(page.text, 'consumer-key') || page.text.match(/id="consumer-key" readonly value="([^"]+)"/)?.[1];
  const pem = page.text.match(/<textarea id="public-key"[^>]*>([^<]+)<\/textarea>/)?.[1];
  assert.ok(consumerKey, 'the page shows the Consumer Key');
  assert.ok(pem && pem.includes('-----BEGIN PUBLIC KEY-----'), 'the page shows the Public Key');
  return { id: Number(id), consumerKey, publicKey: pem.replace(/&#39;/g, "'").replace(/&amp;/g, '&'), page };
}

// Bitbucket's login page (when the browser has no session there), then its
// consent page: Allow or Deny. Returns the URL Bitbucket sends the browser to.
async function authorize(c, authorizeUrl, { user = 'jdoe', decision = 'allow' } = {}) {
  let r = await c.get(authorizeUrl);
  if (/name="j_username"/.test(r.text)) {
    const action = r.text.match(/<form method="post" action="([^"]+)"/)[1];
    r = await c.post(new URL(action, authorizeUrl).toString(), { j_username: user, j_password: 'password', next: formField(r.text, 'next') });
    assert.ok(r.status >= 300 && r.status < 400, `Bitbucket login: ${r.status} ${text(r.text).slice(0, 300)}`);
    r = await c.follow(r);
  }
  assert.equal(r.status, 200, `consent page: ${r.status} ${text(r.text).slice(0, 300)}`);
  assert.match(r.text, /wants access to your account/);
  const action = r.text.match(/<form method="post" action="([^"]+)"/)[1];
  const hidden = Object.fromEntries([...r.text.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map((m) => [m[1], m[2]]));
  r = await c.post(new URL(action, authorizeUrl).toString(), { ...hidden, decision });
  assert.ok(r.status === 302 || r.status === 303, `consent: ${r.status} ${text(r.text).slice(0, 300)}`);
  return r.location;
}

async function integrationPage(id) {
  return admin.get(`/admin/integrations/${id}`);
}

async function testConnection(id) {
  const page = await integrationPage(id);
  const r = await admin.post(`/admin/integrations/${id}/test`, { csrf: csrfFrom(page.text) });
  assert.equal(r.status, 303, text(r.text).slice(0, 300));
  return { location: r.location, page: await admin.get(r.location) };
}

function lastTest(html) {
  const m = html.match(/<th scope="row">Last test<\/th><td>([\s\S]*?)<\/td>/);
  return m ? text(m[1]) : '';
}

// Restart the bitbucket service, with extra environment (faketime) or without.
async function restartBitbucket(extra = {}) {
  const health = sys.procs.bitbucket.env.PORTICO_HEALTH_ADDR;
  await sys.kill('bitbucket');
  sys.start('bitbucket', { PORTICO_HEALTH_ADDR: health, ...extra });
  await sys.ready();
}

before(async () => {
  // A revoked token must show on the next account page: the web's
  // repository cache (tests/system/cache.test.mjs) is off here.
  sys = await startPortico({ name: 'oauth1', emulatorVersion: VERSION, env: { PORTICO_REPOSITORY_CACHE_SECONDS: '0' } });
  emuK = await startEmulator({ version: VERSION, logDir: sys.logDir });
  emuS = await startEmulator({ version: VERSION, logDir: sys.logDir });
  admin = await setupAdmin(sys);
  A = await createOAuth1(admin, sys.emulatorUrl, 'Old Bitbucket');
  K = await createOAuth1(admin, emuK.url, 'Unlinked Bitbucket');
  S = await createOAuth1(admin, emuS.url, 'Mislinked Bitbucket');
});

after(async () => {
  if (emuK) await emuK.stop();
  if (emuS) await emuS.stop();
  if (sys) await sys.stop();
});

test('the integration page shows the Consumer Key and Public Key; each integration has its own', async () => {
  const t = text(A.page.text);
  assert.match(t, /OAuth version OAuth 1/);
  assert.match(t, /Bitbucket version 7\.6\.0/);
  assert.match(A.page.text, /<label for="consumer-key">Consumer Key<\/label>/);
  assert.match(A.page.text, /<label for="public-key">Public Key<\/label>/);
  assert.match(t, /Incoming Authentication/);
  assert.doesNotMatch(A.page.text, /PRIVATE KEY/);
  assert.notEqual(A.consumerKey, K.consumerKey);
  assert.notEqual(A.publicKey, K.publicKey);
  assert.match(A.page.text, new RegExp(`value="${sys.webUrl}/oauth/callback/${A.id}"`));
});

test('Test connection before the application link has the consumer: "does not know this consumer key yet"', async () => {
  const { location, page } = await testConnection(A.id);
  assert.equal(location, `/admin/integrations/${A.id}?tested=oauth1_link`);
  assert.match(text(page.text), /Bitbucket does not know this consumer key \/ public key yet/);
  assert.match(lastTest(page.text), /does not know this consumer key yet: finish the application link's Incoming Authentication/);
  // Registering the consumer (the application link's Incoming Authentication) fixes it.
  const reg = await sys.emulator.admin('applinks/oauth1', { name: 'Portico', consumer_key: A.consumerKey, public_key: A.publicKey });
  assert.equal(reg.status, 201, reg.text);
  const again = await testConnection(A.id);
  assert.equal(again.location, `/admin/integrations/${A.id}?tested=ok`);
  assert.match(lastTest(again.page.text), /^\s*OK/);
});

test('full OAuth 1 login through Bitbucket\'s login and consent pages; the account lists repositories', async () => {
  const before1 = (await sys.emulator.admin('stats', undefined, 'GET')).json.oauth1;
  const c = new Client(sys.webUrl);
  const start = await startLogin(c, A.id, '/account');
  const auth = new URL(start.location);
  assert.equal(`${auth.origin}${auth.pathname}`, `${sys.emulatorUrl}/plugins/servlet/oauth/authorize`);
  assert.deepEqual([...auth.searchParams.keys()], ['oauth_token']);
  const requestToken = auth.searchParams.get('oauth_token');
  assert.ok(requestToken.length >= 16);
  const binding = start.headers.getSetCookie().find((l) => l.startsWith('portico_login='));
  assert.match(binding, /^portico_login=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax$/);

  const callback = await authorize(c, start.location, { user: 'jdoe' });
  const cb = new URL(callback);
  assert.equal(`${cb.origin}${cb.pathname}`, `${sys.webUrl}/oauth/callback/${A.id}`);
  assert.equal(cb.searchParams.get('oauth_token'), requestToken);
  const verifier = cb.searchParams.get('oauth_verifier');
  assert.ok(verifier && verifier !== 'denied');

  const r = await c.get(callback);
  assert.equal(r.status, 303, text(r.text));
  assert.equal(r.location, '/account');
  assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
  assert.ok(c.cookie('portico_session'), 'signed in');
  assert.equal(c.cookie('portico_login'), undefined, 'the binding cookie is cleared');

  const acct = await c.get('/account');
  assert.equal(acct.status, 200);
  const t = text(acct.text);
  assert.match(t, /John Doe/);
  assert.match(t, /Old Bitbucket/);
  assert.match(acct.text, /<table class="repositories">/);
  const rows = acct.text.match(/<tr><td>/g) || [];
  assert.ok(rows.length >= 25, `rows: ${rows.length}`);
  assert.match(t, /Next page/, 'jdoe reads 45 repositories');
  const p2 = await c.get(`/account?start=${acct.text.match(/href="\/account\?start=(\d+)#repositories">Next page/)[1]}`);
  assert.equal(p2.status, 200);
  assert.match(p2.text, /<table class="repositories">/);

  // Every leg was signed, and the REST calls too: OAuth 1 all the way.
  const after1 = (await sys.emulator.admin('stats', undefined, 'GET')).json.oauth1;
  assert.ok(after1.request_tokens > before1.request_tokens);
  assert.equal(after1.access_tokens, before1.access_tokens + 1);
  assert.ok(after1.signed_requests - before1.signed_requests >= 5, JSON.stringify(after1));
  const log = (await sys.emulator.admin('requests', undefined, 'GET')).json;
  const rest = log.filter((e) => /\/rest\/api\/1\.0\/(repos|users)/.test(e.path) || e.path.endsWith('/applinks/whoami'));
  assert.ok(rest.length >= 3, JSON.stringify(rest));
  for (const e of rest) assert.match(String(e.auth_scheme), /oauth/i, JSON.stringify(e));

  // The request token and verifier stay out of every log line.
  const logs = sys.allLogs();
  for (const v of [requestToken, verifier, c.cookie('portico_session')]) assert.ok(!logs.includes(v), 'a secret in the logs');
  assert.doesNotMatch(logs, /oauth_token=|oauth_token_secret|PRIVATE KEY/);
});

test('a replayed callback (the same oauth_token twice) is "already used" in another browser; the one it signed in goes to its account', async () => {
  const c = new Client(sys.webUrl);
  const start = await startLogin(c, A.id);
  const binding = c.cookie('portico_login');
  const callback = await authorize(c, start.location, { user: 'user11' });
  assert.equal((await c.get(callback)).status, 303);
  const session = c.cookie('portico_session');
  c.setCookie('portico_login', binding);
  const again = await c.get(callback);
  assert.equal(again.status, 303, text(again.text));
  assert.equal(again.location, '/account');
  assert.equal(c.cookie('portico_session'), session, 'the replay changed nothing');
  const fresh = new Client(sys.webUrl);
  await startLogin(fresh, A.id);
  const refused = await fresh.get(callback);
  assert.equal(refused.status, 400);
  assert.match(text(refused.text), /This sign-in link has expired or was already used: start again/);
  assert.equal(fresh.cookie('portico_session'), undefined);
  const other = new Client(sys.webUrl);
  const r = await other.get(callback);
  assert.equal(r.status, 400);
  assert.match(text(r.text), /already used/);
  assert.equal(other.cookie('portico_session'), undefined);
});

test('an OAuth 1 callback opened in another browser is refused and does not burn the login', async () => {
  const victim = new Client(sys.webUrl);
  const start = await startLogin(victim, A.id);
  const callback = await authorize(victim, start.location, { user: 'user12' });
  const attacker = new Client(sys.webUrl);
  await startLogin(attacker, A.id);
  const r = await attacker.get(callback);
  assert.equal(r.status, 403);
  assert.match(text(r.text), /started in another browser/);
  assert.equal(attacker.cookie('portico_session'), undefined);
  // The callback at another integration's address: the mix-up defence.
  const wrong = await victim.get(callback.replace(`/oauth/callback/${A.id}?`, `/oauth/callback/${K.id}?`));
  assert.equal(wrong.status, 403);
  assert.match(text(wrong.text), /another Bitbucket integration/);
  const ok = await victim.get(callback);
  assert.equal(ok.status, 303, text(ok.text));
});

test('Deny in Bitbucket (oauth_verifier=denied): a clear page, the login consumed, nobody created', async () => {
  const c = new Client(sys.webUrl);
  const start = await startLogin(c, A.id);
  const binding = c.cookie('portico_login');
  const callback = await authorize(c, start.location, { user: 'zoë', decision: 'deny' });
  assert.equal(new URL(callback).searchParams.get('oauth_verifier'), 'denied');
  const r = await c.get(callback);
  assert.equal(r.status, 403);
  const t = text(r.text);
  assert.match(t, /You declined access in Bitbucket/);
  assert.match(t, /choose Allow/);
  assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
  assert.equal(c.cookie('portico_session'), undefined);
  c.setCookie('portico_login', binding);
  assert.match(text((await c.get(callback)).text), /expired or was already used/);

  // Nothing stored: no user, no identity for zoë; the audit log says why.
  const users = await admin.get('/admin/users');
  assert.equal(users.status, 200);
  assert.match(users.text, /jdoe/);
  assert.doesNotMatch(users.text, /zo(ë|&#235;|&#xeb;)|Ångström|zoe@example\.com/i);
  const audit = text((await admin.get('/admin/audit')).text);
  assert.match(audit, /login\.failed[^]*denied/);
  const stats = (await sys.emulator.admin('stats', undefined, 'GET')).json;
  assert.ok(stats.authorize.denied >= 1);
});

test('a consumer Bitbucket does not know: a clear error at login start and in Test connection', async () => {
  const c = new Client(sys.webUrl);
  const r = await c.get(`/login/start/${K.id}`);
  assert.equal(r.status, 502);
  const t = text(r.text);
  assert.match(t, /Bitbucket does not know Portico's consumer key yet/);
  assert.match(t, /Incoming Authentication/);
  assert.match(t, /Consumer Key and Public Key/);
  assert.equal(c.cookie('portico_login'), undefined, 'no login was started');
  assert.doesNotMatch(r.text, new RegExp(K.consumerKey), 'the page does not echo the key');
  const { location, page } = await testConnection(K.id);
  assert.equal(location, `/admin/integrations/${K.id}?tested=oauth1_link`);
  assert.match(lastTest(page.text), /does not know this consumer key yet/);
  const audit = text((await admin.get('/admin/audit')).text);
  assert.match(audit, /login\.failed[^]*consumer_key_unknown/);
});

test('a public key that does not match (signature_invalid): a clear error at login start and in Test connection', async () => {
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  const reg = await emuS.admin('applinks/oauth1', { name: 'Portico', consumer_key: S.consumerKey, public_key: publicKey });
  assert.equal(reg.status, 201, reg.text);
  const c = new Client(sys.webUrl);
  const r = await c.get(`/login/start/${S.id}`);
  assert.equal(r.status, 502);
  const t = text(r.text);
  assert.match(t, /Bitbucket could not verify Portico's signature/);
  assert.match(t, /Public Key/);
  const { location, page } = await testConnection(S.id);
  assert.equal(location, `/admin/integrations/${S.id}?tested=oauth1_link`);
  assert.match(lastTest(page.text), /does not know this public key yet/);
  const stats = (await emuS.admin('stats', undefined, 'GET')).json.oauth1;
  assert.ok(stats.failures >= 2);
  assert.equal(stats.request_tokens, 0);
});

test('a clock 10 minutes behind (timestamp_refused): the message says the clocks must agree', async () => {
  assert.ok(LIBFAKETIME, 'libfaketime is missing: run `make deps` (scripts/deps.sh installs faketime)');
  await restartBitbucket({ LD_PRELOAD: LIBFAKETIME, FAKETIME: '-10m', FAKETIME_DONT_FAKE_MONOTONIC: '1', FAKETIME_NO_CACHE: '1' });
  try {
    const c = new Client(sys.webUrl);
    const r = await c.get(`/login/start/${A.id}`);
    assert.equal(r.status, 502, text(r.text).slice(0, 400));
    const t = text(r.text);
    assert.match(t, /The clocks of Portico and Bitbucket disagree/);
    assert.match(t, /NTP/);
    const { location, page } = await testConnection(A.id);
    assert.equal(location, `/admin/integrations/${A.id}?tested=clock`);
    assert.match(text(page.text), /clocks of Portico and Bitbucket must agree/);
    assert.match(lastTest(page.text), /clocks of Portico and Bitbucket must agree/);
  } finally {
    await restartBitbucket();
  }
  // With the clock right again, signing in works again.
  const c = new Client(sys.webUrl);
  const start = await startLogin(c, A.id);
  const r = await c.get(await authorize(c, start.location, { user: 'user13' }));
  assert.equal(r.status, 303, text(r.text));
});

test('a revoked OAuth 1 token: the account page says to log in again, and that works', async () => {
  const c = new Client(sys.webUrl);
  const start = await startLogin(c, A.id);
  assert.equal((await c.get(await authorize(c, start.location, { user: 'user14' }))).status, 303);
  assert.match((await c.get('/account')).text, /<table class="repositories">/);
  const rv = await sys.emulator.admin('tokens/revoke', { username: 'user14' });
  assert.equal(rv.status, 200, rv.text);
  assert.ok(rv.json.revoked >= 1);
  const acct = await c.get('/account');
  assert.equal(acct.status, 200);
  assert.match(text(acct.text), /Your Bitbucket authorization has expired or was revoked: log in again/);
  const again = acct.text.match(/href="(\/login\/start\/\d+\?return_to=\/account)"/);
  assert.ok(again, 'a Log in again link');
  assert.equal(again[1], `/login/start/${A.id}?return_to=/account`);
  const s2 = await c.get(again[1]);
  assert.equal(s2.status, 303);
  assert.equal((await c.get(await authorize(c, s2.location, { user: 'user14' }))).status, 303);
  assert.match((await c.get('/account')).text, /<table class="repositories">/);
});

test('the two-factor app blocking OAuth: the hint about its OAuth whitelist', async () => {
  await sys.emulator.admin('faults', { tfa_block: true });
  try {
    const c = new Client(sys.webUrl);
    const start = await startLogin(c, A.id);
    const r = await c.get(await authorize(c, start.location, { user: 'user15' }));
    assert.equal(r.status, 401);
    const t = text(r.text);
    assert.match(t, /two-factor plugin blocked the sign-in/);
    assert.match(t, /OAuth whitelist/);
    assert.equal(c.cookie('portico_session'), undefined);
  } finally {
    await sys.emulator.admin('faults', { tfa_block: false });
  }
});
