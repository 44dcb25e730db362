// The Admin section over HTTP: Setup Mode and its token, CSRF and Origin
// checks, every validation message of Add Integration, escaping, the
// integration page and its actions, and Finish setup. One Portico system
// (with the emulator auto-approving logins as jdoe) for the whole file; the
// tests run in order and the last one ends Setup Mode.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPortico, startEmulator, freePort, ARTIFACTS } from './harness.mjs';
import { Client, csrfFrom, formField } from './client.mjs';

let sys;
let admin; // a Client holding a Setup Mode session
const extra = []; // servers and emulators to stop

before(async () => {
  sys = await startPortico({ name: 'admin', autoApprove: 'jdoe' });
});
after(async () => {
  for (const x of extra) await x.stop();
  if (sys) await sys.stop();
});

// ---- helpers ----

async function setupSession() {
  const c = new Client(sys.webUrl);
  const form = await c.get('/admin');
  assert.equal(form.status, 200, form.text);
  const r = await c.post('/admin/setup-token', { csrf: csrfFrom(form.text), token: sys.setupToken });
  assert.equal(r.status, 303, r.text);
  assert.equal(new URL(r.location, sys.webUrl).pathname, '/admin');
  return c;
}

async function newForm(c) {
  const r = await c.get('/admin/integrations/new');
  assert.equal(r.status, 200, r.text);
  return { id: formField(r.text, 'id'), csrf: csrfFrom(r.text), html: r.text };
}

async function create(c, fields, { csrf } = {}) {
  const f = await newForm(c);
  const form = { csrf: csrf ?? f.csrf, id: f.id, platform: 'bitbucket-dc', oauth_version: '2', name: '', ca_cert: '', ...fields };
  const r = await c.post('/admin/integrations', form);
  return { ...r, id: f.id };
}

async function applink(emulatorAdmin, id) {
  const r = await emulatorAdmin('applinks', {
    name: `Portico ${id}`, redirect_url: `${sys.webUrl}/oauth/callback/${id}`, permissions: ['REPO_READ'],
  });
  assert.ok([200, 201].includes(r.status), r.text);
  return r.json;
}

// The text of the field error under a form field, or ''.
function fieldError(html, id) {
  const m = html.match(new RegExp(`<p class="field-error" id="${id}-error">([^<]*)</p>`));
  return m ? m[1] : '';
}

async function integrationsListed(c) {
  const r = await c.get('/admin');
  return [...r.text.matchAll(/data-integration-id="(\d+)"/g)].map((m) => m[1]);
}

// ---- headers, cookies, Setup Mode ----

