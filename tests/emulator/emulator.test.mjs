// Tests for the strict Bitbucket DC emulator.
// Run: node --test tests/emulator/   (builds the binary with make if needed;
// set BITBUCKET_EMULATOR=/path/to/bitbucket-emulator to use another build)
import '../compat.mjs';
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = process.env.BITBUCKET_EMULATOR ?? path.join(here, 'bitbucket-emulator');
const REDIRECT = 'http://127.0.0.1:9/portico/callback?integration=7';

// ---- process helpers ------------------------------------------------------

before(() => {
  if (process.env.BITBUCKET_EMULATOR) return;
  const r = spawnSync('make', ['-s', '-C', here], { stdio: 'inherit' });
  assert.equal(r.status, 0, 'building the emulator failed');
});

async function startEmulator(extra = []) {
  const child = spawn(BIN, ['--listen', '127.0.0.1:0', '--context', '/bitbucket',
    '--version', '8.9.0', '--quiet', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const base = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`emulator did not start: ${stderr}`)), 5000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/^bitbucket-emulator listening on (\S+) \(version 8\.9\.0\)\n/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`emulator exited ${code}: ${stderr}`)); });
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    base,
    child,
    exited,
    async stop() { child.kill('SIGTERM'); return exited; },
  };
}

// ---- HTTP helpers -----------------------------------------------------------

async function get(url, headers = {}) {
  return fetch(url, { headers, redirect: 'manual' });
}

async function postForm(url, fields, headers = {}) {
  return fetch(url, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(fields).toString(),
  });
}

