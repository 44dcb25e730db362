// A service asked to stop (SIGTERM) with PORTICO_STOP_DELAY_SECONDS set
// first leaves: its readiness answers 503 ("stopping") so that a load
// balancer and the orchestrator's DNS move new work away, while it still
// serves everything, logins included; then it stops by itself, status 0.
// (That the others then move away is shown on a real Swarm:
// tests/container/swarm3.sh.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startPortico, waitFor } from './harness.mjs';
import { Client } from './client.mjs';
import { setupAdmin, createIntegration, loginAuto } from './login_lib.mjs';

// Long enough for a login on a loaded machine; every wait below is bounded.
const DELAY_S = 10;
let sys, A;

before(async () => {
  sys = await startPortico({ name: 'stop-delay', autoApprove: 'jdoe', env: { PORTICO_STOP_DELAY_SECONDS: String(DELAY_S) } });
  const admin = await setupAdmin(sys);
  A = await createIntegration(admin, sys.emulator, { name: 'Bitbucket A' });
});

after(async () => {
  if (sys) await sys.stop();
});

const status = async (url) => {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(3000) })).status;
  } catch {
    return 0;
  }
};

test('a leaving registry says "stopping" on /readyz and still serves logins, then stops', async () => {
  const reg = sys.procs.registry;
  assert.equal(await status(`${sys.healthUrls.registry}/readyz`), 200);
  reg.child.kill('SIGTERM');
  await waitFor(async () => (await status(`${sys.healthUrls.registry}/readyz`)) === 503, { timeout: 5000, what: 'registry /readyz 503' });
  assert.ok(reg.alive, 'the registry stopped at once instead of leaving first');
  // The only registry: the login below is served by the leaving one.
  const r = await loginAuto(new Client(sys.webUrl), A.id);
  assert.equal(r.status, 303, `login while the registry leaves: ${r.status}`);
  assert.ok(reg.alive, `the login took longer than the stop delay (${DELAY_S} s)`);
  const { code } = await reg.exited;
  assert.equal(code, 0);
  assert.match(reg.output, /registry stopped/);
});

test('a leaving web answers 503 on /readyz, serves a whole login, then stops', async () => {
  await sys.restart('registry');
  await sys.ready(30000);
  const web = sys.procs.web;
  web.child.kill('SIGTERM');
  await waitFor(async () => (await status(`${sys.webUrl}/readyz`)) === 503, { timeout: 5000, what: 'web /readyz 503' });
  assert.equal(await status(`${sys.webUrl}/healthz`), 200, 'alive while leaving');
  const c = new Client(sys.webUrl);
  const r = await loginAuto(c, A.id);
  assert.equal(r.status, 303, `login while the web leaves: ${r.status}`);
  assert.equal((await c.get('/account')).status, 200);
  assert.ok(web.alive, `the login took longer than the stop delay (${DELAY_S} s)`);
  assert.match(web.output, /leaving: \/readyz answers 503/);
  const { code } = await web.exited;
  assert.equal(code, 0);
  assert.equal(await status(`${sys.webUrl}/healthz`), 0, 'the public port is closed once stopped');
});
