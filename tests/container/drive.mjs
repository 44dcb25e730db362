// Drives Portico running in containers (compose.yaml, profile demo), from the
// host, like a browser would: the setup walkthrough, logins, scaling the
// broker, killing a broker during a burst of logins, rotating the registry's
// bus key during logins (README: Bus keys, compose), restarting the registry
// and PostgreSQL. Called by tests/container/run.sh, which starts and removes
// the containers; this script only changes what the brief of each step says
// (scale, kill, restart) and prints a summary with the figures.
//
// The demo Bitbucket is http://demo-bitbucket:7990/bitbucket inside the
// networks (the Base URL Portico stores, used by the bitbucket container) and
// published on the host's loopback. The browser-side hops to it (the
// authorize redirect) are sent to the published port instead: the same
// server, the same paths, only the host part of the URL differs.
//
// Environment (run.sh sets all of it):
//   CTEST_WEB            http://127.0.0.1:18080   Portico as users reach it (= PORTICO_PUBLIC_URL)
//   CTEST_DEMO_INTERNAL  http://demo-bitbucket:7990/bitbucket
//   CTEST_DEMO_HOST      http://127.0.0.1:17990   where that host:port is published
//   CTEST_PROJECT        the compose project name (container labels)
//   CTEST_COMPOSE        JSON array: the compose command with its global options
//   CTEST_PROBE_DIR      a folder with bus_probe, writable by the images' user
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Client, csrfFrom, formField } from '../system/client.mjs';

const run = promisify(execFile);
const WEB = process.env.CTEST_WEB || 'http://127.0.0.1:18080';
// The web's operations listener (PORTICO_OPS_ADDR: detailed /readyz, /metrics)
// is never published: it is read from inside the web container (ops-get.sh).
// CTEST_OPS_CONTAINER is a JSON command that prints that container's id.
const OPS_CONTAINER = process.env.CTEST_OPS_CONTAINER ? JSON.parse(process.env.CTEST_OPS_CONTAINER) : null;
async function opsGet(path) {
  expect(OPS_CONTAINER, 'CTEST_OPS_CONTAINER is not set');
  const id = (await run(OPS_CONTAINER[0], OPS_CONTAINER.slice(1), { timeout: 20000 })).stdout.trim().split('\n')[0];
  const { stdout } = await run('bash', [new URL('./ops-get.sh', import.meta.url).pathname, id, path], { timeout: 20000 });
  const nl = stdout.indexOf('\n');
  return { status: Number(stdout.slice(0, nl)), text: stdout.slice(nl + 1) };
}
const DEMO_INTERNAL = (process.env.CTEST_DEMO_INTERNAL || 'http://demo-bitbucket:7990/bitbucket').replace(/\/$/, '');
const DEMO_HOST = process.env.CTEST_DEMO_HOST || 'http://127.0.0.1:17990';
const PROJECT = process.env.CTEST_PROJECT || 'portico-ctest';
const COMPOSE = JSON.parse(process.env.CTEST_COMPOSE || '["docker-compose"]');
// swarm: only ready, the setup walkthrough and logins (run.sh's swarm step);
// the registry's log then comes from CTEST_REGISTRY_LOGS (a JSON command).
const MODE = process.env.CTEST_MODE || 'compose';
const REGISTRY_LOGS = process.env.CTEST_REGISTRY_LOGS ? JSON.parse(process.env.CTEST_REGISTRY_LOGS) : null;
const internalOrigin = new URL(DEMO_INTERNAL).origin;

// Every HTTP call is bounded in time.
const realFetch = globalThis.fetch;
globalThis.fetch = (url, opts = {}) => realFetch(url, { signal: AbortSignal.timeout(25000), ...opts });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const stamp = () => ((Date.now() - t0) / 1000).toFixed(1).padStart(6);
const log = (...a) => console.log(`[${stamp()}s]`, ...a);

// A browser: Portico's test client, with the demo Bitbucket's internal
// origin mapped to its published port.
class Browser extends Client {
  request(method, pathOrUrl, opts) {
    if (typeof pathOrUrl === 'string' && pathOrUrl.startsWith(internalOrigin)) pathOrUrl = DEMO_HOST + pathOrUrl.slice(internalOrigin.length);
    return super.request(method, pathOrUrl, opts);
  }
}