async function admin(base, method, pathPart, body) {
  const res = await fetch(`${base}/emulator/${pathPart}`, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

function pkce() {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}

async function createApplink(base, permissions = ['REPO_READ']) {
  const r = await admin(base, 'POST', 'applinks', { name: 'Portico <dev>', redirect_url: REDIRECT, permissions });
  assert.equal(r.status, 201);
  assert.match(r.body.client_id, /^[0-9a-f]{32}$/);
  assert.match(r.body.client_secret, /^[0-9a-f]{64}$/);
  return r.body;
}

function authorizeUrl(base, app, overrides = {}) {
  const p = pkce();
  const params = {
    client_id: app.client_id,
    redirect_uri: REDIRECT,
    response_type: 'code',
    state: crypto.randomBytes(16).toString('base64url'),
    scope: 'REPO_READ',
    code_challenge: p.challenge,
    code_challenge_method: 'S256',
    ...overrides,
  };
  for (const k of Object.keys(params)) if (params[k] === undefined) delete params[k];
  return { url: `${base}/rest/oauth2/latest/authorize?${new URLSearchParams(params)}`, params, verifier: p.verifier };
}

function callbackParams(res) {
  assert.equal(res.status, 302, 'expected a redirect to the client');
  const loc = new URL(res.headers.get('location'));
  assert.equal(`${loc.origin}${loc.pathname}`, 'http://127.0.0.1:9/portico/callback');
  assert.equal(loc.searchParams.get('integration'), '7', 'the redirect_uri query must be kept');
  return loc.searchParams;
}

async function tokenRequest(base, fields, headers) {
  const res = await postForm(`${base}/rest/oauth2/latest/token`, fields, headers);
  const body = await res.json();
  return { res, body };
}

// Runs authorize (auto-approved as `user`) and exchanges the code.
async function login(base, app, user = 'jdoe') {
  const a = authorizeUrl(base, app);
  const res = await get(a.url, { 'X-Emulator-User': encodeURIComponent(user) });
  const cb = callbackParams(res);
  assert.equal(cb.get('state'), a.params.state);
  const code = cb.get('code');
  const { res: tr, body } = await tokenRequest(base, {
    grant_type: 'authorization_code', code, redirect_uri: REDIRECT,
    code_verifier: a.verifier, client_id: app.client_id, client_secret: app.client_secret,
  });
  assert.equal(tr.status, 200, JSON.stringify(body));
  return { ...body, code, verifier: a.verifier };
}

function bearer(token) {
  return { authorization: `Bearer ${token}` };
}

function htmlUnescape(s) {
  return s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

function hiddenField(html, name) {
  const m = html.match(new RegExp(`name="${name}" value="([^"]*)"`));
  assert.ok(m, `hidden field ${name} missing`);
  return htmlUnescape(m[1]);
}

// ---- OAuth 1 signing (RFC 5849, RSA-SHA1) -------------------------------------

const enc = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

function oauth1Header({ method, url, consumerKey, privateKey, token, extra = {}, form = {}, timestamp, nonce }) {
  const u = new URL(url);
  const oauth = {
    oauth_consumer_key: consumerKey,
    oauth_nonce: nonce ?? crypto.randomBytes(16).toString('hex'),
    oauth_signature_method: 'RSA-SHA1',
    oauth_timestamp: String(timestamp ?? Math.floor(Date.now() / 1000)),
    oauth_version: '1.0',
    ...(token ? { oauth_token: token } : {}),
    ...extra,
  };
  const pairs = [...u.searchParams.entries(), ...Object.entries(oauth), ...Object.entries(form)]
    .map(([k, v]) => [enc(k), enc(v)])
    .sort((a, b) => (a[0] === b[0] ? (a[1] < b[1] ? -1 : 1) : (a[0] < b[0] ? -1 : 1)));
  const normalized = pairs.map(([k, v]) => `${k}=${v}`).join('&');
  const baseString = [method, enc(`${u.protocol}//${u.host}${u.pathname}`), enc(normalized)].join('&');
  const signature = crypto.sign('RSA-SHA1', Buffer.from(baseString), privateKey).toString('base64');
  const all = { ...oauth, oauth_signature: signature };
  return {
    header: `OAuth realm="${u.origin}", ${Object.entries(all).map(([k, v]) => `${enc(k)}="${enc(v)}"`).join(', ')}`,
    oauth: all,
  };
}

function problemOf(res, body) {
  return new URLSearchParams(body).get('oauth_problem');
}

// =============================================================================

describe('auto-approve instance', () => {
  let emu;
  let base;
  let app;

  before(async () => {
    emu = await startEmulator(['--auto-approve', 'jdoe', '--code-ttl', '2']);
    base = emu.base;
    app = await createApplink(base);
  });
  after(async () => {
    const { code, signal } = await emu.stop();
    assert.equal(code, 0, `emulator exit code (signal ${signal})`);
  });

  test('application-properties needs no auth and has string values', async () => {
    for (const v of ['1.0', 'latest']) {
      const res = await get(`${base}/rest/api/${v}/application-properties`);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), {
        version: '8.9.0', buildNumber: '8009000', buildDate: '1616539597394', displayName: 'Bitbucket',
      });
      assert.equal(res.headers.get('x-ausername'), null);
    }
  });

  test('doubled slash and paths outside the context get Jersey 404', async () => {
    for (const url of [`${base}//rest/api/1.0/repos`, base.replace('/bitbucket', '') + '/rest/api/1.0/repos',
      `${base}/rest/api/1.0/nope`, `${base}/rest/api/1.0/users/`]) {
      const res = await get(url);
      assert.equal(res.status, 404, url);
      const body = await res.json();
      assert.equal(body['status-code'], 404);
      assert.match(body.message, /^null for uri: http:\/\/127\.0\.0\.1:\d+\//);
    }
    const body = await (await get(`${base}//rest/api/1.0/repos`)).json();
    assert.ok(body.message.endsWith('/bitbucket//rest/api/1.0/repos'), body.message);
  });

  test('authorize with a wrong redirect_uri: 400 page, no redirect', async () => {
    for (const redirect_uri of [REDIRECT + '&x=1', 'http://127.0.0.1:9/portico/callback', REDIRECT.toUpperCase(), undefined]) {
      const a = authorizeUrl(base, app, { redirect_uri });
      const res = await get(a.url, { 'X-Emulator-User': 'jdoe' });
      assert.equal(res.status, 400);
      assert.equal(res.headers.get('location'), null);
      assert.match(res.headers.get('content-type'), /^text\/html/);
      assert.match(await res.text(), /redirect/i);
    }
  });

  test('authorize with an unknown client_id: 400 page, no redirect', async () => {
    const a = authorizeUrl(base, { client_id: '0'.repeat(32) });
    const res = await get(a.url);
    assert.equal(res.status, 400);
    assert.equal(res.headers.get('location'), null);
  });

  test('authorize errors go back to the client with error and state', async () => {
    const cases = [
      [{ code_challenge: undefined }, 'invalid_request'],
      [{ code_challenge_method: undefined }, 'invalid_request'],
      [{ code_challenge_method: 's256' }, 'invalid_request'],
      [{ code_challenge_method: 'plain' }, 'invalid_request'],
      [{ code_challenge: 'short' }, 'invalid_request'],
      [{ response_type: 'token' }, 'unsupported_response_type'],
      [{ response_type: undefined }, 'invalid_request'],
      [{ scope: 'REPO_WRITE' }, 'invalid_scope'],
      [{ scope: 'REPO_READ REPO_ADMIN' }, 'invalid_scope'],
      [{ scope: 'repo_read' }, 'invalid_scope'],
    ];
    for (const [override, error] of cases) {
      const a = authorizeUrl(base, app, { ...override, state: 'st a/te+&=é' });
      const res = await get(a.url);
      const cb = callbackParams(res);
      assert.equal(cb.get('error'), error, JSON.stringify(override));
      assert.ok(cb.get('error_description'));
      assert.equal(cb.get('state'), 'st a/te+&=é', 'state must be echoed exactly');
      assert.equal(cb.get('code'), null);
    }
  });

  test('full code flow with PKCE (X-Emulator-User) and bearer identity', async () => {
    const state = 'x y+z&é/=';
    const a = authorizeUrl(base, app, { state });
    const res = await get(a.url, { 'X-Emulator-User': encodeURIComponent('jane.doe@example.com') });
    const loc = res.headers.get('location');
    assert.ok(loc.startsWith(REDIRECT + '&code='), loc);
    assert.ok(loc.includes('&state=x%20y%2Bz%26%C3%A9%2F%3D'), `state percent-encoded: ${loc}`);
    const cb = callbackParams(res);
    assert.equal(cb.get('state'), state);
    const { res: tr, body } = await tokenRequest(base, {
      grant_type: 'authorization_code', code: cb.get('code'), redirect_uri: REDIRECT,
      code_verifier: a.verifier, client_id: app.client_id, client_secret: app.client_secret,
    });
    assert.equal(tr.status, 200, JSON.stringify(body));
    assert.equal(tr.headers.get('cache-control'), 'no-store');
    assert.equal(body.token_type, 'bearer');
    assert.equal(body.expires_in, 3600);
    assert.equal(body.scope, 'REPO_READ');
    assert.match(body.access_token, /^[A-Za-z0-9_-]{43}$/);
    assert.match(body.refresh_token, /^[A-Za-z0-9_-]{43}$/);
    assert.notEqual(body.access_token, body.refresh_token);

    const who = await get(`${base}/plugins/servlet/applinks/whoami`, bearer(body.access_token));
    assert.equal(who.status, 200);
    assert.equal(await who.text(), 'jane.doe@example.com');
    assert.equal(who.headers.get('x-ausername'), 'jane.doe%40example.com');
    assert.equal(who.headers.get('x-auserid'), '102');

    const props = await get(`${base}/rest/api/latest/application-properties`, bearer(body.access_token));
    assert.equal(props.headers.get('x-ausername'), 'jane.doe%40example.com');
  });

  test('non-ASCII username is URL-encoded in X-AUSERNAME', async () => {
    const t = await login(base, app, 'zoë');
    const res = await get(`${base}/rest/api/1.0/users?limit=1`, bearer(t.access_token));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-ausername'), 'zo%C3%AB');
    assert.equal(res.headers.get('x-auserid'), '103');
  });

  test('a code is single use, and its reuse revokes the tokens it gave', async () => {
    const t = await login(base, app);
    assert.equal((await get(`${base}/rest/api/1.0/repos?permission=REPO_READ`, bearer(t.access_token))).status, 200);
    const { res, body } = await tokenRequest(base, {
      grant_type: 'authorization_code', code: t.code, redirect_uri: REDIRECT,
      code_verifier: t.verifier, client_id: app.client_id, client_secret: app.client_secret,
    });
    assert.equal(res.status, 400);
    assert.equal(body.error, 'invalid_grant');
    const after1 = await get(`${base}/rest/api/1.0/repos?permission=REPO_READ`, bearer(t.access_token));
    assert.equal(after1.status, 401, 'access token from a replayed code must be revoked');
    const refresh = await tokenRequest(base, {
      grant_type: 'refresh_token', refresh_token: t.refresh_token, redirect_uri: REDIRECT,
      client_id: app.client_id, client_secret: app.client_secret,
    });
    assert.equal(refresh.body.error, 'invalid_grant', 'refresh token from a replayed code must be revoked');
  });

  test('wrong verifier fails and burns the code', async () => {
    const a = authorizeUrl(base, app);
    const code = callbackParams(await get(a.url)).get('code');
    const fields = {
      grant_type: 'authorization_code', code, redirect_uri: REDIRECT,
      code_verifier: pkce().verifier, client_id: app.client_id, client_secret: app.client_secret,
    };
    const bad = await tokenRequest(base, fields);
    assert.equal(bad.res.status, 400);
    assert.equal(bad.body.error, 'invalid_grant');
    assert.match(bad.res.headers.get('content-type'), /^application\/json;charset=UTF-8/);
    const retry = await tokenRequest(base, { ...fields, code_verifier: a.verifier });
    assert.equal(retry.body.error, 'invalid_grant');
  });

  test('token request validation', async () => {
    const a = authorizeUrl(base, app);
    const code = callbackParams(await get(a.url)).get('code');
    const good = {
      grant_type: 'authorization_code', code, redirect_uri: REDIRECT,
      code_verifier: a.verifier, client_id: app.client_id, client_secret: app.client_secret,
    };
    const basic = Buffer.from(`${app.client_id}:${app.client_secret}`).toString('base64');
    const noSecret = { ...good };
    delete noSecret.client_secret;
    const basicOnly = await tokenRequest(base, noSecret, { authorization: `Basic ${basic}` });
    assert.equal(basicOnly.res.status, 401);
    assert.equal(basicOnly.body.error, 'invalid_client');

    const wrongSecret = await tokenRequest(base, { ...good, client_secret: 'f'.repeat(64) });
    assert.equal(wrongSecret.res.status, 401);
    assert.equal(wrongSecret.body.error, 'invalid_client');

    const pw = await tokenRequest(base, { ...good, grant_type: 'password' });
    assert.equal(pw.body.error, 'unsupported_grant_type');
    const cc = await tokenRequest(base, { ...good, grant_type: 'client_credentials' });
    assert.equal(cc.body.error, 'unsupported_grant_type');

    const noVerifier = { ...good };
    delete noVerifier.code_verifier;
    assert.equal((await tokenRequest(base, noVerifier)).body.error, 'invalid_request');

    // None of the failures above touched the code: Atlassian-style query
    // string parameters still work.
    const res = await fetch(`${base}/rest/oauth2/latest/token?${new URLSearchParams(good)}`, { method: 'POST' });
    assert.equal(res.status, 200, await res.clone().text());
    assert.ok((await res.json()).access_token);
  });

  test('redirect_uri on the token request must match', async () => {
    const a = authorizeUrl(base, app);
    const code = callbackParams(await get(a.url)).get('code');
    const r = await tokenRequest(base, {
      grant_type: 'authorization_code', code, redirect_uri: 'http://127.0.0.1:9/portico/callback',
      code_verifier: a.verifier, client_id: app.client_id, client_secret: app.client_secret,
    });
    assert.equal(r.body.error, 'invalid_grant');
  });

  test('refresh rotates: new pair, old refresh and old access die', async () => {
    const t = await login(base, app);
    const fields = {
      grant_type: 'refresh_token', refresh_token: t.refresh_token, redirect_uri: REDIRECT,
      client_id: app.client_id, client_secret: app.client_secret,
    };
    const r1 = await tokenRequest(base, fields);
    assert.equal(r1.res.status, 200, JSON.stringify(r1.body));
    assert.notEqual(r1.body.access_token, t.access_token);
    assert.notEqual(r1.body.refresh_token, t.refresh_token);
    assert.equal(r1.body.scope, 'REPO_READ');

    const old = await get(`${base}/rest/api/1.0/users/jdoe`, bearer(t.access_token));
    assert.equal(old.status, 401);
    assert.ok((await old.json()).errors[0].message);
    const fresh = await get(`${base}/rest/api/1.0/users/jdoe`, bearer(r1.body.access_token));
    assert.equal(fresh.status, 200);

    const r2 = await tokenRequest(base, fields);
    assert.equal(r2.res.status, 400);
    assert.equal(r2.body.error, 'invalid_grant');
    const stats = await admin(base, 'GET', 'stats');
    assert.ok(stats.body.refreshes >= 1);
    assert.ok(stats.body.failed_refreshes >= 1);
    assert.ok(stats.body.refresh_token_reuse >= 1);
  });

  test('refresh_kept fault: a new access token only, the refresh token lives on', async () => {
    const t = await login(base, app);
    const fields = {
      grant_type: 'refresh_token', refresh_token: t.refresh_token, redirect_uri: REDIRECT,
      client_id: app.client_id, client_secret: app.client_secret,
    };
    await admin(base, 'POST', 'faults', { refresh_kept: true });
    try {
      for (let i = 0; i < 2; i++) {
        const r = await tokenRequest(base, fields);
        assert.equal(r.res.status, 200, JSON.stringify(r.body));
        assert.equal(r.body.refresh_token, undefined);
        assert.notEqual(r.body.access_token, t.access_token);
        const fresh = await get(`${base}/rest/api/1.0/users/jdoe`, bearer(r.body.access_token));
        assert.equal(fresh.status, 200);
      }
      assert.equal((await get(`${base}/rest/api/1.0/users/jdoe`, bearer(t.access_token))).status, 401);
    } finally {
      await admin(base, 'POST', 'faults', { refresh_kept: false });
    }
  });

  test('refresh without redirect_uri: bare invalid_grant', async () => {
    const t = await login(base, app);
    const r = await tokenRequest(base, {
      grant_type: 'refresh_token', refresh_token: t.refresh_token,
      client_id: app.client_id, client_secret: app.client_secret,
    });
    assert.equal(r.res.status, 400);
    assert.deepEqual(r.body, { error: 'invalid_grant' });
  });

  test('whoami: anonymous and bad bearer give 200 with empty body', async () => {
    const anon = await get(`${base}/plugins/servlet/applinks/whoami`);
    assert.equal(anon.status, 200);
    assert.equal(await anon.text(), '');
    assert.equal(anon.headers.get('x-ausername'), null);
    const bad = await get(`${base}/plugins/servlet/applinks/whoami`, bearer('nope'));
    assert.equal(bad.status, 200);
    assert.equal(await bad.text(), '');
    const rest = await get(`${base}/rest/api/1.0/repos`, bearer('nope'));
    assert.equal(rest.status, 401);
    const body = await rest.json();
    assert.equal(body.errors.length, 1);
    assert.equal(body.errors[0].context, null);
    assert.equal(typeof body.errors[0].exceptionName, 'string');
  });

  test('users/{name} is 404, users/{slug} is 200', async () => {
    const t = await login(base, app);
    const byName = await get(`${base}/rest/api/1.0/users/${encodeURIComponent('jane.doe@example.com')}`, bearer(t.access_token));
    assert.equal(byName.status, 404);
    assert.ok((await byName.json()).errors[0].message.includes('does not exist'));
    const bySlug = await get(`${base}/rest/api/1.0/users/jane.doe_example.com`, bearer(t.access_token));
    assert.equal(bySlug.status, 200);
    const u = await bySlug.json();
    assert.equal(u.name, 'jane.doe@example.com');
    assert.equal(u.slug, 'jane.doe_example.com');
    assert.equal(u.id, 102);
    assert.equal(u.displayName, 'Jane "JD" Doe <script>alert(1)</script>');
    assert.equal(u.type, 'NORMAL');
    assert.equal(u.active, true);
    assert.equal(u.avatarUrl, undefined, 'avatarUrl only with avatarSize');
    assert.equal(u.links.self[0].href, `${base}/users/jane.doe_example.com`);
    const withAvatar = await (await get(`${base}/rest/api/1.0/users/zo%C3%AB?avatarSize=48`, bearer(t.access_token))).json();
    assert.equal(withAvatar.name, 'zoë');
    assert.equal(withAvatar.avatarUrl, '/bitbucket/users/zo%C3%AB/avatar.png?s=48');
    const avatar = await get(`${new URL(base).origin}${withAvatar.avatarUrl}`);
    assert.equal(avatar.status, 200);
    assert.equal(avatar.headers.get('content-type'), 'image/png');
    const anon = await get(`${base}/rest/api/1.0/users/jdoe`);
    assert.equal(anon.status, 401);
  });

  test('users?filter matches name, display name or email, authenticated only', async () => {
    const t = await login(base, app);
    const r = await (await get(`${base}/rest/api/1.0/users?filter=DOE`, bearer(t.access_token))).json();
    assert.deepEqual(r.values.map((u) => u.name).sort(), ['jane.doe@example.com', 'jdoe']);
    const z = await (await get(`${base}/rest/api/1.0/users?filter=ngstr`, bearer(t.access_token))).json();
    assert.deepEqual(z.values.map((u) => u.slug), ['zoë']);
    assert.equal((await get(`${base}/rest/api/1.0/users?filter=doe`)).status, 401);
  });

  test('repos paging follows nextPageStart, which skips', async () => {
    const t = await login(base, app);
    const seen = [];
    let start = 0;
    let skipped = false;
    let pages = 0;
    for (;;) {
      const res = await get(`${base}/rest/api/1.0/repos?permission=REPO_READ&start=${start}&limit=25`, bearer(t.access_token));
      assert.equal(res.status, 200);
      const page = await res.json();
      pages++;
      assert.equal(page.start, start);
      assert.equal(page.limit, 25);
      assert.equal(page.size, page.values.length);
      seen.push(...page.values.map((r) => `${r.project.key}/${r.slug}`));
      if (page.isLastPage) {
        assert.equal(page.nextPageStart, undefined);
        break;
      }
      assert.ok(page.nextPageStart >= page.start + page.size);
      if (page.nextPageStart > page.start + page.size) skipped = true;
      start = page.nextPageStart;
    }
    assert.equal(pages, 2);
    assert.equal(seen.length, 45);
    assert.equal(new Set(seen).size, 45, 'no duplicates when following nextPageStart');
    assert.ok(skipped, 'nextPageStart must skip at least once');
    assert.ok(seen.includes('~JDOE/sandbox-00'));
    assert.ok(seen.includes('OPEN/open-lib-00'));

    // A client computing start+size gets overlapping pages.
    const naive = await (await get(`${base}/rest/api/1.0/repos?permission=REPO_READ&start=25&limit=25`, bearer(t.access_token))).json();
    const overlap = naive.values.filter((r) => seen.slice(0, 25).includes(`${r.project.key}/${r.slug}`));
    assert.ok(overlap.length > 0);

    const repo = (await (await get(`${base}/rest/api/1.0/repos?permission=REPO_READ&limit=1`, bearer(t.access_token))).json()).values[0];
    assert.equal(repo.scmId, 'git');
    assert.equal(repo.state, 'AVAILABLE');
    assert.equal(repo.statusMessage, 'Available');
    assert.equal(repo.archived, false);
    assert.equal(repo.project.type, 'NORMAL');
    assert.deepEqual(repo.links.clone.map((l) => l.name), ['http', 'ssh']);
    assert.ok(repo.links.clone[0].href.startsWith(`${base}/scm/`));
    assert.ok(repo.links.self[0].href.endsWith('/browse'));
  });

  test('repos: anonymous, scopes, parameters', async () => {
    const anonRead = await (await get(`${base}/rest/api/1.0/repos?permission=REPO_READ`)).json();
    assert.equal(anonRead.size, 0);
    assert.equal(anonRead.isLastPage, true);
    const anon = await (await get(`${base}/rest/api/1.0/repos?limit=1000`)).json();
    assert.ok(anon.size > 0 && anon.values.every((r) => r.public));

    const jane = await login(base, app, 'jane.doe@example.com');
    const janeRepos = await (await get(`${base}/rest/api/1.0/repos?permission=REPO_READ&limit=100`, bearer(jane.access_token))).json();
    assert.equal(janeRepos.values.filter((r) => !r.public).length, 3);

    for (const q of ['start=-1', 'start=abc', 'limit=-5', 'limit=x', 'permission=READ']) {
      const res = await get(`${base}/rest/api/1.0/repos?${q}`);
      assert.equal(res.status, 400, q);
      assert.ok((await res.json()).errors[0].message);
    }
    const big = await (await get(`${base}/rest/api/1.0/repos?limit=5000`)).json();
    assert.equal(big.limit, 1000);

    // A token without scope sees only public repositories.
    const a = authorizeUrl(base, app, { scope: undefined });
    const code = callbackParams(await get(a.url)).get('code');
    const t = await tokenRequest(base, {
      grant_type: 'authorization_code', code, redirect_uri: REDIRECT,
      code_verifier: a.verifier, client_id: app.client_id, client_secret: app.client_secret,
    });
    assert.equal(t.body.scope, 'PUBLIC_REPOS');
    const pub = await (await get(`${base}/rest/api/1.0/repos?permission=REPO_READ&limit=100`, bearer(t.body.access_token))).json();
    assert.ok(pub.size > 0 && pub.values.every((r) => r.public));
  });

  test('raw file for readable repos only', async () => {
    const t = await login(base, app);
    const ok = await get(`${base}/rest/api/1.0/projects/PROJ/repos/service-01/raw/composer.json`, bearer(t.access_token));
    assert.equal(ok.status, 200);
    assert.equal(JSON.parse(await ok.text()).name, 'proj/service-01');
    const hidden = await get(`${base}/rest/api/1.0/projects/PROJ/repos/service-03/raw/composer.json`, bearer(t.access_token));
    assert.equal(hidden.status, 404);
    const missing = await get(`${base}/rest/api/1.0/projects/PROJ/repos/service-01/raw/nope.txt`, bearer(t.access_token));
    assert.equal(missing.status, 404);
    const personal = await get(`${base}/rest/api/1.0/users/jdoe/repos/sandbox-01/raw/composer.json`, bearer(t.access_token));
    assert.equal(personal.status, 200);
  });

  test('rate_limit fault: 429 with Retry-After on REST and token calls', async () => {
    const t = await login(base, app);
    const f = await admin(base, 'POST', 'faults', { rate_limit: true });
    assert.equal(f.status, 200);
    assert.equal(f.body.rate_limit, true);
    try {
      const rest = await get(`${base}/rest/api/1.0/repos?permission=REPO_READ`, bearer(t.access_token));
      assert.equal(rest.status, 429);
      assert.equal(rest.headers.get('retry-after'), '1');
      assert.ok((await rest.json()).errors[0].message);
      const tok = await postForm(`${base}/rest/oauth2/latest/token`, {
        grant_type: 'refresh_token', refresh_token: t.refresh_token, redirect_uri: REDIRECT,
        client_id: app.client_id, client_secret: app.client_secret,
      });
      assert.equal(tok.status, 429);
      assert.equal(tok.headers.get('retry-after'), '1');
      assert.equal((await admin(base, 'GET', 'stats')).status, 200, 'admin API is never faulted');
    } finally {
      await admin(base, 'POST', 'faults', { rate_limit: false });
    }
    // The refresh token was not consumed by the 429.
    const r = await tokenRequest(base, {
      grant_type: 'refresh_token', refresh_token: t.refresh_token, redirect_uri: REDIRECT,
      client_id: app.client_id, client_secret: app.client_secret,
    });
    assert.equal(r.res.status, 200);
  });

  test('status and latency faults', async () => {
    await admin(base, 'POST', 'faults', { status: 503, latency_ms: 150 });
    try {
      const t0 = Date.now();
      const res = await get(`${base}/plugins/servlet/applinks/whoami`);
      assert.equal(res.status, 503);
      assert.ok(Date.now() - t0 >= 140);
    } finally {
      const off = await admin(base, 'POST', 'faults', { status: 0, latency_ms: 0 });
      assert.deepEqual(off.body, { latency_ms: 0, status: 0, hang: false, rate_limit: false, tfa_block: false, auserid: 0, record_id: 0, record_inactive: false, oauth1_signature_invalid: false, refresh_kept: false });
    }
    assert.equal((await admin(base, 'POST', 'faults', { bogus: 1 })).status, 400);
  });

  test('auserid: X-AUSERID names another account, X-AUSERNAME does not change', async () => {
    const t = await login(base, app);
    const real = await get(`${base}/plugins/servlet/applinks/whoami`, bearer(t.access_token));
    await admin(base, 'POST', 'faults', { auserid: 4242 });
    try {
      const who = await get(`${base}/plugins/servlet/applinks/whoami`, bearer(t.access_token));
      assert.equal(who.headers.get('x-auserid'), '4242');
      assert.equal(who.headers.get('x-ausername'), 'jdoe');
      assert.notEqual(real.headers.get('x-auserid'), '4242');
    } finally {
      await admin(base, 'POST', 'faults', { auserid: 0 });
    }
    assert.equal((await admin(base, 'POST', 'faults', { auserid: -1 })).status, 400);
  });

  test('tfa_block: bearer callers are anonymous', async () => {
    const t = await login(base, app);
    await admin(base, 'POST', 'faults', { tfa_block: true });
    try {
      const who = await get(`${base}/plugins/servlet/applinks/whoami`, bearer(t.access_token));
      assert.equal(who.status, 200);
      assert.equal(await who.text(), '');
      const rest = await get(`${base}/rest/api/1.0/users/jdoe`, bearer(t.access_token));
      assert.equal(rest.status, 401);
      assert.match((await rest.json()).errors[0].message, /two-factor/i);
    } finally {
      await admin(base, 'POST', 'faults', { tfa_block: false });
    }
    assert.equal(await (await get(`${base}/plugins/servlet/applinks/whoami`, bearer(t.access_token))).text(), 'jdoe');
  });

  test('admin: expire and revoke a user\'s tokens', async () => {
    const t = await login(base, app, 'user7');
    const ex = await admin(base, 'POST', 'tokens/expire', { username: 'user7' });
    assert.equal(ex.status, 200);
    assert.ok(ex.body.expired >= 1);
    const res = await get(`${base}/rest/api/1.0/users/user7`, bearer(t.access_token));
    assert.equal(res.status, 401);
    const fields = {
      grant_type: 'refresh_token', refresh_token: t.refresh_token, redirect_uri: REDIRECT,
      client_id: app.client_id, client_secret: app.client_secret,
    };
    const r = await tokenRequest(base, fields);
    assert.equal(r.res.status, 200, 'refresh survives expiry');
    const rv = await admin(base, 'POST', 'tokens/revoke', { username: 'user7' });
    assert.ok(rv.body.revoked >= 2);
    const r2 = await tokenRequest(base, { ...fields, refresh_token: r.body.refresh_token });
    assert.equal(r2.body.error, 'invalid_grant');
    assert.equal((await admin(base, 'POST', 'tokens/revoke', { username: 'nobody' })).status, 404);
  });

  test('admin: per-user project and repository permissions, and GET project', async () => {
    const t = await login(base, app, 'user11');
    const project = (key) => get(`${base}/rest/api/1.0/projects/${key}`, bearer(t.access_token));
    const repo = (slug) => get(`${base}/rest/api/1.0/projects/PROJ/repos/${slug}`, bearer(t.access_token));
    // user11 reads five PROJ repositories (n % 8 == 3): Bitbucket shows the project.
    assert.equal((await project('PROJ')).status, 200);
    assert.equal((await project('OPEN')).status, 200, 'public');
    const nope = await project('NOPE');
    assert.equal(nope.status, 404);
    assert.match((await nope.json()).errors[0].exceptionName, /NoSuchProjectException/);
    assert.equal((await repo('service-03')).status, 200);
    assert.equal((await repo('service-04')).status, 404);
    // NONE on the project replaces the built-in grants.
    let g = await admin(base, 'POST', 'permissions', { username: 'user11', project: 'PROJ', permission: 'NONE' });
    assert.equal(g.status, 200);
    const hidden = await project('PROJ');
    assert.equal(hidden.status, 401);
    assert.match((await hidden.json()).errors[0].exceptionName, /AuthorisationException/);
    assert.equal((await repo('service-03')).status, 404);
    // A repository grant wins over the project's.
    g = await admin(base, 'POST', 'permissions', { username: 'user11', project: 'PROJ', repository: 'service-04', permission: 'REPO_READ' });
    assert.equal(g.status, 200);
    assert.equal((await repo('service-04')).status, 200);
    assert.equal((await project('PROJ')).status, 200, 'implicit project view');
    g = await admin(base, 'POST', 'permissions', { username: 'user11', project: 'PROJ', permission: 'PROJECT_READ' });
    assert.equal((await repo('service-06')).status, 200);
    assert.equal((await admin(base, 'POST', 'permissions', { username: 'user11', project: 'PROJ', permission: 'REPO_READ' })).status, 400);
    assert.equal((await admin(base, 'POST', 'permissions', { username: 'nobody', project: 'PROJ', permission: 'NONE' })).status, 404);
    assert.equal((await admin(base, 'POST', 'permissions', { username: 'user11', project: 'NOPE', permission: 'NONE' })).status, 404);
  });

  test('admin: a disabled user\'s tokens stop working and refreshes fail', async () => {
    const t = await login(base, app, 'user12');
    assert.equal((await get(`${base}/rest/api/1.0/users/user12`, bearer(t.access_token))).status, 200);
    assert.equal((await admin(base, 'POST', 'users/disable', { username: 'user12' })).status, 200);
    const res = await get(`${base}/rest/api/1.0/users/user12`, bearer(t.access_token));
    assert.equal(res.status, 401);
    const r = await tokenRequest(base, {
      grant_type: 'refresh_token', refresh_token: t.refresh_token, redirect_uri: REDIRECT,
      client_id: app.client_id, client_secret: app.client_secret,
    });
    assert.equal(r.body.error, 'invalid_grant');
    assert.equal((await admin(base, 'POST', 'users/enable', { username: 'user12' })).status, 200);
    const t2 = await login(base, app, 'user12');
    const u = await (await get(`${base}/rest/api/1.0/users/user12`, bearer(t2.access_token))).json();
    assert.equal(u.active, true);
    assert.equal((await admin(base, 'POST', 'users/disable', { username: 'nobody' })).status, 404);
  });

  test('admin: applink validation', async () => {
    assert.equal((await admin(base, 'POST', 'applinks', { name: 'x', redirect_url: '/relative' })).status, 400);
    assert.equal((await admin(base, 'POST', 'applinks', { name: 'x', redirect_url: 'ftp://h/x' })).status, 400);
    assert.equal((await admin(base, 'POST', 'applinks', { name: 'x', redirect_url: 'http://h/x#f' })).status, 400);
    assert.equal((await admin(base, 'POST', 'applinks', { name: 'x', redirect_url: 'http://h/x', permissions: ['NOPE'] })).status, 400);
    assert.equal((await admin(base, 'POST', 'applinks/oauth1', { name: 'x', consumer_key: 'k', public_key: 'garbage' })).status, 400);
    const list = await admin(base, 'GET', 'applinks');
    assert.ok(list.body.some((l) => l.client_id === app.client_id));
    assert.ok(!JSON.stringify(list.body).includes(app.client_secret), 'no secrets in the list');
  });

  test('request log records facts, never token values', async () => {
    await admin(base, 'DELETE', 'requests');
    const t = await login(base, app);
    await get(`${base}/rest/api/1.0/repos?access_token=${t.access_token}`);
    const log = (await admin(base, 'GET', 'requests')).body;
    const text = JSON.stringify(log);
    assert.ok(!text.includes(t.access_token));
    assert.ok(!text.includes(t.refresh_token));
    assert.ok(!text.includes(t.code));
    assert.ok(!text.includes(app.client_secret));
    const tokenCall = log.find((e) => e.path === '/bitbucket/rest/oauth2/latest/token');
    assert.equal(tokenCall.method, 'POST');
    assert.equal(tokenCall.grant_type, 'authorization_code');
    assert.equal(tokenCall.has_code_verifier, true);
    assert.equal(tokenCall.has_redirect_uri, true);
    assert.equal(tokenCall.query_has_token, false);
    assert.ok(tokenCall.form_keys.includes('client_secret'));
    const auth = log.find((e) => e.path === '/bitbucket/rest/oauth2/latest/authorize');
    assert.match(auth.query, /state=\*\*\*/);
    const leaked = log.find((e) => e.query_has_token);
    assert.equal(leaked.path, '/bitbucket/rest/api/1.0/repos');
    assert.match(leaked.query, /^access_token=\*\*\*$/);
  });

  test('code expires after --code-ttl', async () => {
    const a = authorizeUrl(base, app);
    const code = callbackParams(await get(a.url)).get('code');
    await new Promise((r) => setTimeout(r, 3100));
    const r = await tokenRequest(base, {
      grant_type: 'authorization_code', code, redirect_uri: REDIRECT,
      code_verifier: a.verifier, client_id: app.client_id, client_secret: app.client_secret,
    });
    assert.equal(r.body.error, 'invalid_grant');
    assert.match(r.body.error_description, /expired/);
  });

  // ---- OAuth 1.0a ------------------------------------------------------------

  describe('OAuth 1.0a', () => {
    const CALLBACK = 'http://127.0.0.1:9/portico/oauth1/callback?i=1';
    const consumerKey = 'portico-consumer';
    let privateKey;

    before(async () => {
      const pair = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
      privateKey = pair.privateKey;
      const pem = pair.publicKey.export({ type: 'spki', format: 'pem' });
      const r = await admin(base, 'POST', 'applinks/oauth1', { name: 'Portico', consumer_key: consumerKey, public_key: pem });
      assert.equal(r.status, 201);
      const pkcs1 = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'pkcs1', format: 'pem' });
      assert.match(pkcs1, /BEGIN RSA PUBLIC KEY/);
      assert.equal((await admin(base, 'POST', 'applinks/oauth1', { name: 'P1', consumer_key: 'pkcs1', public_key: pkcs1 })).status, 201);
    });

    async function signedPost(url, opts) {
      const { header } = oauth1Header({ method: 'POST', url, consumerKey, privateKey, ...opts });
      const res = await fetch(url, { method: 'POST', headers: { authorization: header } });
      return { res, body: await res.text() };
    }

    async function requestToken() {
      const { res, body } = await signedPost(`${base}/plugins/servlet/oauth/request-token`, { extra: { oauth_callback: CALLBACK } });
      assert.equal(res.status, 200, body);
      const p = new URLSearchParams(body);
      assert.equal(p.get('oauth_callback_confirmed'), 'true');
      assert.ok(p.get('oauth_token') && p.get('oauth_token_secret'));
      return p.get('oauth_token');
    }

    async function accessToken(user = 'jdoe') {
      const rt = await requestToken();
      const res = await get(`${base}/plugins/servlet/oauth/authorize?oauth_token=${encodeURIComponent(rt)}`, { 'X-Emulator-User': user });
      assert.equal(res.status, 302);
      const loc = new URL(res.headers.get('location'));
      assert.equal(`${loc.origin}${loc.pathname}`, 'http://127.0.0.1:9/portico/oauth1/callback');
      assert.equal(loc.searchParams.get('i'), '1');
      assert.equal(loc.searchParams.get('oauth_token'), rt);
      const verifier = loc.searchParams.get('oauth_verifier');
      assert.ok(verifier && verifier !== 'denied');
      const { res: ar, body } = await signedPost(`${base}/plugins/servlet/oauth/access-token`, { token: rt, extra: { oauth_verifier: verifier } });
      assert.equal(ar.status, 200, body);
      const p = new URLSearchParams(body);
      assert.equal(p.get('oauth_expires_in'), '157680000');
      assert.equal(p.get('oauth_authorization_expires_in'), '157680000');
      assert.ok(p.get('oauth_session_handle'));
      return { token: p.get('oauth_token'), requestToken: rt, verifier };
    }

    test('request-token / authorize / access-token round trip and signed REST', async () => {
      const { token, requestToken: rt, verifier } = await accessToken('jane.doe@example.com');
      const url = `${base}/plugins/servlet/applinks/whoami`;
      const { header } = oauth1Header({ method: 'GET', url, consumerKey, privateKey, token });
      const who = await get(url, { authorization: header });
      assert.equal(who.status, 200);
      assert.equal(await who.text(), 'jane.doe@example.com');
      assert.equal(who.headers.get('x-ausername'), 'jane.doe%40example.com');

      const reposUrl = `${base}/rest/api/1.0/repos?permission=REPO_READ&limit=100`;
      const signed = oauth1Header({ method: 'GET', url: reposUrl, consumerKey, privateKey, token });
      const repos = await get(reposUrl, { authorization: signed.header });
      assert.equal(repos.status, 200);
      assert.equal((await repos.json()).values.filter((r) => !r.public).length, 3);

      // request tokens are single use
      const again = await signedPost(`${base}/plugins/servlet/oauth/access-token`, { token: rt, extra: { oauth_verifier: verifier } });
      assert.equal(again.res.status, 401);
      assert.equal(problemOf(again.res, again.body), 'token_rejected');
    });

    test('the signature covers the path as sent, escapes and all', async () => {
      // Bitbucket signs the request path as it came (RFC 5849 3.4.1.2), not
      // the path decoded and encoded again: "%40" stays "%40", "%c3" "%c3".
      const { token } = await accessToken('jane.doe@example.com');
      for (const [slug, status] of [['jane.doe%40example.com', 404], ['jane.doe_example.com', 200], ['zo%c3%ab', 200]]) {
        const url = `${base}/rest/api/1.0/users/${slug}`;
        const { header } = oauth1Header({ method: 'GET', url, consumerKey, privateKey, token });
        const res = await get(url, { authorization: header });
        const body = await res.text();
        assert.equal(res.status, status, `${slug}: ${body}`);
      }
    });

    test('signature_invalid on tamper', async () => {
      const url = `${base}/plugins/servlet/oauth/request-token`;
      const { header } = oauth1Header({ method: 'POST', url, consumerKey, privateKey, extra: { oauth_callback: CALLBACK } });
      const tampered = header.replace(encodeURIComponent(CALLBACK), encodeURIComponent(CALLBACK + 'x'));
      assert.notEqual(tampered, header);
      const res = await fetch(url, { method: 'POST', headers: { authorization: tampered } });
      assert.equal(res.status, 401);
      const body = await res.text();
      assert.equal(problemOf(res, body), 'signature_invalid');
      assert.match(res.headers.get('www-authenticate'), /^OAuth realm="http:\/\/127\.0\.0\.1:\d+\/bitbucket", oauth_problem="?signature_invalid/);
      assert.match(res.headers.get('content-type'), /^application\/x-www-form-urlencoded/);

      // A signed request with a different query also fails.
      const { token } = await accessToken();
      const signed = oauth1Header({ method: 'GET', url: `${base}/rest/api/1.0/repos?limit=1`, consumerKey, privateKey, token });
      const res2 = await get(`${base}/rest/api/1.0/repos?limit=2`, { authorization: signed.header });
      assert.equal(res2.status, 401);
      assert.equal(problemOf(res2, await res2.text()), 'signature_invalid');
    });

    test('nonce_used on replay', async () => {
      const { token } = await accessToken();
      const url = `${base}/plugins/servlet/applinks/whoami`;
      const { header } = oauth1Header({ method: 'GET', url, consumerKey, privateKey, token });
      assert.equal((await get(url, { authorization: header })).status, 200);
      const replay = await get(url, { authorization: header });
      assert.equal(replay.status, 401, 'a failed OAuth request to whoami is a 401, not an empty 200');
      assert.equal(problemOf(replay, await replay.text()), 'nonce_used');
    });

    test('timestamp_refused on a stale timestamp', async () => {
      const { res, body } = await signedPost(`${base}/plugins/servlet/oauth/request-token`, {
        extra: { oauth_callback: CALLBACK }, timestamp: Math.floor(Date.now() / 1000) - 301 - 5,
      });
      assert.equal(res.status, 400);
      assert.equal(problemOf(res, body), 'timestamp_refused');
      assert.ok(new URLSearchParams(body).get('oauth_acceptable_timestamps'));
    });

    test('other problems: method, version, consumer, absent params, token', async () => {
      const url = `${base}/plugins/servlet/oauth/request-token`;
      const hmac = await signedPost(url, { extra: { oauth_callback: CALLBACK, oauth_signature_method: 'HMAC-SHA1' } });
      assert.equal(hmac.res.status, 400);
      assert.equal(problemOf(hmac.res, hmac.body), 'signature_method_rejected');
      const ver = await signedPost(url, { extra: { oauth_callback: CALLBACK, oauth_version: '2.0' } });
      assert.equal(problemOf(ver.res, ver.body), 'version_rejected');
      const { header } = oauth1Header({ method: 'POST', url, consumerKey: 'unknown', privateKey, extra: { oauth_callback: CALLBACK } });
      const unk = await fetch(url, { method: 'POST', headers: { authorization: header } });
      assert.equal(unk.status, 401);
      assert.equal(problemOf(unk, await unk.text()), 'consumer_key_unknown');
      const absent = await signedPost(url, {});
      assert.equal(absent.res.status, 400);
      assert.equal(problemOf(absent.res, absent.body), 'parameter_absent');
      assert.match(new URLSearchParams(absent.body).get('oauth_parameters_absent'), /oauth_callback/);
      const who = `${base}/plugins/servlet/applinks/whoami`;
      const bogus = oauth1Header({ method: 'GET', url: who, consumerKey, privateKey, token: 'bogus' });
      const res = await get(who, { authorization: bogus.header });
      assert.equal(res.status, 401);
      assert.equal(problemOf(res, await res.text()), 'token_rejected');
    });

    test('PKCS#1 public keys are accepted too', async () => {
      // Registered in before(); a request signed with an unrelated key fails
      // the signature, which proves the key was parsed and used.
      const url = `${base}/plugins/servlet/oauth/request-token`;
      const { header } = oauth1Header({ method: 'POST', url, consumerKey: 'pkcs1', privateKey, extra: { oauth_callback: CALLBACK } });
      const res = await fetch(url, { method: 'POST', headers: { authorization: header } });
      assert.equal(problemOf(res, await res.text()), 'signature_invalid');
    });

    test('expired and revoked OAuth 1 access tokens', async () => {
      const { token } = await accessToken('user3');
      const url = `${base}/plugins/servlet/applinks/whoami`;
      await admin(base, 'POST', 'tokens/expire', { username: 'user3' });
      const ex = await get(url, { authorization: oauth1Header({ method: 'GET', url, consumerKey, privateKey, token }).header });
      assert.equal(problemOf(ex, await ex.text()), 'token_expired');
      await admin(base, 'POST', 'tokens/revoke', { username: 'user3' });
      const rv = await get(url, { authorization: oauth1Header({ method: 'GET', url, consumerKey, privateKey, token }).header });
      assert.equal(problemOf(rv, await rv.text()), 'token_rejected');
    });
  });
});

// =============================================================================

describe('browser instance (no auto-approve)', () => {
  let emu;
  let base;
  let app;

  before(async () => {
    emu = await startEmulator([]);
    base = emu.base;
    app = await createApplink(base);
  });
  after(async () => {
    const { code } = await emu.stop();
    assert.equal(code, 0);
  });

  async function loginAs(next, username, password = 'password') {
    return postForm(`${base.replace(/\/bitbucket$/, '')}/bitbucket/j_atl_security_check`, {
      j_username: username, j_password: password, next,
    });
  }

  test('login page, wrong password, consent, Deny and Allow', async () => {
    const a = authorizeUrl(base, app, { state: 's1' });
    // X-Emulator-User is ignored without --auto-approve.
    const page = await get(a.url, { 'X-Emulator-User': 'jdoe' });
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /<label for="j_username">Username<\/label>/);
    assert.match(html, /<label for="j_password">Password<\/label>/);
    assert.match(html, /<button[^>]*>Log in<\/button>/);
    assert.match(html, /action="\/bitbucket\/j_atl_security_check"/);
    const next = hiddenField(html, 'next');
    assert.ok(next.startsWith('/bitbucket/rest/oauth2/latest/authorize?'));

    const wrong = await loginAs(next, 'jane.doe@example.com', 'nope');
    assert.equal(wrong.status, 200);
    assert.match(await wrong.text(), /Invalid username or password\./);
    assert.equal(wrong.headers.get('set-cookie'), null);

    const ok = await loginAs(next, 'jane.doe@example.com');
    assert.equal(ok.status, 302);
    assert.equal(ok.headers.get('location'), next);
    const cookie = ok.headers.getSetCookie().find((c) => c.startsWith('BBSESSIONID='));
    assert.ok(cookie);
    assert.match(cookie, /HttpOnly/);
    const session = cookie.split(';')[0];

    const consent = await get(`${new URL(base).origin}${next}`, { cookie: session });
    assert.equal(consent.status, 200);
    const chtml = await consent.text();
    assert.match(chtml, /Portico &lt;dev&gt; wants access to your account/);
    assert.match(chtml, /REPO_READ/);
    assert.ok(!chtml.includes('<script>'), 'display name must be escaped');
    assert.match(chtml, />Allow</);
    assert.match(chtml, />Deny</);
    const request = hiddenField(chtml, 'request');
    const action = `${base}/rest/oauth2/latest/authorize/decision`;

    // Without the session cookie the decision is refused.
    assert.equal((await postForm(action, { request, decision: 'allow' })).status, 400);

    const deny = await postForm(action, { request, decision: 'deny' }, { cookie: session });
    const cb = callbackParams(deny);
    assert.equal(cb.get('error'), 'access_denied');
    assert.equal(cb.get('state'), 's1');
    assert.ok(cb.get('error_description'));

    // The pending request is single use; a new authorize gives a new one.
    assert.equal((await postForm(action, { request, decision: 'allow' }, { cookie: session })).status, 400);
    const b = authorizeUrl(base, app, { state: 's2' });
    const consent2 = await (await get(b.url, { cookie: session })).text();
    const allow = await postForm(action, { request: hiddenField(consent2, 'request'), decision: 'allow' }, { cookie: session });
    const cb2 = callbackParams(allow);
    assert.equal(cb2.get('state'), 's2');
    const { res, body } = await tokenRequest(base, {
      grant_type: 'authorization_code', code: cb2.get('code'), redirect_uri: REDIRECT,
      code_verifier: b.verifier, client_id: app.client_id, client_secret: app.client_secret,
    });
    assert.equal(res.status, 200);
    assert.equal(await (await get(`${base}/plugins/servlet/applinks/whoami`, bearer(body.access_token))).text(), 'jane.doe@example.com');
  });

  test('reset forgets applinks, tokens, faults and the log', async () => {
    const other = await createApplink(base);
    const a = authorizeUrl(base, other);
    const page = await (await get(a.url)).text();
    const ok = await loginAs(hiddenField(page, 'next'), 'jdoe');
    const session = ok.headers.getSetCookie()[0].split(';')[0];
    const consent = await (await get(a.url, { cookie: session })).text();
    const allow = await postForm(`${base}/rest/oauth2/latest/authorize/decision`,
      { request: hiddenField(consent, 'request'), decision: 'allow' }, { cookie: session });
    const { body } = await tokenRequest(base, {
      grant_type: 'authorization_code', code: callbackParams(allow).get('code'), redirect_uri: REDIRECT,
      code_verifier: a.verifier, client_id: other.client_id, client_secret: other.client_secret,
    });
    assert.equal(await (await get(`${base}/plugins/servlet/applinks/whoami`, bearer(body.access_token))).text(), 'jdoe');
    await admin(base, 'POST', 'faults', { latency_ms: 1 });

    assert.equal((await admin(base, 'POST', 'reset')).status, 200);
    assert.deepEqual((await admin(base, 'GET', 'applinks')).body, []);
    assert.deepEqual((await admin(base, 'GET', 'requests')).body, []);
    assert.equal((await admin(base, 'GET', 'faults')).body.latency_ms, 0);
    assert.equal((await get(`${base}/rest/api/1.0/users/jdoe`, bearer(body.access_token))).status, 401);
    assert.equal((await get(a.url)).status, 400, 'the client is gone');
    app = await createApplink(base);
  });

  test('login next must stay local', async () => {
    const res = await loginAs('https://evil.example/', 'jdoe');
    assert.equal(res.status, 302);
    assert.ok(res.headers.get('location').startsWith('/bitbucket/'));
    const res2 = await loginAs('/bitbucket//evil.example/', 'jdoe');
    assert.ok(!res2.headers.get('location').startsWith('/bitbucket//'));
  });

  test('OAuth 1 Deny gives verifier=denied and then permission_denied', async () => {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = publicKey.export({ type: 'spki', format: 'pem' });
    assert.equal((await admin(base, 'POST', 'applinks/oauth1', { name: 'Portico', consumer_key: 'ck', public_key: pem })).status, 201);
    const cbUrl = 'http://127.0.0.1:9/cb1';
    const rtUrl = `${base}/plugins/servlet/oauth/request-token`;
    const h = oauth1Header({ method: 'POST', url: rtUrl, consumerKey: 'ck', privateKey, extra: { oauth_callback: cbUrl } });
    const rtRes = await fetch(rtUrl, { method: 'POST', headers: { authorization: h.header } });
    const rt = new URLSearchParams(await rtRes.text()).get('oauth_token');
    assert.ok(rt);

    const authUrl = `${base}/plugins/servlet/oauth/authorize?oauth_token=${encodeURIComponent(rt)}`;
    const loginPage = await (await get(authUrl)).text();
    const ok = await loginAs(hiddenField(loginPage, 'next'), 'jdoe');
    const session = ok.headers.getSetCookie()[0].split(';')[0];
    const consent = await (await get(authUrl, { cookie: session })).text();
    assert.match(consent, /Portico wants access to your account/);
    const deny = await postForm(`${base}/plugins/servlet/oauth/authorize`, {
      oauth_token: hiddenField(consent, 'oauth_token'), atl_token: hiddenField(consent, 'atl_token'), decision: 'deny',
    }, { cookie: session });
    assert.equal(deny.status, 302);
    const loc = new URL(deny.headers.get('location'));
    assert.equal(loc.searchParams.get('oauth_token'), rt);
    assert.equal(loc.searchParams.get('oauth_verifier'), 'denied');

    const atUrl = `${base}/plugins/servlet/oauth/access-token`;
    const ah = oauth1Header({ method: 'POST', url: atUrl, consumerKey: 'ck', privateKey, token: rt, extra: { oauth_verifier: 'denied' } });
    const at = await fetch(atUrl, { method: 'POST', headers: { authorization: ah.header } });
    assert.equal(at.status, 401);
    assert.equal(problemOf(at, await at.text()), 'permission_denied');
  });
});

