// The bus is authenticated: every bus port speaks CURVE, each server admits
// only the keys of the services that may call it, and each method only the
// callers declared for it, by the authenticated identity. Also the
// regression tests of issue #11's three attacks (a DEALER that creates an
// admin session, reads client secrets, reads Bitbucket tokens) and of the
// web trusting any broker worker.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, execFile } from 'node:child_process';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { startPortico, ROOT, waitFor } from './harness.mjs';
import { setupAdmin, createIntegration, loginAuto, startLogin, authorizeAuto } from './login_lib.mjs';
import { Client } from './client.mjs';

const PROBE = join(ROOT, 'build', 'tests', 'bus_probe');
let sys;

before(async () => {
  execFileSync('make', ['-s', '-C', ROOT, 'build/tests/bus_probe'], { stdio: 'inherit' });
  sys = await startPortico({ autoApprove: 'jdoe' });
});
after(async () => { if (sys) await sys.stop(); });

// Call METHOD on a service's bus port as AS; resolves to {code, detail, body_bytes}.
function probe(service, as, method, { body = '', timeout = 1200 } = {}) {
  const endpoint = {
    registry: sys.env.PORTICO_REGISTRY_BIND,
    bitbucket: sys.env.PORTICO_BITBUCKET_BIND,
    web: sys.env.PORTICO_BROKER_BIND,
  }[service];
  const args = [endpoint, service, as, method, String(timeout)];
  if (body) args.push(body);
  return new Promise((res, rej) => execFile(PROBE, args, { env: sys.env, timeout: timeout + 10000 }, (err, out) => (err ? rej(err) : res(JSON.parse(out)))));
}

// Who may call what: the methods' one declaration (proto/*.proto, turned
// into build/gen/bus_methods.json by scripts/busgen.py); ping is every
// admitted peer's.
const DECLARED = JSON.parse(readFileSync(join(ROOT, 'build', 'gen', 'bus_methods.json'), 'utf8'));
const ADMITTED = { registry: ['web', 'broker'], bitbucket: ['web', 'broker'], web: ['broker'] };
const KEYS = ['web', 'registry', 'broker', 'bitbucket', 'none', 'stranger'];

test('a peer with no key, an unknown key or a key not admitted gets no reply from any service', async () => {
  for (const service of ['registry', 'bitbucket']) {
    for (const as of KEYS.filter((k) => !ADMITTED[service].includes(k))) {
      for (const method of ['ping', Object.keys(DECLARED[service])[0]]) {
        const r = await probe(service, as, method, { timeout: 500 });
        assert.equal(r.code, 'TIMEOUT', `${service} answered ${as} on ${method}: ${JSON.stringify(r)}`);
      }
    }
    for (const as of ADMITTED[service]) assert.equal((await probe(service, as, 'ping')).code, 'OK', `${as} pings ${service}`);
  }
  await waitFor(() => /refused a bus peer/.test(sys.log('registry')), { timeout: 3000, what: 'a refusal in the log' });
});

test('each method refuses every caller not declared for it, and answers those declared', async () => {
  for (const service of ['registry', 'bitbucket']) {
    const methods = DECLARED[service];
    assert.ok(Object.keys(methods).length > 5, `${service} declares its methods`);
    for (const [method, callers] of Object.entries(methods)) {
      for (const as of ADMITTED[service]) {
        const r = await probe(service, as, method);
        if (callers.includes(as)) {
          assert.ok(!(r.code === 'FORBIDDEN' && r.detail === 'caller') && r.code !== 'TIMEOUT',
            `${as} is declared for ${service} ${method} but got ${JSON.stringify(r)}`);
        } else {
          assert.deepEqual(r, { code: 'FORBIDDEN', detail: 'caller', body_bytes: 0 }, `${as} calling ${service} ${method}`);
        }
      }
    }
  }
});

test('attack: no peer but the registry itself starts a session (session.create is gone)', async () => {
  // user_id 1, setup true: what an attacker would ask for.
  const body = '0a20' + '11'.repeat(32) + '1001' + '1801';
  for (const as of ['none', 'stranger', 'bitbucket']) assert.equal((await probe('registry', as, 'session.create', { body })).code, 'TIMEOUT');
  for (const as of ['web', 'broker']) assert.equal((await probe('registry', as, 'session.create', { body })).code, 'UNKNOWN_METHOD');
});