async function docker(...args) {
  const { stdout } = await run('docker', args, { timeout: 120000, maxBuffer: 64 << 20 });
  return stdout;
}
async function composeOut(...args) {
  const { stdout } = await run(COMPOSE[0], [...COMPOSE.slice(1), ...args], { timeout: 300000, maxBuffer: 64 << 20 });
  return stdout;
}
async function compose(...args) {
  const { stdout, stderr } = await run(COMPOSE[0], [...COMPOSE.slice(1), ...args], { timeout: 300000, maxBuffer: 64 << 20 });
  return stdout + stderr;
}
function runWithInput(cmd, args, input) {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: 120000, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve({ stdout, stderr }));
    child.stdin.end(input);
  });
}
async function containers(service) {
  const out = await docker('ps', '-q', '--filter', `label=com.docker.compose.project=${PROJECT}`, '--filter', `label=com.docker.compose.service=${service}`);
  return out.split('\n').filter(Boolean);
}
async function hostnameOf(id) {
  return (await docker('inspect', '-f', '{{.Config.Hostname}}', id)).trim();
}

async function waitFor(what, fn, timeoutMs = 60000, intervalMs = 250) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}${last ? ': ' + last.message : ''}`);
}

async function readyz() {
  return opsGet('/readyz');
}
const workersIn = (text) => Number((text.match(/\((\d+) workers connected\)/) || [])[1] || 0);

// portico_broker_requests_total{instance="..."} from the web's /metrics.
async function brokerCounts() {
  const { text } = await opsGet('/metrics');
  const out = {};
  for (const m of text.matchAll(/^portico_broker_requests_total\{instance="([^"]+)"\} (\d+(?:\.\d+)?)/gm)) out[m[1]] = Number(m[2]);
  return out;
}
const delta = (after, before) => Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] || 0)]).filter(([, v]) => v > 0));

// Broker instances the web sees, from the admins' status page.
async function statusInstances(admin) {
  const r = await admin.get('/admin/status');
  if (r.status !== 200) throw new Error(`/admin/status answered ${r.status}`);
  const sect = r.text.split('Broker instances')[1] || '';
  return [...sect.matchAll(/<tr><td>([^<]+)<\/td><td>(\d+)<\/td><td>(\d+)<\/td><td>(\d+)<\/td><\/tr>/g)].map((m) => ({
    instance: m[1], workers: Number(m[2]), busy: Number(m[3]), handled: Number(m[4]),
  }));
}

// ---- the steps ---------------------------------------------------------------

const results = [];
const figures = {};
async function step(name, fn) {
  const start = Date.now();
  log(`--- ${name}`);
  try {
    const detail = await fn();
    const secs = (Date.now() - start) / 1000;
    results.push({ name, ok: true, secs, detail });
    log(`ok   ${name} (${secs.toFixed(1)}s)${detail ? ': ' + detail : ''}`);
    return true;
  } catch (e) {
    const secs = (Date.now() - start) / 1000;
    results.push({ name, ok: false, secs, detail: e.message });
    log(`FAIL ${name} (${secs.toFixed(1)}s): ${e.message}`);
    return false;
  }
}
function expect(cond, msg) {
  if (!cond) throw new Error(msg);
}

let integrationId = 0;
let admin = null; // the browser that did the setup, then logged in as the first user (admin)
const USERS = ['jdoe', 'jane.doe@example.com', 'zoë'];

// One whole login, as a fresh browser: Portico -> Bitbucket authorize (the
// emulator approves at once as `user`) -> Portico callback -> /account.
async function login(user = 'jdoe', browser = new Browser(WEB)) {
  const started = Date.now();
  const hdr = { 'x-emulator-user': encodeURIComponent(user) };
  try {
    let r = await browser.get(`/login/start/${integrationId}`);
    if (r.status !== 302 && r.status !== 303) throw new Error(`login start answered ${r.status}`);
    const authorize = new URL(r.location, r.url);
    if (authorize.origin !== internalOrigin) throw new Error(`login start went to ${authorize.origin}, not the demo Bitbucket`);
    r = await browser.get(authorize.toString(), { headers: hdr });
    if (r.status !== 302 && r.status !== 303) throw new Error(`authorize answered ${r.status}`);
    const callback = new URL(r.location, r.url);
    if (!callback.toString().startsWith(`${WEB}/oauth/callback/`)) throw new Error(`authorize sent us to ${callback.origin}${callback.pathname}`);
    if (!callback.searchParams.get('code')) throw new Error(`no code in the callback (${callback.searchParams.get('error') || '?'})`);
    r = await browser.get(callback.toString());
    if (r.status !== 302 && r.status !== 303) throw new Error(`callback answered ${r.status}: ${r.text.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 160)}`);
    r = await browser.follow(r);
    if (r.status !== 200) throw new Error(`after the callback: ${r.status}`);
    const account = await browser.get('/account');
    if (account.status !== 200) throw new Error(`/account answered ${account.status}`);
    return { ok: true, started, ended: Date.now(), browser };
  } catch (e) {
    return { ok: false, started, ended: Date.now(), error: e.message, browser };
  }
}

// n logins, `concurrency` at a time; `during(doneSoFar)` is called after each.
async function burst(n, concurrency, during) {
  const out = [];
  let next = 0;
  async function lane() {
    while (next < n) {
      const i = next++;
      out[i] = await login(USERS[i % USERS.length]);
      if (during) await during(out.filter(Boolean).length);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane));
  return out;
}

async function scaleBrokers(n) {
  await compose('up', '-d', '--no-build', '--no-recreate', '--scale', `broker=${n}`);
  const ids = await waitFor(`${n} broker containers`, async () => {
    const c = await containers('broker');
    return c.length === n ? c : null;
  });
  const names = await Promise.all(ids.map(hostnameOf));
  // The web's view: exactly these instances, all with their workers.
  await waitFor(`the web to see ${n} broker instance(s)`, async () => {
    const inst = await statusInstances(admin);
    const seen = new Set(inst.map((i) => i.instance.replace(/-\d+$/, '')));
    return inst.length === n && names.every((h) => seen.has(h)) && inst.every((i) => i.workers > 0);
  }, 60000, 500);
  return { ids, names };
}

// What must survive: rows in the database (read with psql inside the
// postgres container, as its local superuser) and what the admin sees.
const COUNTED = ['users', 'identities', 'integrations', 'tokens', 'sessions'];
async function dbCounts() {
  const [pg] = await containers('postgres');
  const sql = 'SELECT ' + COUNTED.map((t) => `(SELECT count(*) FROM ${t})`).join(', ');
  const out = await docker('exec', pg, 'psql', '-d', 'portico', '-AtF', ' ', '-c', sql);
  const nums = out.trim().split(' ').map(Number);
  return Object.fromEntries(COUNTED.map((t, i) => [t, nums[i]]));
}

async function snapshotData() {
  const adminPage = await admin.get('/admin');
  const users = await admin.get('/admin/users');
  return {
    adminStatus: adminPage.status,
    hasIntegration: adminPage.text.includes(`/admin/integrations/${integrationId}`),
    usersStatus: users.status,
    listedUsers: (users.text.match(/data-user-id=/g) || []).length,
    db: await dbCounts(),
  };
}

function expectKept(before, after) {
  expect(after.adminStatus === 200, `the admin's session did not survive (GET /admin: ${after.adminStatus})`);
  expect(after.hasIntegration, 'the integration is not listed any more');
  expect(after.listedUsers >= before.listedUsers, `/admin/users listed ${before.listedUsers} users, now ${after.listedUsers}`);
  for (const t of ['users', 'identities', 'integrations', 'tokens'])
    expect(after.db[t] >= before.db[t], `${t}: ${before.db[t]} rows before, ${after.db[t]} after`);
}