test('admin pages carry the security headers; cookies are HttpOnly and SameSite=Lax', async () => {
  const c = new Client(sys.webUrl);
  const r = await c.get('/admin');
  assert.equal(r.status, 200);
  const csp = r.headers.get('content-security-policy');
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(r.headers.get('x-frame-options'), 'DENY');
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  const setupCookie = r.headers.getSetCookie();
  assert.ok(setupCookie.length >= 1, 'the setup form sets its CSRF cookie');
  for (const line of setupCookie) {
    assert.match(line, /HttpOnly/);
    assert.match(line, /SameSite=Lax/);
  }
  const ok = await c.post('/admin/setup-token', { csrf: csrfFrom(r.text), token: sys.setupToken });
  assert.equal(ok.status, 303);
  const session = ok.headers.getSetCookie().find((l) => l.startsWith('portico_session='));
  assert.ok(session, 'a session cookie is set');
  assert.match(session, /HttpOnly/);
  assert.match(session, /SameSite=Lax/);
  assert.match(session, /Path=\//);
  assert.doesNotMatch(session, /Domain=/i);
  const home = await c.get('/admin');
  assert.equal(home.headers.get('x-frame-options'), 'DENY');
  assert.match(home.headers.get('content-security-policy'), /form-action 'self'/);
});

test('Setup Mode: /admin asks for the setup token; a wrong token is refused, the right one opens the Admin section', async () => {
  const c = new Client(sys.webUrl);
  const form = await c.get('/admin');
  assert.equal(form.status, 200);
  assert.match(form.text, /<label for="setup-token">Setup token<\/label>/);
  assert.doesNotMatch(form.text, /Add Integration/);

  const wrong = await c.post('/admin/setup-token', { csrf: csrfFrom(form.text), token: 'not-the-token' });
  assert.equal(wrong.status, 403);
  assert.match(wrong.text, /setup token is not right/);
  assert.equal(c.cookie('portico_session'), undefined, 'no session for a wrong token');
  const still = await c.get('/admin');
  assert.match(still.text, /Setup token/);

  // Admin subpages send a visitor without a session back to the token form.
  const sub = await c.get('/admin/integrations/new');
  assert.equal(sub.status, 303);
  assert.equal(new URL(sub.location, sys.webUrl).pathname, '/admin');

  const right = await c.post('/admin/setup-token', { csrf: csrfFrom(still.text), token: sys.setupToken });
  assert.equal(right.status, 303);
  const home = await c.get('/admin');
  assert.equal(home.status, 200);
  assert.match(home.text, /Setup Mode is on/);
  assert.match(home.text, /in this browser: your Bitbucket account becomes the first admin/);
  assert.match(home.text, />Add Integration</);
  assert.doesNotMatch(home.text, /Finish setup/, 'no Finish setup button before an admin exists');
  for (const link of ['/admin/users', '/admin/audit', '/admin/status']) assert.ok(home.text.includes(`href="${link}"`), link);
  admin = c;
});

test('the setup token form refuses a missing CSRF cookie, a wrong field and a cross-site Origin', async () => {
  const c = new Client(sys.webUrl);
  const form = await c.get('/admin');
  const csrf = csrfFrom(form.text);
  // No cookie (another browser): refused even with the right token.
  const bare = new Client(sys.webUrl);
  const r1 = await bare.post('/admin/setup-token', { csrf, token: sys.setupToken });
  assert.equal(r1.status, 403);
  assert.equal(bare.cookie('portico_session'), undefined);
  // One character changed (a token that already starts with "x" must not stay the same).
  const wrong = (csrf[0] === 'x' ? 'y' : 'x') + csrf.slice(1);
  const r2 = await c.post('/admin/setup-token', { csrf: wrong, token: sys.setupToken });
  assert.equal(r2.status, 403);
  const r3 = await c.post('/admin/setup-token', { csrf, token: sys.setupToken }, { headers: { origin: 'https://evil.example' } });
  assert.equal(r3.status, 403);
  const r4 = await c.post('/admin/setup-token', { csrf, token: sys.setupToken }, { headers: { 'sec-fetch-site': 'cross-site' } });
  assert.equal(r4.status, 403);
  assert.equal(c.cookie('portico_session'), undefined);
});

// ---- CSRF on admin actions ----

test('admin POSTs without a CSRF token, with a wrong one, cross-site Origin or Sec-Fetch-Site are refused', async () => {
  const f = await newForm(admin);
  const body = { id: f.id, platform: 'bitbucket-dc', base_url: sys.emulatorUrl, oauth_version: '2', client_id: 'a', client_secret: 'b' };
  const before = await integrationsListed(admin);
  const cases = [
    [{ ...body }, {}],
    [{ ...body, csrf: 'wrong-token' }, {}],
    [{ ...body, csrf: f.csrf }, { origin: 'https://evil.example' }],
    [{ ...body, csrf: f.csrf }, { origin: 'null' }],
    [{ ...body, csrf: f.csrf }, { 'sec-fetch-site': 'cross-site' }],
    [{ ...body, csrf: f.csrf }, { 'sec-fetch-site': 'same-site' }],
  ];
  for (const [form, headers] of cases) {
    const r = await admin.post('/admin/integrations', form, { headers });
    assert.equal(r.status, 403, JSON.stringify(headers) + ' ' + JSON.stringify(form.csrf));
    assert.match(r.text, /Request refused/);
  }
  // Another session's token does not work either.
  const other = await setupSession();
  const otherCsrf = csrfFrom((await other.get('/admin')).text);
  const r = await admin.post('/admin/integrations', { ...body, csrf: otherCsrf });
  assert.equal(r.status, 403);
  for (const path of ['/admin/finish-setup', '/admin/users/1/sessions', '/admin/integrations/1/delete']) {
    const x = await admin.post(path, {});
    assert.equal(x.status, 403, path);
  }
  assert.deepEqual(await integrationsListed(admin), before);
});

test('an oversized form is answered 413, not mistaken for a missing CSRF token', async () => {
  const r = await create(admin, { base_url: sys.emulatorUrl, client_id: 'c', client_secret: 's', ca_cert: 'x'.repeat(70 * 1024) });
  assert.equal(r.status, 413);
  assert.match(r.text, /Form too large/);
  // The rest of the body is not read: the connection ends, and the answer says so.
  assert.equal(r.headers.get('connection'), 'close');
  // A form of exactly 64 KiB is read: the CA field is judged, not the size.
  const f = await newForm(admin);
  const form = { csrf: f.csrf, id: f.id, platform: 'bitbucket-dc', oauth_version: '2', name: '', base_url: sys.emulatorUrl,
    client_id: 'c', client_secret: 's', ca_cert: '' };
  form.ca_cert = 'x'.repeat(64 * 1024 - new URLSearchParams(form).toString().length);
  assert.equal(new URLSearchParams(form).toString().length, 64 * 1024);
  const full = await admin.post('/admin/integrations', form);
  assert.notEqual(full.status, 413);
  assert.match(fieldError(full.text, 'ca-cert'), /PEM/);
});

// ---- validation ----

test('malformed base URLs are explained next to the field, with the form kept', async () => {
  for (const [url, re] of [
    ['git.example.com', /must start with http:\/\/ or https:\/\//],
    ['ftp://git.example.com', /must start with http:\/\/ or https:\/\//],
    ['https://user:pw@git.example.com', /user name or password/],
    ['https://git.example.com/?x=1', /query/],
    ['', /Enter the base URL/],
  ]) {
    const r = await create(admin, { base_url: url, client_id: 'cid', client_secret: 's3cret-value', name: 'Kept name' });
    assert.equal(r.status, 400, url);
    assert.match(fieldError(r.text, 'base-url'), re, url);
    assert.match(r.text, /value="Kept name"/, 'the display name is kept');
    assert.doesNotMatch(r.text, /s3cret-value/, 'the secret is never sent back');
  }
  const long = await create(admin, { base_url: 'https://x.example/' + 'a'.repeat(2000), client_id: 'c', client_secret: 's' });
  assert.equal(long.status, 400);
  assert.match(fieldError(long.text, 'base-url'), /too long/);
  const longId = await create(admin, { base_url: sys.emulatorUrl, client_id: 'c'.repeat(257), client_secret: 's' });
  assert.match(fieldError(longId.text, 'client-id'), /too long/);
  const longSecret = await create(admin, { base_url: sys.emulatorUrl, client_id: 'c', client_secret: 's'.repeat(513) });
  assert.match(fieldError(longSecret.text, 'client-secret'), /too long/);
  const longName = await create(admin, { base_url: sys.emulatorUrl, client_id: 'c', client_secret: 's', name: 'n'.repeat(201) });
  assert.match(fieldError(longName.text, 'display-name'), /too long/);
  const missing = await create(admin, { base_url: sys.emulatorUrl });
  assert.match(fieldError(missing.text, 'client-id'), /Enter the client ID/);
  assert.match(fieldError(missing.text, 'client-secret'), /Enter the client secret/);
  const badCa = await create(admin, { base_url: sys.emulatorUrl, client_id: 'c', client_secret: 's', ca_cert: 'hello' });
  assert.match(fieldError(badCa.text, 'ca-cert'), /PEM/);
});

test('a Base URL on loopback (outside the operator\'s exception), unspecified or the web itself is refused before connecting', async () => {
  // The harness allows 127.0.0.1 for its emulators; every other loopback
  // address, and ::1, stays refused on the address actually connected to.
  const port = new URL(sys.emulatorUrl).port;
  for (const [url, re] of [
    [`http://127.0.0.2:${port}/bitbucket`, /127\.0\.0\.2 is a loopback address/],
    [`http://[::1]:${port}/bitbucket`, /::1 is a loopback address/],
    [`http://0.0.0.0:${port}/bitbucket`, /0\.0\.0\.0 is an unspecified address/],
  ]) {
    const r = await create(admin, { base_url: url, client_id: 'cid', client_secret: 's3cret-value' });
    assert.equal(r.status, 400, `${url}: ${r.status}`);
    const e = fieldError(r.text, 'base-url');
    assert.match(e, /Portico does not connect to this address/, url);
    assert.match(e, re, url);
    assert.match(e, /PORTICO_BITBUCKET_ALLOW/, url);
  }
});

test('an unreachable instance (a closed port) is explained', async () => {
  const port = await freePort();
  const r = await create(admin, { base_url: `http://127.0.0.1:${port}`, client_id: 'cid', client_secret: 'sec' });
  assert.equal(r.status, 400, r.text);
  assert.match(fieldError(r.text, 'base-url'), /could not connect/);
  assert.match(r.text, new RegExp(`value="http://127.0.0.1:${port}"`));
});

test('an address that is not a Bitbucket is explained (the web itself, and a plain HTTP server)', async () => {
  const r = await create(admin, { base_url: sys.webUrl, client_id: 'cid', client_secret: 'sec' });
  assert.equal(r.status, 400, r.text);
  assert.match(fieldError(r.text, 'base-url'), /not as Bitbucket Data Center/);

  const srv = http.createServer((req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"hello":"world"}'); });
  await new Promise((res) => srv.listen(0, '127.0.0.1', res));
  extra.push({ stop: () => new Promise((res) => srv.close(res)) });
  const r2 = await create(admin, { base_url: `http://127.0.0.1:${srv.address().port}/bitbucket`, client_id: 'cid', client_secret: 'sec' });
  assert.equal(r2.status, 400, r2.text);
  assert.match(fieldError(r2.text, 'base-url'), /not as Bitbucket Data Center|context path/);
});

test('OAuth 2 on Bitbucket 7.20 suggests OAuth 1; OAuth 1 there is created without a warning', async () => {
  const old = await startEmulator({ version: '7.20.0', logDir: sys.logDir });
  extra.push(old);
  const r = await create(admin, { base_url: old.url, client_id: 'cid', client_secret: 'sec' });
  assert.equal(r.status, 400, r.text);
  const e = fieldError(r.text, 'oauth-version');
  assert.match(e, /older than 7\.21/);
  assert.match(e, /Choose OAuth 1/);
  const ok = await create(admin, { base_url: old.url, oauth_version: '1', name: 'Old Bitbucket' });
  assert.equal(ok.status, 303, ok.text);
  assert.equal(ok.location, `/admin?created=${ok.id}`);
  const page = await admin.get(`/admin/integrations/${ok.id}`);
  assert.match(page.text, /<label for="consumer-key">Consumer Key<\/label>/);
  assert.match(page.text, /-----BEGIN PUBLIC KEY-----/);
  assert.match(page.text, /data-copy="public-key"/);
});

test('OAuth 1 on Bitbucket 8 warns that it cannot synchronise; ticking the box creates it anyway', async () => {
  const r = await create(admin, { base_url: sys.emulatorUrl, oauth_version: '1', name: 'OAuth 1 on 8' });
  assert.equal(r.status, 200, r.text);
  assert.match(r.text, /id="oauth-warning"/);
  assert.match(r.text, /Bitbucket 8\.9\.0/);
  assert.match(r.text, /synchronisation/);
  assert.match(r.text, /name="accept_warning"/);
  assert.ok(!(await integrationsListed(admin)).includes(r.id), 'not created without the confirmation');
  const again = await admin.post('/admin/integrations', {
    csrf: csrfFrom(r.text), id: r.id, platform: 'bitbucket-dc', base_url: sys.emulatorUrl, oauth_version: '1',
    name: 'OAuth 1 on 8', ca_cert: '', accept_warning: '1',
  });
  assert.equal(again.status, 303, again.text);
  const home = await admin.get(again.location);
  assert.match(home.text, /OAuth 1 on 8<\/strong> created/);
  assert.match(home.text, /Consumer Key and Public Key/);
});

test('a TLS failure suggests the CA certificate field; with the CA the instance is accepted', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'portico-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=Test Private CA',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  const cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
  const srv = https.createServer({ key: readFileSync(join(dir, 'key.pem')), cert }, (req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url.endsWith('/rest/api/1.0/application-properties'))
      res.end('{"version":"8.9.0","buildNumber":"8009000","buildDate":"1","displayName":"Bitbucket"}');
    else { res.statusCode = 404; res.end('{"errors":[]}'); }
  });
  await new Promise((res) => srv.listen(0, '127.0.0.1', res));
  extra.push({ stop: () => new Promise((res) => { srv.close(res); rmSync(dir, { recursive: true, force: true }); }) });
  const base = `https://127.0.0.1:${srv.address().port}`;
  const r = await create(admin, { base_url: base, client_id: 'tls-client', client_secret: 'sec' });
  assert.equal(r.status, 400, r.text);
  assert.match(fieldError(r.text, 'base-url'), /HTTPS certificate/);
  assert.match(fieldError(r.text, 'ca-cert'), /PEM certificate of the authority/);
  assert.match(r.text, /<details class="more" open>/, 'the CA field is opened');
  const ok = await create(admin, { base_url: base, client_id: 'tls-client', client_secret: 'sec', ca_cert: cert, name: 'Private CA' });
  assert.equal(ok.status, 303, ok.text);
  const page = await admin.get(`/admin/integrations/${ok.id}`);
  assert.match(page.text, /custom CA certificate set/);
});

// ---- the happy path and the integration page ----

let created; // { id, client_id }

test('Create Integration with the credentials of a Bitbucket application link lists it on /admin', async () => {
  const f = await newForm(admin);
  const callback = f.html.match(/id="callback-url" readonly value="([^"]+)"/)[1];
  assert.equal(callback, `${sys.webUrl}/oauth/callback/${f.id}`);
  const creds = await applink(sys.emulator.admin, f.id);
  const r = await admin.post('/admin/integrations', {
    csrf: f.csrf, id: f.id, platform: 'bitbucket-dc', base_url: sys.emulatorUrl + '/', oauth_version: '2',
    client_id: creds.client_id, client_secret: creds.client_secret, name: 'Acme <script>alert(1)</script>', ca_cert: '',
  });
  assert.equal(r.status, 303, r.text);
  assert.equal(r.location, `/admin?created=${f.id}`);
  const home = await admin.get(r.location);
  assert.match(home.text, /notice ok/);
  assert.match(home.text, /Acme &lt;script&gt;alert\(1\)&lt;\/script&gt;<\/strong> created/);
  assert.doesNotMatch(home.text, /<script>alert/);
  const row = home.text.match(new RegExp(`<tr data-integration-id="${f.id}">.*?</tr>`))[0];
  assert.ok(row.includes(sys.emulatorUrl), 'normalised base URL (trailing slash removed)');
  assert.ok(!row.includes(sys.emulatorUrl + '/<'), row);
  assert.match(row, /OAuth 2/);
  assert.match(row, /enabled/);
  assert.match(row, /8\.9\.0/);
  assert.match(row, />OK</);
  created = { id: f.id, ...creds };
  // The flash names only a real integration: arbitrary text is never reflected.
  const forged = await admin.get('/admin?created=%3Cb%3Eevil');
  assert.doesNotMatch(forged.text, /evil/);
  assert.doesNotMatch(forged.text, /notice ok/);
});

test('the callback URL comes from PORTICO_PUBLIC_URL, never from the request Host', async () => {
  const cookie = `portico_session=${admin.cookie('portico_session')}`;
  const { port } = new URL(sys.webUrl);
  const html = await new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/admin/integrations/new', headers: { host: 'evil.example:666', cookie, 'x-forwarded-host': 'evil.example' } }, (res) => {
      let s = ''; res.on('data', (d) => (s += d)); res.on('end', () => resolve(s));
    });
    req.on('error', reject);
    req.end();
  });
  const callback = html.match(/id="callback-url" readonly value="([^"]+)"/)[1];
  assert.match(callback, new RegExp(`^${sys.webUrl}/oauth/callback/\\d+$`));
  assert.doesNotMatch(html, /evil\.example/);
});

