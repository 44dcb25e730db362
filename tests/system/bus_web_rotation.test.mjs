// Rotating the web's bus key without a restart and without a failed login,
// as the README's "Bus keys" says. The web is a server for the broker
// workers (they connect to its broker port) and a client of the registry
// and the Bitbucket service: the new key is added next to the old (the
// workers connect with both within a second, the registry and the
// Bitbucket service admit both), the web switches to it on SIGHUP, then
// the old public key is removed. From then on a worker that knows only the
// old web key is handed no work, and the old web key gets no answer from
// the registry.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { makeBusKeys, waitFor, sleep } from './harness.mjs';
import { startRotationSystem, busProbe, brokerWorkers } from './rotation_lib.mjs';
import { setupAdmin, createIntegration, steadyLogins, loginAuto } from './login_lib.mjs';
import { Client } from './client.mjs';

let sys;

before(async () => { sys = await startRotationSystem({ brokers: 2 }); });
after(async () => { if (sys) await sys.stop(); });

// bus_probe ENDPOINT SERVICE AS METHOD TIMEOUT with the keys of keysDir.
const probe = (args, keysDir) => busProbe(args, { ...sys.env, PORTICO_BUS_KEYS_DIR: keysDir });
const workers = () => brokerWorkers(sys);

test("the web's key is rotated with logins going on, none failing; the old key is refused afterwards", async () => {
  const admin = await setupAdmin(sys);
  const integ = await createIntegration(admin, sys.emulator);
  // Several logins at once, so that some are with a worker when the web
  // switches.
  const loads = [0, 1, 2].map(() => steadyLogins(sys.webUrl, integ.id));
  const keys = sys.busKeys;
  const count = (re) => (sys.allLogs().match(re) || []).length;
  const added = /bus server key added.*service=web/g;
  const gone = /bus server key gone.*service=web/g;
  const serving = /serving with the new bus key/g;
  const reconnected = /own bus key changed/g;
  let results;
  let oldWorker;
  try {
    await sleep(500);
    const workers0 = await workers();
    assert.ok(workers0 > 0, 'workers connected before the rotation');
    // What a broker (and a stolen web key) that never learns of the new key keeps.
    const oldKeys = join(keys, '..', 'old-web-keys');
    mkdirSync(oldKeys, { recursive: true });
    copyFileSync(join(keys, 'web.cert'), join(oldKeys, 'web.cert'));
    copyFileSync(join(keys, 'web.cert_secret'), join(oldKeys, 'web.cert_secret'));
    copyFileSync(join(keys, 'broker.cert_secret'), join(oldKeys, 'broker.cert_secret'));
    const [added0, gone0, serving0, reconnected0] = [count(added), count(gone), count(serving), count(reconnected)];

    // 1. The new key pair next to the old one: the workers connect with both.
    makeBusKeys(keys, ['web.2']);
    await waitFor(() => count(added) >= added0 + workers0, { timeout: 10000, what: "every worker knows the web's new key" });
    await sleep(1500);
    // 2. The web takes the new secret key (its PORTICO_BUS_SECRET_FILE) and
    //    switches to it on SIGHUP.
    copyFileSync(join(keys, 'web.2.cert_secret'), join(keys, 'web.cert_secret'));
    sys.kill('web', 'SIGHUP');
    await waitFor(() => count(serving) > serving0, { timeout: 10000, what: 'the web switched' });
    await waitFor(async () => (await workers()) === workers0, { timeout: 10000, what: 'the workers back on the new key' });
    await waitFor(() => count(reconnected) > reconnected0, { timeout: 10000, what: "the web's clients on its new key" });
    await sleep(1500);
    // 3. The old public key removed: the new one takes its name.
    renameSync(join(keys, 'web.2.cert'), join(keys, 'web.cert'));
    rmSync(join(keys, 'web.2.cert_secret'));
    await waitFor(() => count(gone) >= gone0 + workers0, { timeout: 10000, what: "the workers dropped the web's old key" });
    await sleep(1000);

    // A worker that knows only the old web key gets no work while logins go on.
    oldWorker = probe([sys.env.PORTICO_BROKER_BIND, 'web', 'broker', '@worker', '3000'], oldKeys);
    // The old web key gets no answer from the registry; the new one does.
    const registry = [sys.env.PORTICO_REGISTRY_BIND, 'registry'];
    assert.equal((await probe([...registry, join(oldKeys, 'web.cert_secret'), 'ping', '800'], keys)).code, 'TIMEOUT');
    assert.equal((await probe([...registry, 'web', 'ping', '800'], keys)).code, 'OK');
    assert.equal((await oldWorker).detail, '0', 'a worker with the old web key was handed work');
    assert.equal(await workers(), workers0, 'the old-key worker was never counted');
    rmSync(oldKeys, { recursive: true, force: true });
  } finally {
    results = await Promise.all(loads.map((l) => l.stop()));
  }
  const logins = results.reduce((n, r) => n + r.logins, 0);
  const failures = results.flatMap((r) => r.failures);
  assert.ok(logins >= 10, `only ${logins} logins ran`);
  assert.deepEqual(failures, [], `${failures.length} of ${logins} logins failed during the rotation`);

  // The web's connections to the registry were made again with its new
  // key: a registry that restarts (every connection made anew, and the old
  // web key no longer admitted) still serves it.
  await sys.restart('registry');
  await sys.ready(20000);
  const r = await loginAuto(new Client(sys.webUrl), integ.id);
  assert.equal(r.status, 303, `a login after the registry restarted: ${r.status}`);
});