// =============================================================================
// The application-link pages an administrator clicks through (applinks.c).

// A browser stand-in: a cookie jar and redirects followed by hand.
class Browser {
  constructor(base) {
    this.origin = new URL(base).origin;
    this.cookies = new Map();
  }

  abs(url) { return url.startsWith('/') ? this.origin + url : url; }

  headers(extra = {}) {
    if (!this.cookies.size) return extra;
    return { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '), ...extra };
  }

  store(res) {
    for (const c of res.headers.getSetCookie()) {
      const [pair, ...attrs] = c.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      if (!value || attrs.some((a) => /^\s*max-age=0\s*$/i.test(a))) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  async get(url, extra) {
    const res = await get(this.abs(url), this.headers(extra));
    this.store(res);
    return res;
  }

  async post(url, fields, extra) {
    const res = await postForm(this.abs(url), fields, this.headers(extra));
    this.store(res);
    return res;
  }

  // Follows redirects within the emulator; returns the last response.
  async follow(res) {
    for (let hops = 0; res.status === 302; hops++) {
      assert.ok(hops < 5, 'too many redirects');
      const loc = res.headers.get('location');
      assert.ok(loc.startsWith('/bitbucket/'), `redirect leaves the emulator: ${loc}`);
      res = await this.get(loc);
    }
    return res;
  }
}

function readonlyValue(html, id) {
  const m = html.match(new RegExp(`id="${id}" readonly value="([^"]*)"`));
  assert.ok(m, `read-only field ${id} missing`);
  return htmlUnescape(m[1]);
}

describe('application links pages (admin)', () => {
  const LIST = '/bitbucket/plugins/servlet/applinks/listApplicationLinks';
  const CREATE = '/bitbucket/plugins/servlet/applinks/createApplicationLink';
  let emu;
  let base;

  before(async () => {
    // --auto-approve only so that the login() helper can run the OAuth flow;
    // the admin pages never look at it.
    emu = await startEmulator(['--auto-approve', 'jdoe']);
    base = emu.base;
  });
  after(async () => {
    const { code } = await emu.stop();
    assert.equal(code, 0);
  });

  async function logIn(username, password = 'password') {
    const br = new Browser(base);
    const res = await br.get(LIST);
    assert.equal(res.status, 302);
    const login = await br.follow(res);
    const html = await login.text();
    const ok = await br.post('/bitbucket/j_atl_security_check', { j_username: username, j_password: password, next: hiddenField(html, 'next') });
    assert.equal(ok.status, 302);
    assert.equal(ok.headers.get('location'), LIST);
    return br;
  }

  // Opens Create link and returns the CSRF token of the first form.
  async function startCreate(br) {
    const res = await br.get(CREATE);
    assert.equal(res.status, 200);
    const html = await res.text();
    assert.equal(hiddenField(html, 'step'), 'type');
    return { html, token: hiddenField(html, 'atl_token') };
  }

  async function createOAuth2(br, { name = 'Portico', redirect = REDIRECT, permissions = ['REPO_READ'] } = {}) {
    const { token } = await startCreate(br);
    const type = await br.post(CREATE, { atl_token: token, step: 'type', application_type: 'external', direction: 'incoming' });
    assert.equal(type.status, 200);
    const form = await type.text();
    assert.equal(hiddenField(form, 'step'), 'oauth2');
    assert.equal(hiddenField(form, 'atl_token'), token, 'one token for the whole session');
    const saved = await br.post(CREATE, [['atl_token', token], ['step', 'oauth2'], ['name', name],
      ['redirect_url', redirect], ...permissions.map((p) => ['permission', p])]);
    assert.equal(saved.status, 302, await saved.clone().text());
    assert.match(saved.headers.get('location'), /\/configureApplicationLink\?client_id=[0-9a-f]{32}&created=1$/);
    const page = await br.follow(saved);
    assert.equal(page.status, 200);
    const html = await page.text();
    return { html, location: saved.headers.get('location'), client_id: readonlyValue(html, 'client-id'), client_secret: readonlyValue(html, 'client-secret') };
  }

  async function linkCount() {
    return (await admin(base, 'GET', 'applinks')).body.length;
  }

  test('not logged in: login page, then back to the list; X-Emulator-User does not count', async () => {
    const br = new Browser(base);
    const res = await br.get(LIST, { 'X-Emulator-User': 'admin' });
    assert.equal(res.status, 302);
    assert.equal(res.headers.get('location'), `/bitbucket/login?next=${encodeURIComponent(LIST)}`);
    const html = await (await br.follow(res)).text();
    assert.match(html, /<label for="j_username">Username<\/label>/);
    assert.match(html, /<label for="j_password">Password<\/label>/);
    assert.match(html, /<button[^>]*>Log in<\/button>/);
    assert.equal(hiddenField(html, 'next'), LIST);

    const wrong = await br.post('/bitbucket/j_atl_security_check', { j_username: 'admin', j_password: 'nope', next: LIST });
    assert.match(await wrong.text(), /Invalid username or password\./);
    const ok = await br.post('/bitbucket/j_atl_security_check', { j_username: 'admin', j_password: 'password', next: LIST });
    const list = await br.follow(ok);
    assert.equal(list.status, 200);
    assert.match(list.headers.get('content-type'), /^text\/html/);
    const lhtml = await list.text();
    assert.match(lhtml, /<h1>Application links<\/h1>/);
    assert.match(lhtml, /<form method="get" action="\/bitbucket\/plugins\/servlet\/applinks\/createApplicationLink"><button type="submit" id="create-link">Create link<\/button>/);
    assert.match(lhtml, /Logged in as Bitbucket Admin \(admin\)/);

    // The other pages send a logged-out browser to the login page too.
    for (const url of [CREATE, '/bitbucket/plugins/servlet/applinks/configureApplicationLink?client_id=x']) {
      const r = await get(`${new URL(base).origin}${url}`);
      assert.equal(r.status, 302, url);
      assert.equal(r.headers.get('location'), `/bitbucket/login?next=${encodeURIComponent(url)}`);
    }
    const post = await postForm(`${new URL(base).origin}${CREATE}`, { step: 'type' });
    assert.equal(post.status, 302);
    assert.equal(post.headers.get('location'), `/bitbucket/login?next=${encodeURIComponent(LIST)}`);
  });

  test('OAuth 2 link via the form: Client ID and Client secret work with PKCE', async () => {
    const br = await logIn('admin');
    const before1 = await linkCount();
    const { token, html: form1 } = await startCreate(br);
    assert.match(form1, /<legend>Application type<\/legend>/);
    assert.match(form1, /value="atlassian"> <label[^>]*>Atlassian product<\/label>/);
    assert.match(form1, /value="external"> <label[^>]*>External application<\/label>/);
    assert.match(form1, /<legend>Direction<\/legend>/);
    assert.match(form1, />Incoming<\/label>/);
    assert.match(form1, />Outgoing<\/label>/);
    const step2 = await (await br.post(CREATE, { atl_token: token, step: 'type', application_type: 'external', direction: 'incoming' })).text();
    assert.match(step2, /<label for="name">Name<\/label>/);
    assert.match(step2, /<label for="redirect-url">Redirect URL<\/label>/);
    assert.match(step2, /<legend>Application permissions<\/legend>/);
    for (const [label, code] of [['Repositories: Read', 'REPO_READ'], ['Repositories: Write', 'REPO_WRITE'],
      ['Repositories: Admin', 'REPO_ADMIN'], ['Projects: Admin', 'PROJECT_ADMIN']]) {
      assert.match(step2, new RegExp(`type="checkbox" [^>]*name="permission" value="${code}"> <label[^>]*>${label} <code>\\(${code}\\)</code>`));
    }
    assert.ok(!/checked/.test(step2.split('Application permissions')[1]), 'no permission is ticked by default');

    const made = await createOAuth2(br, { name: 'Portico <dev> & "co"' });
    assert.match(made.client_id, /^[0-9a-f]{32}$/);
    assert.match(made.client_secret, /^[0-9a-f]{64}$/);
    assert.match(made.html, /<label for="client-id">Client ID<\/label>/);
    assert.match(made.html, /<label for="client-secret">Client secret<\/label>/);
    assert.match(made.html, /id="created"/);
    assert.match(made.html, /<h1>Portico &lt;dev&gt; &amp; &quot;co&quot;<\/h1>/);
    assert.match(made.html, /Repositories: Read <code>\(REPO_READ\)<\/code>/);
    assert.equal(await linkCount(), before1 + 1);

    // The link's page keeps showing the credentials later.
    const again = await (await br.get(made.location.replace('&created=1', ''))).text();
    assert.equal(readonlyValue(again, 'client-id'), made.client_id);
    assert.equal(readonlyValue(again, 'client-secret'), made.client_secret);
    assert.ok(!again.includes('id="created"'));

    // The list shows it, escaped and without secrets.
    const list = await (await br.get(LIST)).text();
    assert.match(list, /<td>Portico &lt;dev&gt; &amp; &quot;co&quot;<\/td><td>External application<\/td><td>Incoming<\/td>/);
    assert.ok(!list.includes(made.client_secret), 'no secret in the list');
    assert.ok(!list.includes('<dev>'));

    // Same object as the JSON admin API's links.
    const json = (await admin(base, 'GET', 'applinks')).body.find((l) => l.client_id === made.client_id);
    assert.deepEqual(json, { type: 'oauth2', name: 'Portico <dev> & "co"', client_id: made.client_id, redirect_url: REDIRECT, permissions: ['REPO_READ'] });

    // And the credentials work: PKCE auth-code flow, token, identity.
    const app = { client_id: made.client_id, client_secret: made.client_secret };
    const t = await login(base, app);
    assert.equal(t.scope, 'REPO_READ');
    assert.equal(await (await get(`${base}/plugins/servlet/applinks/whoami`, bearer(t.access_token))).text(), 'jdoe');
    const wide = authorizeUrl(base, app, { scope: 'REPO_READ REPO_WRITE' });
    assert.equal(callbackParams(await get(wide.url)).get('error'), 'invalid_scope', 'only the ticked permissions');
    const wrong = await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: t.refresh_token, redirect_uri: REDIRECT, client_id: made.client_id, client_secret: 'f'.repeat(64) });
    assert.equal(wrong.body.error, 'invalid_client');
  });

  test('a link made with the JSON API shows on the pages too', async () => {
    const br = await logIn('admin');
    const app = await createApplink(base, ['REPO_READ', 'REPO_WRITE']);
    const list = await (await br.get(LIST)).text();
    const href = `/bitbucket/plugins/servlet/applinks/configureApplicationLink?client_id=${app.client_id}`;
    assert.ok(list.includes(`href="${href}"`));
    const page = await (await br.get(href)).text();
    assert.equal(readonlyValue(page, 'client-secret'), app.client_secret);
    assert.match(page, /REPO_WRITE/);
    assert.equal((await br.get('/bitbucket/plugins/servlet/applinks/configureApplicationLink?client_id=nope')).status, 404);
    assert.equal((await br.get('/bitbucket/plugins/servlet/applinks/configureApplicationLink')).status, 400);
  });

  test('External application + Outgoing, and a missing type, are refused clearly', async () => {
    const br = await logIn('admin');
    const n = await linkCount();
    const { token } = await startCreate(br);
    const out = await br.post(CREATE, { atl_token: token, step: 'type', application_type: 'external', direction: 'outgoing' });
    assert.equal(out.status, 400);
    const html = await out.text();
    assert.match(html, /role="alert" id="direction-error">Outgoing links to an External application are not supported[^<]*Choose Incoming/);
    assert.equal(hiddenField(html, 'step'), 'type', 'the same form again');
    assert.match(html, /value="outgoing" checked/);
    const none = await br.post(CREATE, { atl_token: token, step: 'type' });
    assert.equal(none.status, 400);
    assert.match(await none.text(), /id="application-type-error">Choose an application type\./);
    assert.equal(await linkCount(), n);
  });

  test('form errors are shown next to the fields, values kept and escaped', async () => {
    const br = await logIn('admin');
    const n = await linkCount();
    const { token } = await startCreate(br);
    const bad = await br.post(CREATE, [['atl_token', token], ['step', 'oauth2'], ['name', '<script>x</script>'],
      ['redirect_url', 'http://h/cb#frag'], ['permission', 'REPO_READ']]);
    assert.equal(bad.status, 400);
    const html = await bad.text();
    assert.match(html, /id="form-error">The application link was not created/);
    assert.match(html, /id="redirect-url-error">Redirect URL is invalid/);
    assert.match(html, /value="&lt;script&gt;x&lt;\/script&gt;"/);
    assert.ok(!html.includes('<script>'));
    assert.match(html, /value="REPO_READ" checked/);
    const empty = await (await br.post(CREATE, { atl_token: token, step: 'oauth2' })).text();
    assert.match(empty, /id="name-error">Enter a name\./);
    assert.match(empty, /id="redirect-url-error">Enter the redirect URL\./);
    const unknown = await br.post(CREATE, [['atl_token', token], ['step', 'oauth2'], ['name', 'x'], ['redirect_url', REDIRECT], ['permission', 'PUBLIC_REPOS']]);
    assert.equal(unknown.status, 400);
    assert.match(await unknown.text(), /id="permissions-error"/);
    const twice = await br.post(CREATE, [['atl_token', token], ['step', 'oauth2'], ['name', 'a'], ['name', 'b'], ['redirect_url', REDIRECT]]);
    assert.equal(twice.status, 400);
    assert.equal((await br.post(CREATE, { atl_token: token, step: 'nope' })).status, 400);
    assert.equal(await linkCount(), n);
  });

  test('non-admin users get a 403 page', async () => {
    const br = await logIn('jdoe');
    const res = await br.get(LIST);
    assert.equal(res.status, 403);
    const html = await res.text();
    assert.match(html, /You need administrator permission/);
    assert.match(html, /logged in as <strong>John Doe<\/strong> \(jdoe\)/);
    for (const url of [CREATE, '/bitbucket/plugins/servlet/applinks/configureApplicationLink?client_id=x']) {
      const r = await br.get(url);
      assert.equal(r.status, 403, url);
      assert.match(await r.text(), /You need administrator permission/);
    }
    // An admin's token does not help a non-admin session.
    const adminBr = await logIn('admin');
    const { token } = await startCreate(adminBr);
    const n = await linkCount();
    const post = await br.post(CREATE, { atl_token: token, step: 'oauth2', name: 'x', redirect_url: REDIRECT });
    assert.equal(post.status, 403);
    assert.equal(await linkCount(), n);
    // Markup in display names is escaped on the page.
    const jane = await (await (await logIn('jane.doe@example.com')).get(LIST)).text();
    assert.ok(!jane.includes('<script>'));
    assert.match(jane, /Jane &quot;JD&quot; Doe &lt;script&gt;/);

    // "Log in as another user": log out, log in, back to the list.
    const sw = html.match(/<a id="switch-user" href="([^"]*)">Log in as another user<\/a>/);
    assert.ok(sw, 'a way to log in as an administrator');
    const out = await br.get(htmlUnescape(sw[1]));
    assert.equal(out.status, 302);
    assert.equal(out.headers.get('location'), `/bitbucket/login?next=${encodeURIComponent(LIST)}`);
    assert.equal(br.cookies.size, 0, 'the session cookie is gone');
    const loginPage = await (await br.follow(out)).text();
    const ok = await br.post('/bitbucket/j_atl_security_check', { j_username: 'admin', j_password: 'password', next: hiddenField(loginPage, 'next') });
    assert.equal((await br.follow(ok)).status, 200);
  });

  test('OAuth 1 link via the form, then a signed request-token call succeeds', async () => {
    const br = await logIn('admin');
    const { token } = await startCreate(br);
    const step = (fields) => br.post(CREATE, { atl_token: token, ...fields });

    const urlForm = await step({ step: 'type', application_type: 'atlassian' });
    assert.equal(urlForm.status, 200);
    const uhtml = await urlForm.text();
    assert.match(uhtml, /<label for="application-url">Application URL<\/label>/);
    assert.match(uhtml, /<button type="submit" id="continue">Continue<\/button>/);
    assert.equal((await step({ step: 'url', application_url: 'not a url' })).status, 400);

    const generic = await (await step({ step: 'url', application_url: ' http://127.0.0.1:9/portico ' })).text();
    assert.match(generic, /Generic Application/);
    assert.match(generic, /<label for="application-name">Application Name<\/label>/);
    assert.equal(hiddenField(generic, 'application_url'), 'http://127.0.0.1:9/portico');
    assert.equal((await step({ step: 'generic', application_url: 'http://127.0.0.1:9/portico' })).status, 400);

    const incoming = await (await step({ step: 'generic', application_url: 'http://127.0.0.1:9/portico', application_name: 'Portico OAuth1' })).text();
    assert.match(incoming, /<h1>Incoming Authentication<\/h1>/);
    assert.match(incoming, /<label for="consumer-key">Consumer Key<\/label>/);
    assert.match(incoming, /<label for="consumer-name">Consumer Name<\/label>/);
    assert.match(incoming, /<label for="public-key">Public Key<\/label>\n<textarea/);
    assert.match(incoming, /<label for="consumer-callback-url">Consumer Callback URL \(optional\)<\/label>/);
    const carried = { step: 'incoming', application_url: hiddenField(incoming, 'application_url'), application_name: hiddenField(incoming, 'application_name') };

    const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = publicKey.export({ type: 'spki', format: 'pem' });
    const small = crypto.generateKeyPairSync('rsa', { modulusLength: 768 }).publicKey.export({ type: 'spki', format: 'pem' });
    const n = await linkCount();
    for (const [public_key, why] of [['garbage', 'not PEM'], [small, '768 bits'], ['', 'empty']]) {
      const res = await step({ ...carried, consumer_key: 'form-ck', consumer_name: 'Portico', public_key });
      assert.equal(res.status, 400, why);
      const html = await res.text();
      assert.match(html, /id="public-key-error">/, why);
      assert.equal(hiddenField(html, 'step'), 'incoming');
    }
    const badCb = await step({ ...carried, consumer_key: 'form ck', consumer_name: 'Portico', public_key: pem, consumer_callback_url: 'nope' });
    const badHtml = await badCb.text();
    assert.match(badHtml, /id="consumer-key-error">/);
    assert.match(badHtml, /id="consumer-callback-url-error">/);
    assert.ok(badHtml.includes(pem.split('\n')[1]), 'the pasted key is kept');
    assert.equal(await linkCount(), n);

    // Browsers send textarea line breaks as CRLF.
    const saved = await step({ ...carried, consumer_key: 'form-ck', consumer_name: 'Portico <1>', public_key: pem.replace(/\n/g, '\r\n'), consumer_callback_url: '' });
    assert.equal(saved.status, 302, await saved.clone().text());
    assert.equal(saved.headers.get('location'), '/bitbucket/plugins/servlet/applinks/configureApplicationLink?consumer_key=form-ck&created=1');
    const page = await (await br.follow(saved)).text();
    assert.equal(readonlyValue(page, 'consumer-key'), 'form-ck');
    assert.match(page, /<dt>Consumer Name<\/dt><dd>Portico &lt;1&gt;<\/dd>/);
    assert.match(page, /RSA, 2048 bits/);
    const json = (await admin(base, 'GET', 'applinks')).body.find((l) => l.consumer_key === 'form-ck');
    assert.deepEqual(json, { type: 'oauth1', name: 'Portico <1>', consumer_key: 'form-ck', callback_url: '',
      application_name: 'Portico OAuth1', application_url: 'http://127.0.0.1:9/portico' });
    const list = await (await br.get(LIST)).text();
    assert.match(list, /<td>Portico OAuth1<br><span class="muted">http:\/\/127\.0\.0\.1:9\/portico<\/span><\/td><td>Generic Application<\/td><td>Incoming<\/td>/);
    const dup = await step({ ...carried, consumer_key: 'form-ck', consumer_name: 'x', public_key: pem });
    assert.equal(dup.status, 400);
    assert.match(await dup.text(), /id="consumer-key-error">An application link with this consumer key exists already/);

    // The consumer works: signed request-token, authorize, access-token, whoami.
    const cb = 'http://127.0.0.1:9/portico/oauth1/callback';
    const rtUrl = `${base}/plugins/servlet/oauth/request-token`;
    const h = oauth1Header({ method: 'POST', url: rtUrl, consumerKey: 'form-ck', privateKey, extra: { oauth_callback: cb } });
    const rtRes = await fetch(rtUrl, { method: 'POST', headers: { authorization: h.header } });
    const rtBody = await rtRes.text();
    assert.equal(rtRes.status, 200, rtBody);
    const rt = new URLSearchParams(rtBody);
    assert.equal(rt.get('oauth_callback_confirmed'), 'true');
    assert.ok(rt.get('oauth_token') && rt.get('oauth_token_secret'));
    const auth = await get(`${base}/plugins/servlet/oauth/authorize?oauth_token=${encodeURIComponent(rt.get('oauth_token'))}`);
    const verifier = new URL(auth.headers.get('location')).searchParams.get('oauth_verifier');
    const atUrl = `${base}/plugins/servlet/oauth/access-token`;
    const ah = oauth1Header({ method: 'POST', url: atUrl, consumerKey: 'form-ck', privateKey, token: rt.get('oauth_token'), extra: { oauth_verifier: verifier } });
    const at = await fetch(atUrl, { method: 'POST', headers: { authorization: ah.header } });
    const atBody = await at.text();
    assert.equal(at.status, 200, atBody);
    const who = `${base}/plugins/servlet/applinks/whoami`;
    const wh = oauth1Header({ method: 'GET', url: who, consumerKey: 'form-ck', privateKey, token: new URLSearchParams(atBody).get('oauth_token') });
    assert.equal(await (await get(who, { authorization: wh.header })).text(), 'jdoe');
    // A request signed with another key is still refused.
    const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const bad = oauth1Header({ method: 'POST', url: rtUrl, consumerKey: 'form-ck', privateKey: other, extra: { oauth_callback: cb } });
    const badRes = await fetch(rtUrl, { method: 'POST', headers: { authorization: bad.header } });
    assert.equal(problemOf(badRes, await badRes.text()), 'signature_invalid');
  });

  test('CSRF: a wrong, missing or foreign atl_token is refused, nothing changes', async () => {
    const br = await logIn('admin');
    const other = await logIn('admin');
    const { token } = await startCreate(br);
    const { token: otherToken } = await startCreate(other);
    assert.notEqual(token, otherToken, 'tokens are per session');
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    const n = await linkCount();
    const fields = { step: 'oauth2', name: 'csrf', redirect_url: REDIRECT, permission: 'REPO_READ' };
    for (const [atl, why] of [[token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A'), 'wrong'], [undefined, 'missing'],
      ['', 'empty'], [otherToken, 'another session\'s']]) {
      const res = await br.post(CREATE, atl === undefined ? fields : { ...fields, atl_token: atl });
      assert.equal(res.status, 403, why);
      assert.match(await res.text(), /XSRF check failed/, why);
    }
    const twice = await br.post(CREATE, [['atl_token', token], ['atl_token', token], ...Object.entries(fields)]);
    assert.equal(twice.status, 403, 'a repeated token');
    const json = await fetch(br.abs(CREATE), {
      method: 'POST', redirect: 'manual', headers: { ...br.headers(), 'content-type': 'application/json' },
      body: JSON.stringify({ atl_token: token, ...fields }),
    });
    assert.equal(json.status, 403, 'not a form');
    assert.equal(await linkCount(), n);
    // A new login gets a new token; the old one dies with its session.
    const out = await br.get('/bitbucket/j_atl_security_logout');
    assert.equal(out.status, 302);
    const again = await logIn('admin');
    const { token: fresh } = await startCreate(again);
    assert.notEqual(fresh, token);
    const stale = await again.post(CREATE, { ...fields, atl_token: token });
    assert.equal(stale.status, 403);
    assert.equal((await again.post(CREATE, { ...fields, atl_token: fresh })).status, 302);
    assert.equal(await linkCount(), n + 1);
  });

  test('only GET on the list and link pages', async () => {
    const br = await logIn('admin');
    assert.equal((await br.post(LIST, {})).status, 405);
    assert.equal((await fetch(`${base}/plugins/servlet/applinks/createApplicationLink`, { method: 'DELETE' })).status, 405);
  });
});

// =============================================================================

test('a hanging request does not block SIGTERM', async () => {
  const emu = await startEmulator([]);
  await admin(emu.base, 'POST', 'faults', { hang: true });
  const pending = fetch(`${emu.base}/plugins/servlet/applinks/whoami`).then(() => 'answered', () => 'closed');
  await new Promise((r) => setTimeout(r, 200));
  const t0 = Date.now();
  const { code } = await emu.stop();
  assert.equal(code, 0);
  assert.ok(Date.now() - t0 < 5000, 'shutdown took too long');
  assert.equal(await pending, 'closed');
});

test('--state keeps the application links over a restart; a bad state file stops the start', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'emu-state-'));
  const file = path.join(dir, 'state.json');
  try {
    let emu = await startEmulator(['--auto-approve', 'jdoe', '--state', file]);
    const app = await createApplink(emu.base);
    const pem = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' });
    assert.equal((await admin(emu.base, 'POST', 'applinks/oauth1', { name: 'P', consumer_key: 'kept-ck', public_key: pem })).status, 201);
    assert.equal((await emu.stop()).code, 0);
    assert.equal(statSync(file).mode & 0o777, 0o600, 'the file holds client secrets');
    assert.ok(readFileSync(file, 'utf8').includes(app.client_id));

    emu = await startEmulator(['--auto-approve', 'jdoe', '--state', file]);
    const list = (await admin(emu.base, 'GET', 'applinks')).body;
    assert.ok(list.some((l) => l.client_id === app.client_id), 'the OAuth 2 link is back');
    assert.ok(list.some((l) => l.consumer_key === 'kept-ck'), 'the OAuth 1 consumer is back');
    // The restarted emulator authorizes that client as before.
    const res = await get(authorizeUrl(emu.base, app).url, { 'X-Emulator-User': 'jdoe' });
    assert.equal(res.status, 302);
    assert.ok(new URL(res.headers.get('location')).searchParams.get('code'));
    // Reset forgets them in the file too.
    assert.equal((await admin(emu.base, 'POST', 'reset')).status, 200);
    assert.equal((await emu.stop()).code, 0);
    emu = await startEmulator(['--state', file]);
    assert.deepEqual((await admin(emu.base, 'GET', 'applinks')).body, []);
    await emu.stop();

    writeFileSync(file, '{ not json');
    const r = spawnSync(BIN, ['--listen', '127.0.0.1:0', '--state', file], { timeout: 5000 });
    assert.equal(r.status, 2);
    assert.match(r.stderr.toString(), /state file .* is not readable JSON/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad command lines are refused', () => {
  for (const args of [['--context', 'no-slash'], ['--version', '8.9'], ['--auto-approve', 'ghost'],
    ['--listen', 'nonsense'], ['--code-ttl', '601']]) {
    const r = spawnSync(BIN, ['--listen', '127.0.0.1:0', ...args], { timeout: 5000 });
    assert.equal(r.status, 2, args.join(' '));
  }
});
