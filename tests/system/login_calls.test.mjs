// The bus calls of one complete login with the caches on (make run's
// defaults): login page, start, authorize, callback, account page. The web
// asks the broker twice (login.start, login.finish) and the page after the
// login comes with login.finish; the broker asks the registry three times
// (pending.create, pending.consume, user.login) and the Bitbucket service
// once (login.exchange: token, whoami, the user and the first page of
// repositories, one call). Counted from each service's own metrics, so a
// call added anywhere on the path fails the test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startPortico, freePort } from './harness.mjs';
import { Client } from './client.mjs';
import { setupAdmin, createIntegration, loginAuto, text, busCalls, callsDelta } from './login_lib.mjs';

let sys, A, brokerMetrics;

before(async () => {
  const brokerHealth = await freePort();
  brokerMetrics = `http://127.0.0.1:${brokerHealth}/metrics`;
  sys = await startPortico({
    name: 'login_calls',
    autoApprove: 'jdoe',
    brokerEnv: { PORTICO_HEALTH_ADDR: `127.0.0.1:${brokerHealth}` },
  });
  const admin = await setupAdmin(sys);
  A = await createIntegration(admin, sys.emulator, { name: 'Bitbucket A' });
});

after(async () => {
  if (sys) await sys.stop();
});


const restRequests = async () => (await sys.emulator.admin('stats', undefined, 'GET')).json.rest.requests;

async function completeLogin(user) {
  const c = new Client(sys.webUrl);
  const page = await c.get('/login');
  assert.equal(page.status, 200);
  const done = await loginAuto(c, A.id, { user });
  assert.equal(done.status, 303);
  assert.equal(new URL(done.location, sys.webUrl).pathname, '/account');
  const account = await c.get('/account');
  assert.equal(account.status, 200);
  assert.match(account.text, /<table class="repositories">/);
  assert.match(text(account.text), new RegExp(`as ${user}\\.`));
  return account;
}

test('a complete login makes six bus calls: two from the web, four from the broker', async () => {
  // The first login page lists the integrations; later ones have it cached.
  await completeLogin('user70');
  const web = await busCalls(`${sys.opsUrl}/metrics`);
  const broker = await busCalls(brokerMetrics);
  const rest = await restRequests();
  await completeLogin('user71');
  assert.deepEqual(callsDelta(await busCalls(`${sys.opsUrl}/metrics`), web), {
    'broker login.start': 1,
    'broker login.finish': 1,
  });
  // The broker's access checker asks the registry for due re-checks on a
  // timer of its own (its first ask, half a second after the start, may
  // end inside this window): not part of a login.
  const brokerDelta = callsDelta(await busCalls(brokerMetrics), broker);
  delete brokerDelta['registry access.due'];
  assert.deepEqual(brokerDelta, {
    'registry pending.create': 1,
    'registry pending.consume': 1,
    'bitbucket login.exchange': 1,
    'registry user.login': 1,
  });
  // Bitbucket is asked what it was asked before, no more: the user and the
  // first page of repositories under /rest (the token and whoami are not).
  assert.equal((await restRequests()) - rest, 2);
});