async function recoverAfterRestart(service) {
  const before = await snapshotData();
  const [id] = await containers(service);
  expect(id, `no ${service} container`);
  const t = Date.now();
  await docker('restart', '-t', '10', id);
  const restarted = (Date.now() - t) / 1000;
  let attempts = 0;
  const errors = [];
  await waitFor(`a login to work after restarting ${service}`, async () => {
    attempts++;
    const r = await login('jdoe');
    if (!r.ok) errors.push(`${((r.started - t) / 1000).toFixed(1)}s +${r.ended - r.started}ms: ${r.error.slice(0, 90)}`);
    return r.ok;
  }, 90000, 500);
  const recovered = (Date.now() - t) / 1000;
  const after = await snapshotData();
  expectKept(before, after);
  const ok = (await burst(6, 3)).filter((r) => r.ok).length;
  expect(ok === 6, `${6 - ok} of 6 logins failed after the restart`);
  figures[`${service}_restart`] = { restart_s: restarted, login_again_after_s: recovered, login_attempts: attempts, failed_attempts: errors };
  return `docker restart ${restarted.toFixed(1)}s, logins work again ${recovered.toFixed(1)}s after it began (${attempts} tries); admin session, integration, ${after.listedUsers} users listed and rows ${JSON.stringify(after.db)} kept; 6/6 logins after`;
}

