// Helpers for the login tests and the login benchmark: create integrations
// through the Admin pages (as an operator in Setup Mode would), and drive a
// login hop by hop: Portico's start, Bitbucket's authorize (auto-approved,
// or through the emulator's login and consent pages), Portico's callback.
import assert from 'node:assert/strict';
import { Client, csrfFrom, formField } from './client.mjs';

// A client holding a Setup Mode session (the setup token was accepted).
export async function setupAdmin(sys) {
  const c = new Client(sys.webUrl);
  const page = await c.get('/admin');
  const csrf = csrfFrom(page.text);
  assert.ok(csrf, `no setup form on /admin (${page.status})`);
  const r = await c.post('/admin/setup-token', { csrf, token: sys.setupToken });
  assert.equal(r.status, 303, `setup token refused: ${r.status} ${r.text.slice(0, 300)}`);
  return c;
}

// Add Integration with the callback URL Portico shows, after creating the
// matching application link in the emulator. Returns { id, clientId, clientSecret, callback }.
export async function createIntegration(admin, emulator, { name, permissions = ['REPO_READ'] } = {}) {
  const form = await admin.get('/admin/integrations/new');
  assert.equal(form.status, 200, `Add Integration: ${form.status}`);
  const id = formField(form.text, 'id');
  const csrf = csrfFrom(form.text);
  assert.ok(id && csrf, 'the Add Integration form has an id and a CSRF token');
  const callback = `${admin.base}/oauth/callback/${id}`;
  const link = await emulator.admin('applinks', { name: 'Portico', redirect_url: callback, permissions });
  assert.equal(link.status, 201, link.text);
  const r = await admin.post('/admin/integrations', {
    csrf, id, platform: 'bitbucket-dc', base_url: emulator.url, oauth_version: '2',
    client_id: link.json.client_id, client_secret: link.json.client_secret, name: name || `Bitbucket ${id}`,
  });
  assert.equal(r.status, 303, `Create Integration: ${r.status} ${r.text.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 600)}`);
  return { id: Number(id), clientId: link.json.client_id, clientSecret: link.json.client_secret, callback };
}

// GET /login/start/{id}: 303 to Bitbucket's authorize URL.
export async function startLogin(c, integrationId, returnTo) {
  const q = returnTo === undefined ? '' : `?return_to=${encodeURIComponent(returnTo)}`;
  const r = await c.get(`/login/start/${integrationId}${q}`);
  assert.equal(r.status, 303, `login start: ${r.status} ${r.text.slice(0, 300)}`);
  return r;
}

// Authorize at an emulator started with --auto-approve: the emulator
// redirects straight back to Portico with a code (or an error).
export async function authorizeAuto(c, authorizeUrl, user = 'jdoe') {
  const r = await c.get(authorizeUrl, { headers: { 'x-emulator-user': encodeURIComponent(user) } });
  assert.ok(r.status === 302 || r.status === 303, `authorize: ${r.status} ${r.text.slice(0, 300)}`);
  return r.location;
}

// Authorize through the emulator's pages: log in (Username, Password), then
// Allow or Deny on the consent page. Returns the callback URL.
export async function authorizeInteractive(c, authorizeUrl, { user = 'jdoe', password = 'password', decision = 'allow' } = {}) {
  let r = await c.get(authorizeUrl);
  if (/name="j_username"/.test(r.text)) {
    const action = r.text.match(/<form method="post" action="([^"]+)"/)[1];
    const next = formField(r.text, 'next');
    r = await c.post(new URL(action, authorizeUrl).toString(), { j_username: user, j_password: password, next });
    assert.ok(r.status >= 300 && r.status < 400, `emulator login: ${r.status} ${r.text.slice(0, 300)}`);
    r = await c.follow(r);
  }
  assert.equal(r.status, 200, `consent page: ${r.status} ${r.text.slice(0, 300)}`);
  const action = r.text.match(/<form method="post" action="([^"]+)"/)[1];
  const request = formField(r.text, 'request');
  r = await c.post(new URL(action, authorizeUrl).toString(), { request, decision });
  assert.ok(r.status === 302 || r.status === 303, `consent: ${r.status} ${r.text.slice(0, 300)}`);
  return r.location;
}

// The whole login with an auto-approving emulator; returns the callback response.
export async function loginAuto(c, integrationId, { user = 'jdoe', returnTo } = {}) {
  const start = await startLogin(c, integrationId, returnTo);
  const callback = await authorizeAuto(c, start.location, user);
  return c.get(callback);
}

export function text(html) {
  return html.replace(/<[^>]+>/g, ' ').replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/\s+/g, ' ');
}

// Logins one after another until stop(): resolves to { logins, failures }
// (the status of every login that did not end in 303).
export function steadyLogins(webUrl, integrationId) {
  let running = true;
  let logins = 0;
  const failures = [];
  const loop = (async () => {
    while (running) {
      const r = await loginAuto(new Client(webUrl), integrationId).catch((e) => ({ status: String(e) }));
      logins++;
      if (r.status !== 303) failures.push(r.status);
    }
  })();
  return { async stop() { running = false; await loop; return { logins, failures }; } };
}

// Bus calls made so far by the service whose metrics are at url, by
// "service method" (the portico_bus_calls_total counter).
export async function busCalls(url) {
  const m = await (await fetch(url)).text();
  const calls = {};
  for (const l of m.split('\n').filter((x) => x.startsWith('portico_bus_calls_total{'))) {
    const key = `${l.match(/service="([^"]+)"/)[1]} ${l.match(/method="([^"]+)"/)[1]}`;
    calls[key] = (calls[key] || 0) + Number(l.split(' ').pop());
  }
  return calls;
}

// What changed between two busCalls() counts, leaving out the calls a
// service makes on its own timer (its presence report to the registry),
// which can fall into any window.
const PERIODIC = new Set(['registry instance.report']);
export function callsDelta(after, before) {
  const d = {};
  for (const [k, v] of Object.entries(after)) {
    if (!PERIODIC.has(k) && v - (before[k] || 0)) d[k] = v - (before[k] || 0);
  }
  return d;
}