test('the integration page masks the secret and shows callback, application links and the two-factor hint', async () => {
  const r = await admin.get(`/admin/integrations/${created.id}`);
  assert.equal(r.status, 200);
  assert.match(r.text, /••••••••/);
  assert.ok(!r.text.includes(created.client_secret), 'the secret is never shown');
  assert.ok(r.text.includes(created.client_id));
  assert.ok(r.text.includes(`${sys.webUrl}/oauth/callback/${created.id}`));
  assert.ok(r.text.includes(`href="${sys.emulatorUrl}/plugins/servlet/applinks/listApplicationLinks"`));
  assert.match(r.text, /target="_blank" rel="noopener noreferrer"/);
  assert.match(r.text, /U2F &amp; TOTP/);
  assert.match(r.text, /whitelist/);
  assert.match(r.text, /Acme &lt;script&gt;/);
  assert.doesNotMatch(r.text, /<script>alert/);
  const edit = await admin.get(`/admin/integrations/${created.id}/edit`);
  assert.ok(!edit.text.includes(created.client_secret), 'nor on the edit page');
});

test('GET never changes state: action URLs answer GET with a page or 404/405 and nothing moves', async () => {
  const auditBefore = (await admin.get('/admin/audit')).text.match(/<tbody>.*<\/tbody>/s)?.[0];
  const listBefore = await integrationsListed(admin);
  const paths = [
    `/admin/integrations/${created.id}/delete`, `/admin/integrations/${created.id}/disable`,
    `/admin/integrations/${created.id}/enable`, `/admin/integrations/${created.id}/test`,
    `/admin/integrations/${created.id}/edit`, '/admin/finish-setup', '/admin/setup-token',
    '/admin/users/1/sessions', '/admin/users/1/admin', '/admin/integrations',
  ];
  for (const p of paths) {
    const r = await admin.get(p);
    assert.ok([200, 404, 405].includes(r.status), `${p}: ${r.status}`);
  }
  const confirm = await admin.get(`/admin/integrations/${created.id}/delete`);
  assert.equal(confirm.status, 200);
  assert.match(confirm.text, /lose access/);
  assert.match(confirm.text, /accounts and sessions are removed/);
  assert.match(confirm.text, /tokens/);
  assert.deepEqual(await integrationsListed(admin), listBefore);
  const page = await admin.get(`/admin/integrations/${created.id}`);
  assert.match(page.text, /badge ok">enabled/);
  const auditAfter = (await admin.get('/admin/audit')).text.match(/<tbody>.*<\/tbody>/s)?.[0];
  assert.equal(auditAfter, auditBefore, 'no audit entry from GETs');
});

test('Test connection, edit with secret rotation, disable and enable', async () => {
  const page = await admin.get(`/admin/integrations/${created.id}`);
  const csrf = csrfFrom(page.text);
  const t = await admin.post(`/admin/integrations/${created.id}/test`, { csrf });
  assert.equal(t.status, 303);
  assert.equal(t.location, `/admin/integrations/${created.id}?tested=ok`);
  assert.match((await admin.get(t.location)).text, /Connection works/);

  const bad = await admin.post(`/admin/integrations/${created.id}/edit`, { csrf, name: 'Acme', base_url: 'nope', client_id: created.client_id, client_secret: '', ca_cert: '' });
  assert.equal(bad.status, 400);
  assert.match(fieldError(bad.text, 'base-url'), /http/);
  const e = await admin.post(`/admin/integrations/${created.id}/edit`, { csrf, name: 'Acme Bitbucket', base_url: sys.emulatorUrl, client_id: created.client_id, client_secret: 'rotated-secret', ca_cert: '' });
  assert.equal(e.status, 303, e.text);
  const after = await admin.get(e.location);
  assert.match(after.text, /Changes saved/);
  assert.match(after.text, /<h1>Acme Bitbucket/);
  assert.ok(!after.text.includes('rotated-secret'));
  // Rotate back to the secret Bitbucket knows (the login below needs it); an
  // empty secret field keeps whatever is stored.
  const back = await admin.post(`/admin/integrations/${created.id}/edit`, { csrf, name: 'Acme Bitbucket', base_url: sys.emulatorUrl, client_id: created.client_id, client_secret: created.client_secret, ca_cert: '' });
  assert.equal(back.status, 303, back.text);
  const keep = await admin.post(`/admin/integrations/${created.id}/edit`, { csrf, name: 'Acme Bitbucket', base_url: sys.emulatorUrl, client_id: created.client_id, client_secret: '', ca_cert: '' });
  assert.equal(keep.status, 303, keep.text);

  const d = await admin.post(`/admin/integrations/${created.id}/disable`, { csrf });
  assert.equal(d.status, 303);
  assert.match((await admin.get(d.location)).text, /badge off">disabled/);
  const en = await admin.post(`/admin/integrations/${created.id}/enable`, { csrf });
  assert.equal(en.status, 303);
  assert.match((await admin.get(en.location)).text, /badge ok">enabled/);

  const audit = await admin.get('/admin/audit');
  assert.equal(audit.status, 200);
  assert.match(audit.text, /setup-token/);
});

test('delete: the confirmation page, then the integration is gone', async () => {
  const r = await create(admin, { base_url: sys.emulatorUrl, client_id: 'to-delete', client_secret: 'x', name: 'Short-lived' });
  assert.equal(r.status, 303, r.text);
  const confirm = await admin.get(`/admin/integrations/${r.id}/delete`);
  const del = await admin.post(`/admin/integrations/${r.id}/delete`, { csrf: csrfFrom(confirm.text) });
  assert.equal(del.status, 303);
  assert.match(del.location, /^\/admin\?deleted=1/);
  assert.ok(!(await integrationsListed(admin)).includes(r.id));
  assert.equal((await admin.get(`/admin/integrations/${r.id}`)).status, 404);
});

// ---- Finish setup ----

test('a login from a browser without the setup session does not become admin in Setup Mode', async () => {
  // The integration is on the public login page: anyone may log in, but
  // Setup Mode belongs to whoever proved the setup token.
  const stranger = new Client(sys.webUrl);
  let r = await stranger.get(`/login/start/${created.id}?return_to=/admin`);
  r = await stranger.get(new URL(r.location, sys.webUrl).toString(), { headers: { 'x-emulator-user': encodeURIComponent('zoë') } });
  r = await stranger.follow(r);
  assert.ok(stranger.cookie('portico_session'), `zoë is logged in (${r.status} ${r.url})`);
  const denied = await stranger.get('/admin');
  assert.equal(denied.status, 200, 'Setup Mode still shows the token form');
  assert.match(denied.text, /Setup token/);
  const users = await admin.get('/admin/users');
  assert.doesNotMatch(users.text, /badge ok">admin/, 'nobody is admin yet');
});

test('the first login from the setup session becomes admin; Finish setup ends the setup token and the setup session', async () => {
  // A visitor who fetched the token form before setup ends.
  const late = new Client(sys.webUrl);
  const lateForm = await late.get('/admin');
  const oldSetupCookie = admin.cookie('portico_session');

  // jdoe logs in through the integration (the emulator approves at once),
  // in a browser that proved the setup token.
  const user = await setupSession();
  let r = await user.get(`/login/start/${created.id}?return_to=/admin`);
  r = await user.follow(r);
  assert.equal(r.status, 200, `${r.url}\n${r.text.slice(0, 500)}`);
  const asAdmin = await user.get('/admin');
  assert.equal(asAdmin.status, 200);
  assert.match(asAdmin.text, /Setup Mode is on/);
  assert.match(asAdmin.text, /Finish setup/);

  const users = await admin.get('/admin/users');
  assert.match(users.text, /jdoe/);
  assert.match(users.text, /badge ok">admin/);

  const home = await admin.get('/admin');
  const fin = await admin.post('/admin/finish-setup', { csrf: csrfFrom(home.text) });
  assert.equal(fin.status, 200, fin.text);
  assert.match(fin.text, /Setup finished/);

  // The old setup session no longer opens /admin.
  admin.setCookie('portico_session', oldSetupCookie);
  const gone = await admin.get('/admin');
  assert.equal(gone.status, 303);
  assert.equal(gone.location, '/login?return_to=%2Fadmin');
  // The token no longer works, even from a form fetched earlier.
  const tok = await late.post('/admin/setup-token', { csrf: csrfFrom(lateForm.text), token: sys.setupToken });
  assert.equal(tok.status, 403);
  assert.match(tok.text, /Setup Mode is off/);
  assert.equal(late.cookie('portico_session'), undefined);
  // A fresh visitor is sent to the login, not to a token form.
  const fresh = await new Client(sys.webUrl).get('/admin');
  assert.equal(fresh.status, 303);
  assert.equal(fresh.location, '/login?return_to=%2Fadmin');
  // A path longer than the login goes back to is not written into the
  // answer (5,000 "!" would make a 15 KB Location).
  const long = await new Client(sys.webUrl).get(`/admin/integrations/5/${'!'.repeat(5000)}`);
  assert.equal(long.status, 303);
  assert.equal(long.location, '/login?return_to=%2Fadmin');

  // The admin carries on, without the banner.
  const after = await user.get('/admin');
  assert.equal(after.status, 200);
  assert.doesNotMatch(after.text, /Setup Mode is on/);
  assert.match(after.text, /Acme Bitbucket/);
  // Revoking one's own admin role is refused.
  const u = await user.get('/admin/users');
  const jdoeId = u.text.match(/<tr data-user-id="(\d+)"><td><strong>John Doe/)[1];
  const self = await user.post(`/admin/users/${jdoeId}/admin`, { csrf: csrfFrom(u.text), admin: '0' });
  assert.equal(self.location, '/admin/users?refused=self');

  // A second Bitbucket user (display name with markup) is not an admin: 403.
  const jane = new Client(sys.webUrl);
  let j = await jane.get(`/login/start/${created.id}?return_to=/account`);
  j = await jane.get(new URL(j.location, sys.webUrl).toString(), { headers: { 'x-emulator-user': 'jane.doe%40example.com' } });
  j = await jane.follow(j);
  assert.ok(jane.cookie('portico_session'), `jane is logged in (${j.status} ${j.url})`);
  const denied = await jane.get('/admin');
  assert.equal(denied.status, 403);
  assert.match(denied.text, /Admins only/);
  assert.equal((await jane.get('/admin/users')).status, 403);
  const forged = await jane.post('/admin/integrations', { csrf: csrfFrom(denied.text), id: '99', base_url: sys.emulatorUrl, oauth_version: '1' });
  assert.equal(forged.status, 403);

  // Her display name comes from Bitbucket and is shown as text.
  const list = await user.get('/admin/users');
  assert.ok(list.text.includes('Jane &quot;JD&quot; Doe &lt;script&gt;alert(1)&lt;/script&gt;'));
  assert.doesNotMatch(list.text, /<script>alert/);
  const janeId = list.text.match(/<tr data-user-id="(\d+)"><td><strong>Jane/)[1];
  // Granting admin is a privilege change: her sessions end, she logs in again.
  const grant = await user.post(`/admin/users/${janeId}/admin`, { csrf: csrfFrom(list.text), admin: '1' });
  assert.equal(grant.location, '/admin/users?granted=1');
  const out = await jane.get('/admin');
  assert.equal(out.status, 303);
  assert.equal(out.location, '/login?return_to=%2Fadmin');
  const list2 = await user.get('/admin/users');
  assert.match(list2.text.match(new RegExp(`<tr data-user-id="${janeId}">.*?</tr>`))[0], /badge ok">admin/);
  // Ending a user's sessions is a POST too.
  const end = await user.post(`/admin/users/${janeId}/sessions`, { csrf: csrfFrom(list2.text) });
  assert.equal(end.location, '/admin/users?ended=1');
});

test('the integration every admin logs in through cannot be deleted or moved to another host', async () => {
  // Setup Mode is off, and jdoe and jane, the admins, both log in only
  // through this integration.
  const user = new Client(sys.webUrl);
  let r = await user.get(`/login/start/${created.id}?return_to=/admin`);
  r = await user.follow(r);
  const home = await user.get('/admin');
  assert.equal(home.status, 200, `${r.url} ${home.status}`);
  assert.doesNotMatch(home.text, /Setup Mode is on/);
  const confirm = await user.get(`/admin/integrations/${created.id}/delete`);
  const del = await user.post(`/admin/integrations/${created.id}/delete`, { csrf: csrfFrom(confirm.text) });
  assert.equal(del.status, 409, del.text);
  assert.match(del.text, /would remove every Portico admin/);
  assert.match(del.text, /portico-registry setup-mode on/);
  assert.ok((await integrationsListed(user)).includes(created.id));

  const other = await startEmulator({ logDir: sys.logDir });
  try {
    const edit = await user.get(`/admin/integrations/${created.id}/edit`);
    const moved = await user.post(`/admin/integrations/${created.id}/edit`, {
      csrf: csrfFrom(edit.text), name: 'Acme Bitbucket', base_url: other.url, client_id: 'moved-id', client_secret: 'moved-secret', ca_cert: '',
    });
    assert.equal(moved.status, 409, moved.text.slice(0, 600));
    assert.match(moved.text, /would remove every Portico admin/);
  } finally {
    await other.stop();
  }
  const page = await user.get(`/admin/integrations/${created.id}`);
  assert.equal(page.status, 200, 'the admin is still there');
  assert.ok(page.text.includes(sys.emulatorUrl), 'the Base URL did not move');
});

test('wrong setup tokens are rate limited: "Too many attempts, wait a minute"', async () => {
  // A system of its own: the limit then blocks this address for a minute.
  const own = await startPortico({ name: 'admin-ratelimit', noEmulator: true });
  try {
    const c = new Client(own.webUrl);
    const form = await c.get('/admin');
    const csrf = csrfFrom(form.text);
    let last;
    for (let i = 0; i < 12; i++) last = await c.post('/admin/setup-token', { csrf, token: `wrong-${i}` });
    assert.equal(last.status, 429, last.text);
    assert.match(last.text, /Too many attempts, wait a minute/);
    const right = await c.post('/admin/setup-token', { csrf, token: own.setupToken });
    assert.equal(right.status, 429, 'even the right token waits');
    assert.equal(c.cookie('portico_session'), undefined);
  } finally {
    await own.stop();
  }
});