// ---- rotating the registry's bus key (README: Bus keys, compose) ----------------

const IMAGE_PREFIX = process.env.PORTICO_IMAGE_PREFIX || 'portico/';
const PROBE_DIR = process.env.CTEST_PROBE_DIR; // bus_probe, and room for the old key
const BUS_VOLUMES = ['web', 'registry', 'broker', 'bitbucket'].flatMap((s) => ['-v', `${PROJECT}_bus-${s}:/bus/${s}`]);
// A shell command in a one-off container that mounts every bus-* volume
// (the services mount theirs read-only), as the image's user.
async function inBusVolumes(script) {
  return docker('run', '--rm', '--network', 'none', ...BUS_VOLUMES, '-v', `${PROBE_DIR}:/probe`,
    '--entrypoint', 'sh', `${IMAGE_PREFIX}registry:latest`, '-e', '-c', script);
}
// Every web and broker container has logged `line` about the registry's
// key since `since` (seconds since the epoch).
async function clientsLogged(line, since) {
  for (const id of [...await containers('web'), ...await containers('broker')]) {
    const { stdout, stderr } = await run('docker', ['logs', '--since', String(since), id], { timeout: 30000, maxBuffer: 64 << 20 });
    if (!(stdout + stderr).split('\n').some((l) => l.includes(line) && l.includes('service=registry'))) return false;
  }
  return true;
}
// bus_probe ping to the registry as the web, with the registry public key
// in the probe folder's KEYS/ (and the web's key pair from bus-web).
async function probeRegistry(keys) {
  const out = await docker('run', '--rm', '--network', `${PROJECT}_bus`, '--user', '0', '-v', `${PROJECT}_bus-web:/web:ro`, '-v', `${PROBE_DIR}:/probe`,
    '--entrypoint', 'sh', `${IMAGE_PREFIX}web:latest`, '-e', '-c',
    `cp /web/web.cert_secret /probe/${keys}/ && PORTICO_BUS_KEYS_DIR=/probe/${keys} /probe/bus_probe tcp://registry:5551 registry web ping 3000; rm -f /probe/${keys}/web.cert_secret`);
  return JSON.parse(out.trim().split('\n').pop()).code;
}

