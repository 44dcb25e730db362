// Rotating a server's bus key (the registry's, then the Bitbucket
// service's) without a failed login, as
// the README's "Bus keys" says: the new key is added next to the old (its
// clients, the web and the brokers, connect with both within a second; only
// the connection with the key the registry holds completes its handshake),
// the registry switches to it on SIGHUP, then the old public key is removed.
// From then on a client that knows only the old key gets no answer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { makeBusKeys, waitFor, sleep } from './harness.mjs';
import { startRotationSystem, busProbe } from './rotation_lib.mjs';
import { setupAdmin, createIntegration, steadyLogins } from './login_lib.mjs';

let sys;

before(async () => { sys = await startRotationSystem(); });
after(async () => { if (sys) await sys.stop(); });

// ping a server as the web, knowing that server's keys of `keysDir`.
function probe(server, keysDir) {
  const bind = { registry: 'PORTICO_REGISTRY_BIND', bitbucket: 'PORTICO_BITBUCKET_BIND' }[server];
  return busProbe([sys.env[bind], server, 'web', 'ping', '800'], { ...sys.env, PORTICO_BUS_KEYS_DIR: keysDir });
}

// The README's steps for a server's key, while logins go on.
async function rotate(server) {
  const keys = sys.busKeys;
  // A client that will keep knowing only the old key.
  const oldKeys = join(keys, '..', `old-${server}-keys`);
  mkdirSync(oldKeys, { recursive: true });
  copyFileSync(join(keys, `${server}.cert`), join(oldKeys, `${server}.cert`));
  copyFileSync(join(keys, 'web.cert_secret'), join(oldKeys, 'web.cert_secret'));
  assert.equal((await probe(server, oldKeys)).code, 'OK');
  const count = (re) => (sys.allLogs().match(re) || []).length;
  const added = new RegExp(`bus server key added.*service=${server}`, 'g');
  const gone = new RegExp(`bus server key gone.*service=${server}`, 'g');
  const serving = /serving with the new bus key/g;
  const [added0, gone0, serving0] = [count(added), count(gone), count(serving)];

  // 1. The new key pair next to the old one: clients connect with both.
  makeBusKeys(keys, [`${server}.2`]);
  await waitFor(() => count(added) > added0, { timeout: 10000, what: `the clients know ${server}'s new key` });
  await sleep(1500);
  // 2. The server takes the new secret key (its PORTICO_BUS_SECRET_FILE)
  //    and switches to it on SIGHUP.
  copyFileSync(join(keys, `${server}.2.cert_secret`), join(keys, `${server}.cert_secret`));
  sys.kill(server, 'SIGHUP');
  await waitFor(() => count(serving) > serving0, { timeout: 10000, what: `${server} switched` });
  await sleep(1500);
  // 3. The old public key removed: the new one takes its name.
  renameSync(join(keys, `${server}.2.cert`), join(keys, `${server}.cert`));
  rmSync(join(keys, `${server}.2.cert_secret`));
  await waitFor(() => count(gone) > gone0, { timeout: 10000, what: `the clients dropped ${server}'s old key` });
  await sleep(1000);
  // The old key gets no answer; the new one does.
  assert.equal((await probe(server, oldKeys)).code, 'TIMEOUT');
  assert.equal((await probe(server, keys)).code, 'OK');
  rmSync(oldKeys, { recursive: true, force: true });
}

test("the registry's and the Bitbucket service's keys are rotated with logins going on, none failing", async () => {
  const admin = await setupAdmin(sys);
  const integ = await createIntegration(admin, sys.emulator);
  const load = steadyLogins(sys.webUrl, integ.id);
  await sleep(500);
  let result;
  try {
    await rotate('registry');
    await rotate('bitbucket');
  } finally {
    result = await load.stop();
  }
  const { logins, failures } = result;
  assert.ok(logins >= 10, `only ${logins} logins ran`);
  assert.deepEqual(failures, [], `${failures.length} of ${logins} logins failed during the rotations`);
});
