// Rotating a bus key without a failed login: a second broker key is added
// next to the first (the servers read the keys folder again within a
// second), a broker with the new key starts, the old one stops, the old key
// is removed, and from then on the old key gets no answer anywhere.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { makeBusKeys, waitFor, sleep } from './harness.mjs';
import { startRotationSystem, busProbe, brokerWorkers } from './rotation_lib.mjs';
import { setupAdmin, createIntegration, steadyLogins } from './login_lib.mjs';

let sys;

before(async () => { sys = await startRotationSystem(); });
after(async () => { if (sys) await sys.stop(); });

function probe(as, method = 'ping') {
  return busProbe([sys.env.PORTICO_REGISTRY_BIND, 'registry', as, method, '800'], sys.env);
}

const workers = () => brokerWorkers(sys);

test('a broker key is rotated with logins going on, none failing', async () => {
  const admin = await setupAdmin(sys);
  const integ = await createIntegration(admin, sys.emulator);
  const load = steadyLogins(sys.webUrl, integ.id);
  await sleep(500);
  const before = await workers();
  const oldSecret = join(sys.busKeys, 'old-broker-secret');
  copyFileSync(join(sys.busKeys, 'broker.cert_secret'), oldSecret);

  // 1. The new key next to the old; 2. a broker with it; 3. the old one stops.
  makeBusKeys(sys.busKeys, ['broker.2']);
  await sleep(1200);
  await sys.startBroker({ PORTICO_BUS_SECRET_FILE: join(sys.busKeys, 'broker.2.cert_secret') });
  await waitFor(async () => (await workers()) === 2 * before, { timeout: 10000, what: 'the new broker connected' });
  await sys.kill('broker-1');
  await waitFor(async () => (await workers()) === before, { timeout: 10000, what: 'the old broker gone' });
  // 4. The old key removed: refused from now on, the new one still works.
  rmSync(join(sys.busKeys, 'broker.cert'));
  rmSync(join(sys.busKeys, 'broker.cert_secret'));
  await sleep(1200);
  await waitFor(async () => (await probe(oldSecret)).code === 'TIMEOUT', { timeout: 5000, what: 'the old key refused' });
  assert.equal((await probe(join(sys.busKeys, 'broker.2.cert_secret'))).code, 'OK');
  await sleep(1000);
  const { logins, failures } = await load.stop();
  assert.ok(logins >= 10, `only ${logins} logins ran`);
  assert.deepEqual(failures, [], `${failures.length} of ${logins} logins failed during the rotation`);
});

// ZAP checks a key only when a connection is made: a connection made with
// a key that is then removed (leaked, say) went on working until the
// server restarted. On SIGHUP a server that finds a key it admitted gone
// binds again, which ends every connection; the others come back.
test('a removed key\'s open connections end when the servers are sent SIGHUP', async () => {
  const before = await workers();
  makeBusKeys(sys.busKeys, ['broker.3']);
  await sleep(1200);
  // A worker with the new key holds its connection to the web.
  const lingering = busProbe([sys.env.PORTICO_BROKER_BIND, 'web', join(sys.busKeys, 'broker.3.cert_secret'), '@worker', '12000'], sys.env);
  await waitFor(async () => (await workers()) === before + 1, { timeout: 5000, what: 'the extra worker connected' });
  rmSync(join(sys.busKeys, 'broker.3.cert'));
  await sleep(1500);
  assert.equal(await workers(), before + 1, 'removing the key alone leaves the open connection');
  for (const svc of ['web', 'registry', 'bitbucket']) sys.kill(svc, 'SIGHUP');
  await waitFor(async () => (await workers()) === before, { timeout: 8000, what: 'the removed key\'s worker gone' });
  // The real brokers came back; logins go on.
  const admin = await setupAdmin(sys);
  const integ = await createIntegration(admin, sys.emulator);
  const load = steadyLogins(sys.webUrl, integ.id);
  await sleep(2000);
  const { logins, failures } = await load.stop();
  assert.ok(logins >= 5, `only ${logins} logins ran`);
  assert.deepEqual(failures, []);
  assert.equal((await lingering).code, 'WORKER');
  assert.equal(await workers(), before);
});