async function rotateRegistryKey() {
  expect(PROBE_DIR, 'CTEST_PROBE_DIR is not set');
  await inBusVolumes('mkdir -p /probe/old /probe/new && cp /bus/web/registry.cert /probe/old/');
  expect(await probeRegistry('old') === 'OK', 'the registry does not answer the web before the rotation');
  const rowsBefore = await dbCounts();
  const res = [];
  let running = true;
  const lanes = [0, 1, 2].map(async (k) => {
    for (let i = k; running; i += 3) {
      const r = await login(USERS[i % USERS.length]);
      delete r.browser;
      res.push(r);
      await sleep(100);
    }
  });
  const took = {};
  try {
    await sleep(2000);
    // 1. A new key pair; its public key next to the old one wherever
    //    registry.cert is: the clients connect with both.
    let t = Date.now();
    let since = Math.floor(t / 1000) - 1;
    await inBusVolumes(`cd /bus/registry && PORTICO_BUS_KEYS_DIR=/bus/registry /usr/local/lib/portico/portico-registry bus-keygen registry.2 >/dev/null
      for v in web broker bitbucket; do cp registry.2.cert /bus/$v/.registry.2.cert && mv /bus/$v/.registry.2.cert /bus/$v/registry.2.cert; done`);
    await waitFor('every web and broker to connect with the new registry key', () => clientsLogged('bus server key added', since), 30000, 500);
    took.step1_s = (Date.now() - t) / 1000;
    // 2. The registry takes the new secret key on SIGHUP.
    t = Date.now();
    since = Math.floor(t / 1000) - 1;
    await inBusVolumes('cd /bus/registry && cp registry.2.cert_secret .new && mv .new registry.cert_secret');
    await compose('kill', '-s', 'HUP', 'registry');
    await waitFor('the registry to serve with the new key', async () => {
      const [id] = await containers('registry');
      const { stdout, stderr } = await run('docker', ['logs', '--since', String(since), id], { timeout: 30000, maxBuffer: 64 << 20 });
      return (stdout + stderr).includes('serving with the new bus key');
    }, 30000, 250);
    took.step2_s = (Date.now() - t) / 1000;
    await sleep(2000);
    // 3. The old public key goes.
    t = Date.now();
    since = Math.floor(t / 1000) - 1;
    await inBusVolumes(`for v in web broker bitbucket registry; do mv /bus/$v/registry.2.cert /bus/$v/registry.cert; done
      rm /bus/registry/registry.2.cert_secret; cp /bus/web/registry.cert /probe/new/`);
    await waitFor('every web and broker to drop the old registry key', () => clientsLogged('bus server key gone', since), 30000, 500);
    took.step3_s = (Date.now() - t) / 1000;
    await sleep(2000);
  } finally {
    running = false;
    await Promise.all(lanes);
  }
  const failed = res.filter((r) => !r.ok);
  const old = await probeRegistry('old');
  const now = await probeRegistry('new');
  figures.registry_key_rotation = { logins: res.length, failed: failed.length, ...took, ping_old_key: old, ping_new_key: now,
    errors: [...new Set(failed.map((r) => r.error.slice(0, 120)))].slice(0, 5) };
  expect(!failed.length, `${failed.length} of ${res.length} logins failed: ${figures.registry_key_rotation.errors.join('; ')}`);
  expect(old === 'TIMEOUT', `the old registry key got ${old}`);
  expect(now === 'OK', `the new registry key got ${now}`);
  const rowsAfter = await dbCounts();
  for (const t of ['users', 'identities', 'integrations', 'tokens'])
    expect(rowsAfter[t] >= rowsBefore[t], `${t}: ${rowsBefore[t]} rows before, ${rowsAfter[t]} after`);
  return `${res.length} logins, none failed; steps took ${took.step1_s}, ${took.step2_s}, ${took.step3_s} s; old key: no answer, new key: OK`;
}

// ---- the scenario --------------------------------------------------------------

