// Rotating a server's bus key (the registry's) without a failed login, as
// the README's "Bus keys" says: the new key is added next to the old (its
// clients, the web and the brokers, connect with both within a second; only
// the connection with the key the registry holds completes its handshake),
// the registry switches to it on SIGHUP, then the old public key is removed.
// From then on a client that knows only the old key gets no answer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startPortico, makeBusKeys, ROOT, waitFor, sleep } from './harness.mjs';
import { setupAdmin, createIntegration, loginAuto } from './login_lib.mjs';
import { Client } from './client.mjs';

const PROBE = join(ROOT, 'build', 'tests', 'bus_probe');
let sys;

before(async () => {
  execFileSync('make', ['-s', '-C', ROOT, 'build/tests/bus_probe'], { stdio: 'inherit' });
  sys = await startPortico({
    autoApprove: 'jdoe',
    env: { PORTICO_LOGIN_RATE_PER_MINUTE: '100000', PORTICO_CALLBACK_RATE_PER_MINUTE: '100000' },
  });
});
after(async () => { if (sys) await sys.stop(); });

// ping the registry as the web, knowing the registry's keys of `keysDir`.
function probe(keysDir) {
  const args = [sys.env.PORTICO_REGISTRY_BIND, 'registry', 'web', 'ping', '800'];
  const env = { ...sys.env, PORTICO_BUS_KEYS_DIR: keysDir };
  return new Promise((res, rej) => execFile(PROBE, args, { env, timeout: 10000 }, (err, out) => (err ? rej(err) : res(JSON.parse(out)))));
}

test("the registry's key is rotated with logins going on, none failing; the old key is refused after", async () => {
  const admin = await setupAdmin(sys);
  const integ = await createIntegration(admin, sys.emulator);
  const keys = sys.busKeys;
  // A client that will keep knowing only the old registry key.
  const oldKeys = join(keys, '..', 'old-registry-keys');
  mkdirSync(oldKeys, { recursive: true });
  copyFileSync(join(keys, 'registry.cert'), join(oldKeys, 'registry.cert'));
  copyFileSync(join(keys, 'web.cert_secret'), join(oldKeys, 'web.cert_secret'));
  assert.equal((await probe(oldKeys)).code, 'OK');

  let logins = 0;
  const failures = [];
  let running = true;
  const load = (async () => {
    while (running) {
      const r = await loginAuto(new Client(sys.webUrl), integ.id).catch((e) => ({ status: String(e) }));
      logins++;
      if (r.status !== 303) failures.push(r.status);
    }
  })();
  await sleep(500);

  // 1. The new key pair next to the old one: clients connect with both.
  makeBusKeys(keys, ['registry.2']);
  await waitFor(() => /bus server key added.*service=registry/.test(sys.allLogs()), { timeout: 10000, what: 'the clients know the new key' });
  await sleep(1500);
  // 2. The registry takes the new secret key (its PORTICO_BUS_SECRET_FILE)
  //    and switches on SIGHUP.
  copyFileSync(join(keys, 'registry.2.cert_secret'), join(keys, 'registry.cert_secret'));
  sys.kill('registry', 'SIGHUP');
  await waitFor(() => /serving with the new bus key/.test(sys.log('registry')), { timeout: 10000, what: 'the registry switched' });
  await sleep(1500);
  // 3. The old public key removed: the new one takes its name.
  renameSync(join(keys, 'registry.2.cert'), join(keys, 'registry.cert'));
  rmSync(join(keys, 'registry.2.cert_secret'));
  await waitFor(() => /bus server key gone.*service=registry/.test(sys.allLogs()), { timeout: 10000, what: 'the clients dropped the old key' });
  await sleep(1500);
  running = false;
  await load;

  assert.ok(logins >= 10, `only ${logins} logins ran`);
  assert.deepEqual(failures, [], `${failures.length} of ${logins} logins failed during the rotation`);
  // The old key gets no answer; the new one does.
  assert.equal((await probe(oldKeys)).code, 'TIMEOUT');
  assert.equal((await probe(keys)).code, 'OK');
  rmSync(oldKeys, { recursive: true, force: true });
});