test('attack: integration secrets reach the broker only', async () => {
  const admin = await setupAdmin(sys);
  const integ = await createIntegration(admin, sys.emulator);
  const body = '08' + integ.id.toString(16).padStart(2, '0') + '1001'; // id, with_secrets
  for (const as of ['none', 'stranger', 'bitbucket', 'registry']) assert.equal((await probe('registry', as, 'integration.get', { body })).code, 'TIMEOUT');
  assert.deepEqual(await probe('registry', 'web', 'integration.get', { body }), { code: 'FORBIDDEN', detail: 'caller', body_bytes: 0 });
  const ok = await probe('registry', 'broker', 'integration.get', { body });
  assert.equal(ok.code, 'OK');
  assert.ok(ok.body_bytes > 0);
});

test('attack: Bitbucket tokens reach the broker only', async () => {
  const body = '0801'; // user_id 1
  for (const as of ['none', 'stranger', 'bitbucket']) assert.equal((await probe('registry', as, 'token.get', { body })).code, 'TIMEOUT');
  assert.deepEqual(await probe('registry', 'web', 'token.get', { body }), { code: 'FORBIDDEN', detail: 'caller', body_bytes: 0 });
});

// protobuf wire format, enough for the requests below.
const varint = (n) => { let b = BigInt(n), out = ''; do { let x = Number(b & 0x7fn); b >>= 7n; if (b) x |= 0x80; out += x.toString(16).padStart(2, '0'); } while (b); return out; };
const field = (no, hex) => varint((no << 3) | 2) + varint(hex.length / 2) + hex;
const num = (no, n) => varint(no << 3) + varint(n);
const str = (no, s) => field(no, Buffer.from(s).toString('hex'));
const sha256 = (s) => createHash('sha256').update(s).digest('hex');
// user.login naming the Bitbucket user an attacker wants, with pending (a
// ConsumePendingRequest in hex) or none.
function userLogin(integrationId, pending) {
  const identity = num(2, integrationId) + num(4, 424242) + str(5, 'mallory') + str(6, 'mallory');
  return field(1, identity) + str(2, '203.0.113.9') + (pending ? field(7, pending) : '');
}
const pendingFor = (integrationId, state, binding) => field(1, sha256(state)) + field(3, sha256(binding)) + num(4, integrationId);

test('attack: a broker key alone cannot log anyone in: user.login needs a login a browser started, once', async () => {
  const admin = await setupAdmin(sys);
  const integ = await createIntegration(admin, sys.emulator);
  const refused = async (body, why) => assert.deepEqual(await probe('registry', 'broker', 'user.login', { body }),
    { code: 'FORBIDDEN', detail: 'pending', body_bytes: 0 }, why);
  await refused(userLogin(integ.id, ''), 'no pending login');
  // A login in flight in a real browser: its state is in the authorize URL,
  // its binding in the browser's cookie.
  const victim = new Client(sys.webUrl);
  const start = await startLogin(victim, integ.id);
  const state = new URL(start.location).searchParams.get('state');
  const binding = victim.cookie('portico_login');
  assert.ok(state && binding);
  await refused(userLogin(integ.id, pendingFor(integ.id, state, 'another-browser')), "another browser's login");
  await refused(userLogin(integ.id, pendingFor(integ.id, 'made-up-state', binding)), 'a state nobody started');
  const other = await createIntegration(admin, sys.emulator, { name: 'Other Bitbucket' });
  await refused(userLogin(other.id, pendingFor(integ.id, state, binding)), "another integration's login");
  // The browser finishes its login, which uses the pending login up.
  const done = await victim.get(await authorizeAuto(victim, start.location));
  assert.equal(done.status, 303, `the real login: ${done.status}`);
  await refused(userLogin(integ.id, pendingFor(integ.id, state, binding)), 'a used login');
  assert.doesNotMatch((await admin.get('/admin/users')).text, /mallory/, 'no account was made for the named user');
});

test('attack: a broker worker without the broker key is never handed work', async () => {
  const admin = await setupAdmin(sys);
  const integ = await createIntegration(admin, sys.emulator);
  const before = await (await fetch(`${sys.opsUrl}/readyz`)).text();
  const workers = Number(before.match(/\((\d+) workers connected\)/)[1]);
  const fakes = ['none', 'stranger', 'web', 'registry', 'bitbucket'].map((as) => probe('web', as, '@worker', { timeout: 3000 }));
  await new Promise((r) => setTimeout(r, 500));
  // Logins go on meanwhile, all through the real broker.
  for (let i = 0; i < 10; i++) {
    const r = await loginAuto(new Client(sys.webUrl), integ.id);
    assert.equal(r.status, 303, `login ${i}: ${r.status}`);
  }
  const during = await (await fetch(`${sys.opsUrl}/readyz`)).text();
  assert.equal(Number(during.match(/\((\d+) workers connected\)/)[1]), workers, during);
  for (const f of await Promise.all(fakes)) assert.equal(f.detail, '0', 'a fake worker was handed a request');
});