async function main() {
  await step('ready: web /readyz answers 200 with brokers connected', async () => {
    const r = await waitFor('web /readyz', async () => {
      const x = await readyz();
      return x.status === 200 ? x : null;
    }, 90000, 500);
    return r.text.trim().split('\n').join('; ');
  });

  if (MODE !== 'swarm') await step('isolation: published ports, internal networks, who can connect to whom', async () => {
    const svcs = ['web', 'registry', 'broker', 'bitbucket', 'postgres', 'demo-bitbucket'];
    const ids = {};
    const nets = {};
    for (const s of svcs) {
      ids[s] = (await containers(s))[0];
      expect(ids[s], `no ${s} container`);
      nets[s] = JSON.parse(await docker('inspect', '-f', '{{json .NetworkSettings.Networks}}', ids[s]));
    }
    const published = [];
    for (const s of svcs) {
      const ports = JSON.parse(await docker('inspect', '-f', '{{json .NetworkSettings.Ports}}', ids[s])) || {};
      if (Object.values(ports).some((b) => b && b.length)) published.push(s);
    }
    expect(published.sort().join(',') === 'demo-bitbucket,web', `services publishing ports: ${published.join(',')}`);
    const internal = {};
    for (const n of ['bus', 'db', 'edge', 'egress']) internal[n] = (await docker('network', 'inspect', '-f', '{{.Internal}}', `${PROJECT}_${n}`)).trim() === 'true';
    expect(internal.bus && internal.db && !internal.egress, `internal networks: ${JSON.stringify(internal)}`);
    const edgeNat = (await docker('network', 'inspect', '-f', '{{index .Options "com.docker.network.bridge.enable_ip_masquerade"}}', `${PROJECT}_edge`)).trim();
    expect(edgeNat === 'false', `the edge network NATs outbound traffic (${edgeNat})`);
    // TCP connects between our own containers, by address (every address the
    // target has, so no network is left out), 3 s each.
    const connects = async (from, to, port) => {
      const addrs = Object.values(nets[to]).map((n) => n.IPAddress).filter(Boolean);
      for (const a of addrs) {
        try {
          await docker('exec', ids[from], 'timeout', '3', 'bash', '-c', `exec 3<>/dev/tcp/${a}/${port}`);
          return true;
        } catch {}
      }
      return false;
    };
    const want = [
      ['registry', 'postgres', 5432, true], ['web', 'postgres', 5432, false], ['broker', 'postgres', 5432, false], ['bitbucket', 'postgres', 5432, false],
      ['bitbucket', 'demo-bitbucket', 7990, true], ['web', 'demo-bitbucket', 7990, false], ['broker', 'demo-bitbucket', 7990, false],
      ['registry', 'demo-bitbucket', 7990, false], ['postgres', 'demo-bitbucket', 7990, false],
      ['broker', 'web', 5553, true], ['broker', 'web', 9090, true], ['broker', 'registry', 5551, true], ['web', 'bitbucket', 5552, true],
    ];
    const got = await Promise.all(want.map(([f, t, p]) => connects(f, t, p)));
    const wrong = want.filter((w, i) => got[i] !== w[3]).map(([f, t, p, ok]) => `${f} ${ok ? 'cannot' : 'can'} connect to ${t}:${p}`);
    // The web's operations port (PORTICO_OPS_ADDR: web.bus:9090) listens on
    // its "bus" address alone: a reverse proxy on "edge" cannot read /metrics.
    for (const [net, v] of Object.entries(nets.web)) {
      let open = false;
      try {
        await docker('exec', ids.web, 'timeout', '3', 'bash', '-c', `exec 3<>/dev/tcp/${v.IPAddress}/9090`);
        open = true;
      } catch {}
      if (open !== net.endsWith('_bus')) wrong.push(`the web's operations port is ${open ? '' : 'not '}open on ${net}`);
    }
    expect(!wrong.length, wrong.join('; '));
    return `ports published only by web (+ the demo); bus and db internal; edge without outbound NAT; ${want.length} connect checks as designed (postgres only from registry, the demo Bitbucket only from bitbucket); the web's operations port on bus alone`;
  });

  await step('setup walkthrough: token from `portico-registry setup-token`, Add Integration, Create Integration', async () => {
    // The token is never logged: the registry's own command shows it.
    const logs = REGISTRY_LOGS
      ? await run(REGISTRY_LOGS[0], REGISTRY_LOGS.slice(1), { timeout: 60000, maxBuffer: 64 << 20 }).then((o) => o.stdout + o.stderr)
      : await compose('exec', '-T', 'registry', 'portico-registry', 'setup-token');
    const token = [...logs.matchAll(/(?:setup_token=|Setup token: )([A-Za-z0-9_-]+)/g)].map((m) => m[1]).pop();
    expect(token, 'no setup token from `portico-registry setup-token` in the registry container');
    admin = new Browser(WEB);
    let r = await admin.get('/admin');
    expect(r.status === 200, `/admin answered ${r.status}`);
    const tokenField = (r.text.match(/<input[^>]*name="(setup_token|token)"/) || [])[1];
    expect(tokenField && /Setup token/i.test(r.text), 'no Setup token field on /admin');
    r = await admin.post('/admin/setup-token', { [tokenField]: token, csrf: csrfFrom(r.text) });
    expect(r.status === 302 || r.status === 303, `setup token form answered ${r.status}`);
    r = await admin.follow(r);
    expect(r.status === 200 && /Add Integration/.test(r.text), `admin page after the token: ${r.status}`);
    r = await admin.get('/admin/integrations/new');
    expect(r.status === 200, `Add Integration answered ${r.status}`);
    integrationId = Number(formField(r.text, 'id'));
    expect(integrationId > 0, 'no integration id in the form');
    const callbackUrl = `${WEB}/oauth/callback/${integrationId}`;
    expect(r.text.includes(callbackUrl), `the form does not show the callback URL ${callbackUrl}`);
    const csrf = csrfFrom(r.text);
    // The Bitbucket admin's side: an incoming application link (emulator admin API).
    const link = await fetch(`${DEMO_HOST}${new URL(DEMO_INTERNAL).pathname}/emulator/applinks`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Portico (containers)', redirect_url: callbackUrl, permissions: ['REPO_READ'] }),
    });
    expect(link.status === 201, `emulator applink: ${link.status}`);
    const { client_id, client_secret } = await link.json();
    r = await admin.post('/admin/integrations', {
      id: String(integrationId), platform: 'bitbucket-dc', base_url: DEMO_INTERNAL, oauth_version: '2', client_id, client_secret, csrf,
    });
    expect(r.status === 302 || r.status === 303, `Create Integration answered ${r.status}: ${r.text.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 300)}`);
    r = await admin.follow(r);
    expect(r.status === 200 && r.text.includes(`/admin/integrations/${integrationId}`), 'the integration is not listed on /admin');
    return `integration ${integrationId} at ${DEMO_INTERNAL}`;
  });

  if (MODE !== 'swarm') await step('operator CLI: compose exec registry portico-registry integrations list', async () => {
    const out = await compose('exec', '-T', 'registry', 'portico-registry', 'integrations', 'list');
    expect(out.includes(DEMO_INTERNAL), `the integration is not in the list: ${out.slice(0, 300)}`);
    return out.trim().split('\n').length + ' lines';
  });

  await step('first login (jdoe) becomes admin', async () => {
    const r = await login('jdoe', admin);
    expect(r.ok, r.error);
    const page = await admin.get('/admin');
    expect(page.status === 200, `the first user cannot open /admin (${page.status})`);
    return `${r.ended - r.started} ms`;
  });

  if (MODE === 'swarm') {
    await step('logins spread over the broker replicas', async () => {
      const want = Number(process.env.CTEST_BROKERS || 2);
      await waitFor(`the web to see ${want} broker instances`, async () => (await statusInstances(admin)).length === want, 60000, 500);
      const before = await brokerCounts();
      const res = await burst(12, 4);
      const failed = res.filter((r) => !r.ok);
      expect(!failed.length, `${failed.length} of 12 logins failed: ${[...new Set(failed.map((r) => r.error))].join('; ')}`);
      const d = delta(await brokerCounts(), before);
      const inst = await statusInstances(admin);
      figures.swarm = { instances: inst.length, requests: d };
      expect(inst.length >= 2 && Object.keys(d).length === inst.length, `${inst.length} instances, requests ${JSON.stringify(d)}`);
      return `12 logins; requests per instance ${JSON.stringify(d)}`;
    });
    return summary();
  }

  await step('scale the broker 1 -> 3: all three take logins', async () => {
    const one = await scaleBrokers(1);
    let before = await brokerCounts();
    const single = await burst(6, 3);
    expect(single.every((r) => r.ok), `with one broker: ${single.filter((r) => !r.ok).map((r) => r.error).join('; ')}`);
    const d1 = delta(await brokerCounts(), before);
    const three = await scaleBrokers(3);
    before = await brokerCounts();
    const t = Date.now();
    const res = await burst(30, 6);
    const secs = (Date.now() - t) / 1000;
    const failed = res.filter((r) => !r.ok);
    expect(!failed.length, `${failed.length} of 30 logins failed: ${[...new Set(failed.map((r) => r.error))].join('; ')}`);
    const d3 = delta(await brokerCounts(), before);
    const byHost = Object.fromEntries(three.names.map((h) => [h, Object.entries(d3).filter(([k]) => k.replace(/-\d+$/, '') === h).reduce((a, [, v]) => a + v, 0)]));
    figures.scale = { one_broker: d1, three_brokers: byHost, logins: 30, concurrency: 6, seconds: secs, logins_per_s: 30 / secs };
    expect(Object.keys(d1).length === 1, `with one broker, requests went to ${Object.keys(d1).length} instances`);
    expect(Object.values(byHost).every((v) => v > 0), `not every broker took work: ${JSON.stringify(byHost)}`);
    return `1 broker: ${JSON.stringify(d1)}; 3 brokers, 30 logins in ${secs.toFixed(1)}s: requests per instance ${JSON.stringify(byHost)}`;
  });

  await step('docker kill one broker during a burst of logins', async () => {
    const ids = await containers('broker');
    expect(ids.length === 3, `expected 3 brokers, have ${ids.length}`);
    const victim = ids[0];
    const victimHost = await hostnameOf(victim);
    let killStart = 0;
    let killDone = 0;
    const N = 60;
    const C = 8;
    const res = await burst(N, C, async (done) => {
      if (done >= 12 && !killStart) {
        killStart = Date.now();
        await docker('kill', victim);
        killDone = Date.now();
        log(`killed broker ${victimHost} after ${done} logins (docker kill took ${killDone - killStart} ms)`);
      }
    });
    expect(killStart, 'the broker was never killed');
    // In flight: started before the kill had completed, ended after it began.
    const failed = res.filter((r) => !r.ok);
    const inFlight = res.filter((r) => r.started <= killDone && r.ended >= killStart);
    const failedLater = failed.filter((r) => r.started > killDone);
    const failedEarlier = failed.filter((r) => r.ended < killStart);
    figures.kill = {
      logins: N, concurrency: C, failed: failed.length, in_flight_at_kill: inFlight.length,
      failed_started_after_kill: failedLater.length, errors: [...new Set(failed.map((r) => r.error.slice(0, 120)))],
      failed_started_ms_after_kill_began: failed.map((r) => r.started - killStart),
      docker_kill_ms: killDone - killStart,
      slowest_login_ms: Math.max(...res.map((r) => r.ended - r.started)),
    };
    expect(!failedEarlier.length, `${failedEarlier.length} logins failed before the kill`);
    expect(failed.length <= inFlight.length, `${failed.length} failures but only ${inFlight.length} logins in flight at the kill`);
    expect(!failedLater.length, `${failedLater.length} logins that started after the kill failed (${figures.kill.errors.join('; ')})`);
    await waitFor('the web to drop the dead broker', async () => (await statusInstances(admin)).length === 2, 30000, 500);
    return `${N} logins, ${C} at a time: ${failed.length} failed, ${inFlight.length} were in flight at the kill, ${failedLater.length} of those started after it failed`;
  });

  await step('scale back to 2 brokers', async () => {
    // The killed container may be restarted by its restart policy or not:
    // either way compose brings the count to 2 again.
    await compose('up', '-d', '--no-build', '--scale', 'broker=2');
    await waitFor('two live brokers', async () => (await statusInstances(admin)).length === 2, 60000, 500);
    const ok = (await burst(4, 2)).every((r) => r.ok);
    expect(ok, 'logins failed with two brokers');
  });

  if (MODE !== 'swarm') await step('rotate the registry\'s bus key as the README says (one-off container, kill -s HUP) during logins: none fails, the old key gets no answer', rotateRegistryKey);
  await step('restart the registry: logins work again, nothing lost', () => recoverAfterRestart('registry'));
  await step('restart postgres: logins work again, nothing lost', () => recoverAfterRestart('postgres'));

  await step('backup and restore as the README says (pg_dump, stop registry, psql, start registry)', async () => {
    const before = await snapshotData();
    const dump = await composeOut('exec', '-T', 'postgres', 'pg_dump', '--clean', '--if-exists', '-d', 'portico');
    expect(/CREATE TABLE public\.users/.test(dump), 'the dump has no users table');
    await compose('stop', 'registry');
    const { stdout, stderr } = await runWithInput(COMPOSE[0], [...COMPOSE.slice(1), 'exec', '-T', 'postgres', 'psql', '-q', '-v', 'ON_ERROR_STOP=1', '-d', 'portico'], dump);
    await compose('start', 'registry');
    await waitFor('a login after the restore', async () => (await login('jdoe')).ok, 90000, 500);
    const after = await snapshotData();
    expectKept(before, after);
    figures.backup = { dump_bytes: dump.length, rows: after.db };
    return `${(dump.length / 1024).toFixed(0)} KiB dump restored; rows ${JSON.stringify(after.db)}${stderr.trim() ? '; psql said: ' + stderr.trim().slice(0, 200) : ''}`;
  });

  summary();
}

function summary() {
  const pass = results.filter((r) => r.ok).length;
  const fail = results.length - pass;
  console.log('\n==== container test figures');
  console.log(JSON.stringify(figures, null, 2));
  console.log('\n==== container test steps');
  for (const r of results) console.log(`${r.ok ? 'ok  ' : 'FAIL'} ${r.secs.toFixed(1).padStart(6)}s  ${r.name}${r.ok ? '' : ': ' + r.detail}`);
  console.log(`drive: ${pass} passed, ${fail} failed`);
  process.exitCode = fail ? 1 : 0;
}

main().catch((e) => {
  console.error('drive: crashed:', e);
  process.exitCode = 2;
});
