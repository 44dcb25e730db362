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
