// Drives Portico on the three-node Swarm that tests/container/swarm3.sh made:
// the setup walkthrough, then logins without pause (LANES browsers at a time,
// through the load balancer) while it
//   1. kills node 3 (the container of its whole Docker engine: a machine
//      losing power), which runs a web, a registry, a broker and a bitbucket
//      instance: logins must resume within 15 s, and the users, sessions and
//      rows made before must all still be there;
//   2. drains node 2, then makes it active again: no login may fail;
//   3. rolls every Portico service (`docker service update --force`): no
//      login may fail;
//   4. rotates the registry's bus key with docker/bus-rotate.sh (three
//      deploys, each rolling the services it concerns): no login may fail,
//      a redeploy of unchanged files restarts nothing, the old key's Swarm
//      secrets are gone and a web that knows only the old registry key gets
//      no answer from any registry instance.
// Prints the figures (time to resume, failed logins, how long Swarm took to
// move the instances) and saves them in S3_ARTIFACTS/figures.json.
//
// Environment (swarm3.sh sets all of it): S3_PREFIX, S3_STACK, S3_WORK (node
// N's engine: unix://$S3_WORK/nodeN/docker.sock), S3_WEB (the load
// balancer), S3_DEMO_HOST (the demo Bitbucket's published port on node 1),
// S3_ARTIFACTS, S3_IMAGE (the web image, for bus_probe), S3_ROTATE (the
// services whose key step 4 rotates: registry), S3_ONLY=rotation (only step
// 4, when working on it).
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { Client, csrfFrom, formField } from '../system/client.mjs';

const run = promisify(execFile);
const PREFIX = process.env.S3_PREFIX || 'portico-s3';
const STACK = process.env.S3_STACK || PREFIX;
const WORK = process.env.S3_WORK;
const WEB = process.env.S3_WEB;
const DEMO_HOST = process.env.S3_DEMO_HOST;
const ARTIFACTS = process.env.S3_ARTIFACTS || '.';
const IMAGE = process.env.S3_IMAGE;
const ONLY = process.env.S3_ONLY || '';
const DEMO_INTERNAL = 'http://demo-bitbucket:7990/bitbucket';
const internalOrigin = new URL(DEMO_INTERNAL).origin;
const LANES = 3;
const RESUME_LIMIT_S = 15;
const USERS = ['jdoe', 'jane.doe@example.com', 'zoë'];
const SERVICES = ['web', 'registry', 'broker', 'bitbucket'];

// Every HTTP call is bounded in time.
const realFetch = globalThis.fetch;
globalThis.fetch = (url, opts = {}) => realFetch(url, { signal: AbortSignal.timeout(20000), ...opts });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s]`, ...a);
const secs = (ms) => Math.round(ms / 100) / 10;

const nodeName = (n) => `${PREFIX}-node${n}`;
async function docker(node, ...args) { // node 0: the host's engine
  const env = { ...process.env };
  if (node) env.DOCKER_HOST = `unix://${WORK}/node${node}/docker.sock`;
  else delete env.DOCKER_HOST;
  const { stdout } = await run('docker', args, { env, timeout: 240000, maxBuffer: 64 << 20 });
  return stdout;
}

async function waitFor(what, fn, timeoutMs, intervalMs = 500) {
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

// ---- the cluster ---------------------------------------------------------------

// Running tasks: [{ service, node }], from the manager (node 1).
async function layout() {
  const out = await docker(1, 'stack', 'ps', STACK, '-f', 'desired-state=running', '--format', '{{.Name}} {{.Node}} {{.CurrentState}}');
  return out.split('\n').filter((l) => / Running /.test(l)).map((l) => {
    const [name, node] = l.split(' ');
    return { service: name.replace(`${STACK}_`, '').replace(/\.\d+$/, ''), node };
  });
}
const where = (tasks) => Object.fromEntries(SERVICES.map((s) => [s, tasks.filter((t) => t.service === s).map((t) => t.node.replace(`${PREFIX}-`, '')).sort().join('+')]));
// Every service has as many Running tasks as it wants, and no more (a task
// with a health check is Running once healthy). Counted from the tasks, not
// from `service ls`, which lags behind a drain or an update.
async function converged() {
  const out = await docker(1, 'service', 'ls', '--filter', `label=com.docker.stack.namespace=${STACK}`, '--format', '{{.Name}} {{.Replicas}}');
  const want = Object.fromEntries(out.split('\n').filter(Boolean).map((l) => {
    const [name, reps] = l.split(' ');
    return [name.replace(`${STACK}_`, ''), Number(reps.split('/')[1])];
  }));
  const tasks = await layout();
  return Object.keys(want).length > 0 && Object.entries(want).every(([svc, n]) => tasks.filter((t) => t.service === svc).length === n);
}
// The containers of a service's running tasks, on whichever nodes run them.
async function containersOf(service) {
  const out = [];
  const nodes = new Set((await layout()).filter((t) => t.service === service).map((t) => Number(t.node.slice(-1))));
  for (const n of nodes) {
    const ids = (await docker(n, 'ps', '-q', '--filter', `label=com.docker.swarm.service.name=${STACK}_${service}`)).trim().split('\n');
    out.push(...ids.filter(Boolean).map((id) => ({ node: n, id })));
  }
  return out;
}
async function containerOf(service) {
  const [c] = await containersOf(service);
  if (!c) throw new Error(`no running ${service} container`);
  return c;
}

// ---- a browser and a login --------------------------------------------------------

// Portico's test client, with the demo Bitbucket's internal origin mapped to
// its published port on node 1.
class Browser extends Client {
  request(method, pathOrUrl, opts) {
    if (typeof pathOrUrl === 'string' && pathOrUrl.startsWith(internalOrigin)) pathOrUrl = DEMO_HOST + pathOrUrl.slice(internalOrigin.length);
    return super.request(method, pathOrUrl, opts);
  }
}
let integrationId = 0;

// One whole login, as a fresh browser: Portico -> Bitbucket authorize (the
// emulator approves at once as `user`) -> Portico callback -> /account.
async function login(user, browser = new Browser(WEB)) {
  const started = Date.now();
  const hdr = { 'x-emulator-user': encodeURIComponent(user) };
  try {
    let r = await browser.get(`/login/start/${integrationId}`);
    if (r.status !== 302 && r.status !== 303) throw new Error(`login start answered ${r.status}`);
    r = await browser.get(new URL(r.location, r.url).toString(), { headers: hdr });
    if (r.status !== 302 && r.status !== 303) throw new Error(`authorize answered ${r.status}`);
    const callback = new URL(r.location, r.url);
    if (!callback.searchParams.get('code')) throw new Error(`no code in the callback (${callback.searchParams.get('error') || '?'})`);
    r = await browser.get(callback.toString());
    if (r.status !== 302 && r.status !== 303) throw new Error(`callback answered ${r.status}: ${r.text.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 120)}`);
    r = await browser.follow(r);
    if (r.status !== 200) throw new Error(`after the callback: ${r.status}`);
    const account = await browser.get('/account');
    if (account.status !== 200) throw new Error(`/account answered ${account.status}`);
    return { ok: true, user, started, ended: Date.now(), browser };
  } catch (e) {
    return { ok: false, user, started, ended: Date.now(), error: e.message.slice(0, 160), browser };
  }
}

// Logins without pause: `lanes` browsers, each starting its next login 100 ms
// after the last one ended, until stop().
class Load {
  constructor(lanes = LANES) {
    this.results = [];
    this.running = true;
    this.lanes = Array.from({ length: lanes }, (_, k) => this.lane(k));
  }
  async lane(k) {
    for (let i = k; this.running; i += LANES) {
      const r = await login(USERS[i % USERS.length]);
      delete r.browser;
      this.results.push(r);
      await sleep(r.ok ? 100 : 250);
    }
  }
  async stop() {
    this.running = false;
    await Promise.all(this.lanes);
    return this.results;
  }
}
const errorsOf = (res) => [...new Set(res.filter((r) => !r.ok).map((r) => r.error))].slice(0, 6);
const describe = (res) => `${res.length} logins, ${res.filter((r) => !r.ok).length} failed`;

// ---- what must survive ----------------------------------------------------------------
const COUNTED = ['users', 'identities', 'integrations', 'tokens', 'sessions'];
async function dbCounts() {
  const pg = await containerOf('postgres');
  const sql = 'SELECT ' + COUNTED.map((t) => `(SELECT count(*) FROM ${t})`).join(', ');
  const out = await docker(pg.node, 'exec', pg.id, 'psql', '-d', 'portico', '-AtF', ' ', '-c', sql);
  const nums = out.trim().split(' ').map(Number);
  return Object.fromEntries(COUNTED.map((t, i) => [t, nums[i]]));
}
// Browsers logged in before a disruption: each must still be logged in after.
let keepers = [];
let admin = null;
async function sessionsKept() {
  const lost = [];
  for (const k of keepers) {
    const r = await k.browser.get('/account');
    if (r.status !== 200) lost.push(`${k.user}: /account ${r.status}`);
  }
  const a = await admin.get('/admin');
  if (a.status !== 200) lost.push(`admin: /admin ${a.status}`);
  return lost;
}
// Rows that may only grow (sessions expire and are swept; users do not).
const rowsLost = (before, after) => ['users', 'identities', 'integrations', 'tokens']
  .filter((t) => !(after[t] >= before[t])).map((t) => `${t}: ${before[t]} rows before, ${after[t]} after`);

// ---- steps ------------------------------------------------------------------------------
const results = [];
const figures = {};
async function step(name, fn) {
  const start = Date.now();
  log(`--- ${name}`);
  try {
    const detail = await fn();
    results.push({ name, ok: true, secs: secs(Date.now() - start), detail });
    log(`ok   ${name}${detail ? ': ' + detail : ''}`);
    return true;
  } catch (e) {
    results.push({ name, ok: false, secs: secs(Date.now() - start), detail: e.message });
    log(`FAIL ${name}: ${e.message}`);
    return false;
  }
}
function expect(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function main() {
  const ready = await step('the load balancer reaches a ready web', async () => {
    await waitFor('/readyz through the load balancer', async () => (await fetch(`${WEB}/readyz`)).status === 200, 120000);
    return JSON.stringify(where(await layout()));
  });
  if (!ready) return summary();

  const setUp = await step('setup walkthrough: setup token, Add Integration, Create Integration', async () => {
    // The generated token is kept in the file of the one registry instance
    // that made it (its node's volume): ask each instance.
    let token = null;
    const said = [];
    for (const reg of await containersOf('registry')) {
      try {
        const out = await docker(reg.node, 'exec', reg.id, 'portico-registry', 'setup-token');
        token = [...out.matchAll(/(?:setup_token=|Setup token: )([A-Za-z0-9_-]+)/g)].map((m) => m[1]).pop() || token;
      } catch (e) {
        said.push(`node${reg.node}: ${(e.stderr || e.message).trim().split('\n').pop()}`);
      }
    }
    expect(token, `no setup token from \`portico-registry setup-token\` in any registry (${said.join('; ')})`);
    admin = new Browser(WEB);
    let r = await admin.get('/admin');
    expect(r.status === 200, `/admin answered ${r.status}`);
    const tokenField = (r.text.match(/<input[^>]*name="(setup_token|token)"/) || [])[1];
    expect(tokenField, 'no Setup token field on /admin');
    r = await admin.post('/admin/setup-token', { [tokenField]: token, csrf: csrfFrom(r.text) });
    expect(r.status === 302 || r.status === 303, `setup token form answered ${r.status}`);
    r = await admin.get('/admin/integrations/new');
    expect(r.status === 200, `Add Integration answered ${r.status}`);
    integrationId = Number(formField(r.text, 'id'));
    expect(integrationId > 0, 'no integration id in the form');
    const csrf = csrfFrom(r.text);
    const link = await fetch(`${DEMO_HOST}/bitbucket/emulator/applinks`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Portico (swarm)', redirect_url: `${WEB}/oauth/callback/${integrationId}`, permissions: ['REPO_READ'] }),
    });
    expect(link.status === 201, `emulator applink: ${link.status}`);
    const { client_id, client_secret } = await link.json();
    r = await admin.post('/admin/integrations', {
      id: String(integrationId), platform: 'bitbucket-dc', base_url: DEMO_INTERNAL, oauth_version: '2', client_id, client_secret, csrf,
    });
    expect(r.status === 302 || r.status === 303, `Create Integration answered ${r.status}: ${r.text.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 200)}`);
    const first = await login('jdoe', admin);
    expect(first.ok, `the first login: ${first.error}`);
    expect((await admin.get('/admin')).status === 200, 'the first user is not admin');
    return `integration ${integrationId}; jdoe is admin`;
  });
  if (!setUp) return summary();

  await step('logins through the load balancer, over both webs (round robin, no sticky sessions)', async () => {
    const res = [];
    for (let i = 0; i < 12; i += 3) res.push(...await Promise.all(USERS.map((u) => login(u))));
    keepers = res.filter((r) => r.ok).slice(0, 3);
    const failed = res.filter((r) => !r.ok);
    figures.warmup = { logins: res.length, failed: failed.length, errors: errorsOf(res) };
    expect(!failed.length, `${failed.length} of ${res.length} logins failed: ${errorsOf(res).join('; ')}`);
    return describe(res);
  });

  await step('/admin/status lists the instances', async () => {
    const r = await admin.get('/admin/status');
    expect(r.status === 200, `/admin/status answered ${r.status}`);
    const text = r.text.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ');
    writeFileSync(`${ARTIFACTS}/admin-status.txt`, text);
    const tasks = await layout();
    // Each running task's container host name (the task's id prefix) should be
    // on the page: every instance of every service, not one of each.
    const missing = [];
    for (const t of tasks.filter((x) => SERVICES.includes(x.service))) {
      const n = Number(t.node.slice(-1));
      const ids = (await docker(n, 'ps', '--filter', `label=com.docker.swarm.service.name=${STACK}_${t.service}`, '--format', '{{.ID}}')).trim().split('\n').filter(Boolean);
      for (const id of ids) if (!text.includes(id.slice(0, 12)) && !missing.includes(`${t.service}@${id.slice(0, 12)}`)) missing.push(`${t.service}@${id.slice(0, 12)}`);
    }
    figures.admin_status_missing = missing;
    expect(!missing.length, `not listed on /admin/status: ${missing.join(', ')}`);
    return `all ${tasks.filter((x) => SERVICES.includes(x.service)).length} instances of web, registry, broker and bitbucket listed`;
  });

  if (ONLY !== 'rotation') await disruptions();
  await rotation();
  summary();
}

async function disruptions() {
  // 1. A whole node lost.
  await step(`kill node 3 (web, registry, broker, bitbucket) during logins: logins resume within ${RESUME_LIMIT_S} s, nothing lost`, async () => {
    const before = where(await layout());
    for (const s of SERVICES) expect(before[s].includes('node3'), `node 3 runs no ${s} (${JSON.stringify(before)})`);
    expect(keepers.length === 3, 'no logged-in browsers from before');
    const rowsBefore = await dbCounts();
    const load = new Load();
    await sleep(5000);
    const killAt = Date.now();
    await docker(0, 'kill', nodeName(3));
    log(`killed ${nodeName(3)}`);
    // Logins go on while Swarm notices and starts the lost instances on node 1.
    let rescheduledAt = 0;
    const end = killAt + 60000;
    while (Date.now() < end) {
      // Moved: nothing left on node 3 (Swarm takes a while to call it down;
      // until then its tasks still count as running) and every service n/n.
      const moved = async () => !(await layout()).some((t) => t.node === nodeName(3)) && (await converged());
      if (!rescheduledAt && (await moved().catch(() => false))) rescheduledAt = Date.now();
      await sleep(1000);
    }
    const res = await load.stop();
    const early = res.filter((r) => r.started < killAt);
    const late = res.filter((r) => r.started >= killAt);
    const failed = late.filter((r) => !r.ok);
    const lastFail = failed.length ? Math.max(...failed.map((r) => r.started)) : killAt;
    const resumed = late.filter((r) => r.ok && r.started >= lastFail).map((r) => r.started);
    const resumeAt = failed.length ? Math.min(...resumed, Infinity) : killAt;
    const after = where(await layout());
    const rowsAfter = await dbCounts();
    const lost = await sessionsKept();
    figures.node_loss = {
      logins_before_kill: early.length, failed_before_kill: early.filter((r) => !r.ok).length,
      logins_after_kill: late.length, failed_after_kill: failed.length,
      in_flight_at_kill_failed: early.filter((r) => !r.ok && r.ended >= killAt).length,
      resume_s: Number.isFinite(resumeAt) ? secs(resumeAt - killAt) : null,
      successes_after_resume: resumed.length,
      failed_started_s_after_kill: failed.slice(0, 12).map((r) => secs(r.started - killAt)).concat(failed.length > 12 ? [`... ${failed.length - 12} more`] : []),
      errors: errorsOf(res),
      swarm_rescheduled_s: rescheduledAt ? secs(rescheduledAt - killAt) : null,
      layout_before: before, layout_after: after, rows_before: rowsBefore, rows_after: rowsAfter, sessions_lost: lost,
    };
    log('node loss:', JSON.stringify(figures.node_loss));
    // Every assertion, so that one failing does not hide the others.
    const problems = [];
    const want = (cond, msg) => cond || problems.push(msg);
    want(!early.filter((r) => !r.ok && r.ended < killAt).length, 'logins failed before the kill');
    want(Number.isFinite(resumeAt) && resumed.length >= 10, `logins did not resume (${failed.length} failed after the kill, ${resumed.length} succeeded after the last failure)`);
    want(!Number.isFinite(resumeAt) || resumeAt - killAt <= RESUME_LIMIT_S * 1000, `logins resumed only ${secs(resumeAt - killAt)} s after the kill (${failed.length} failed)`);
    problems.push(...rowsLost(rowsBefore, rowsAfter));
    want(!lost.length, `sessions lost: ${lost.join(', ')}`);
    expect(!problems.length, `${problems.join('; ')}; errors: ${errorsOf(res).join('; ')}`);
    return `${describe(late)} after the kill; resumed after ${secs(resumeAt - killAt)} s; Swarm had every service n/n again after ${figures.node_loss.swarm_rescheduled_s} s; sessions and rows kept`;
  });

  await step('node 3 back: it rejoins the swarm', async () => {
    const t = Date.now();
    await docker(0, 'start', nodeName(3));
    await waitFor('node 3 Ready', async () => /Ready/.test(await docker(1, 'node', 'inspect', '-f', '{{.Status.State}}', nodeName(3)).then((s) => s.replace(/^ready/, 'Ready'))), 120000, 1000);
    await waitFor('every service n/n', converged, 120000, 1000);
    figures.node_back_s = secs(Date.now() - t);
    return `${figures.node_back_s} s; layout ${JSON.stringify(where(await layout()))}`;
  });

  // 2. Drain a node and bring it back.
  await step('drain node 2 during logins, then make it active again: no login fails', async () => {
    const rowsBefore = await dbCounts();
    const load = new Load();
    await sleep(3000);
    const t = Date.now();
    await docker(1, 'node', 'update', '--availability', 'drain', nodeName(2));
    await waitFor('node 2 empty and every service n/n', async () => {
      const tasks = await layout();
      return !tasks.some((x) => x.node === nodeName(2)) && (await converged());
    }, 180000, 1000);
    const drained = Date.now() - t;
    const layoutDrained = where(await layout());
    await sleep(3000);
    await docker(1, 'node', 'update', '--availability', 'active', nodeName(2));
    await sleep(5000);
    const res = await load.stop();
    const lost = await sessionsKept();
    const failed = res.filter((r) => !r.ok);
    figures.drain = { logins: res.length, failed: failed.length, drained_s: secs(drained), layout_drained: layoutDrained, errors: errorsOf(res), sessions_lost: lost };
    log('drain:', JSON.stringify(figures.drain));
    const problems = [];
    if (failed.length) problems.push(`${failed.length} of ${res.length} logins failed: ${errorsOf(res).join('; ')}`);
    problems.push(...rowsLost(rowsBefore, await dbCounts()));
    if (lost.length) problems.push(`sessions lost: ${lost.join(', ')}`);
    expect(!problems.length, problems.join('; '));
    return `${describe(res)}; node 2 emptied in ${secs(drained)} s`;
  });

  // 3. Rolling update of each service.
  await step('rolling update of web, registry, broker and bitbucket (docker service update --force) during logins: no login fails', async () => {
    const rowsBefore = await dbCounts();
    const load = new Load();
    await sleep(3000);
    const took = {};
    for (const s of SERVICES) {
      const t = Date.now();
      await docker(1, 'service', 'update', '--force', '--quiet', `${STACK}_${s}`);
      await waitFor(`${s} updated and every service n/n`, converged, 180000, 1000);
      took[s] = secs(Date.now() - t);
      log(`rolled ${s} in ${took[s]} s`);
      await sleep(2000);
    }
    const res = await load.stop();
    const lost = await sessionsKept();
    const failed = res.filter((r) => !r.ok);
    figures.rolling_update = { logins: res.length, failed: failed.length, seconds: took, errors: errorsOf(res), sessions_lost: lost };
    log('rolling update:', JSON.stringify(figures.rolling_update));
    const problems = [];
    if (failed.length) problems.push(`${failed.length} of ${res.length} logins failed: ${errorsOf(res).join('; ')}`);
    problems.push(...rowsLost(rowsBefore, await dbCounts()));
    if (lost.length) problems.push(`sessions lost: ${lost.join(', ')}`);
    expect(!problems.length, problems.join('; '));
    return `${describe(res)}; seconds per service ${JSON.stringify(took)}`;
  });
}

// ---- 4. rotating a bus key -------------------------------------------------------------

const BUS = `${WORK}/shared/secrets/bus`;
// The stack's tasks, by id: a deploy that restarts nothing keeps them all.
const taskIds = async () => (await docker(1, 'stack', 'ps', '-q', '-f', 'desired-state=running', STACK)).split('\n').filter(Boolean).sort().join(' ');
const stackSecrets = async () => (await docker(1, 'secret', 'ls', '--format', '{{.Name}}')).split('\n').filter((n) => n.startsWith(`${STACK}_bus_`));
const sha12 = async (file) => (await run('sha256sum', [file])).stdout.slice(0, 12);

// bus_probe "ping" to every registry instance as the web, with the keys in
// keysDir, from a container in a web task's network namespace (the bus
// network is not attachable). The codes, e.g. ['OK', 'OK'].
async function probeRegistries(keysDir) {
  const web = await containerOf('web');
  const out = await docker(web.node, 'run', '--rm', '--network', `container:${web.id}`, '-v', `${WORK}/shared:${WORK}/shared:ro`,
    '-e', `PORTICO_BUS_KEYS_DIR=${keysDir}`, '--entrypoint', 'sh', IMAGE, '-c',
    `for ip in $(getent ahostsv4 tasks.registry | awk '{ print $1 }' | sort -u); do ${WORK}/shared/probe/bus_probe tcp://$ip:5551 registry web ping 3000; done`);
  return out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l).code);
}
// A keys folder for the probe, with the registry's public key and the web's
// key pair as they are now (before a rotation: the old ones).
function probeKeys(name) {
  const dir = `${WORK}/shared/probe/${name}`;
  mkdirSync(dir, { recursive: true });
  for (const f of ['web.cert_secret', 'registry.cert']) {
    copyFileSync(`${BUS}/${f}`, `${dir}/${f}`);
    // The image's user (uid 10001) reads them; a secret key only as its
    // owner, or the probe refuses it.
    if (f.endsWith('_secret')) {
      chownSync(`${dir}/${f}`, 10001, 10001);
      chmodSync(`${dir}/${f}`, 0o600);
    } else {
      chmodSync(`${dir}/${f}`, 0o644);
    }
  }
  chmodSync(dir, 0o755);
  return dir;
}

// S3_ROTATE: the services whose key is rotated, one after the other
// (registry; web, broker and bitbucket work the same way).
async function rotation() {
  for (const svc of (process.env.S3_ROTATE || 'registry').split(/[ ,]+/).filter(Boolean)) await rotate(svc);
}
async function rotate(svc) {
  // The old key: the registry's (a web that knows only its old public key)
  // or the web's (a peer speaking with the web's old secret key) must get
  // no answer from any registry instance afterwards.
  const probed = svc === 'registry' || svc === 'web';
  await step(`rotate the ${svc}'s bus key (docker/bus-rotate.sh: three deploys) during logins: no login fails${probed ? ', the old key gets no answer' : ''}`, async () => {
    const oldKeys = probeKeys(`old-${svc}`);
    const oldPub = await sha12(`${BUS}/${svc}.cert`);
    const oldSecret = await sha12(`${BUS}/${svc}.cert_secret`);
    const before = await probeRegistries(oldKeys);
    expect(before.length === 2 && before.every((c) => c === 'OK'), `before the rotation, ping as the web: ${before.join(', ')}`);
    const rowsBefore = await dbCounts();
    const load = new Load();
    await sleep(3000);
    const steps = {};
    for (const n of [1, 2, 3]) {
      const t = Date.now();
      const from = load.results.length;
      try {
        const { stdout } = await run('sh', [`${WORK}/stack.sh`, 'bus-rotate.sh', svc, STACK],
          { env: { ...process.env, PORTICO_ROTATE_STEPS: String(n) }, timeout: 900000, maxBuffer: 16 << 20 });
        writeFileSync(`${ARTIFACTS}/rotate-${svc}-step${n}.log`, stdout);
      } catch (e) {
        writeFileSync(`${ARTIFACTS}/rotate-${svc}-step${n}.log`, `${e.stdout || ''}${e.stderr || ''}`);
        await load.stop();
        throw new Error(`bus-rotate.sh ${svc} step ${n}: ${(e.stderr || e.message).trim().split('\n').slice(-3).join(' / ')}`);
      }
      const res = load.results.slice(from);
      steps[n] = { seconds: secs(Date.now() - t), logins: res.length, failed: res.filter((r) => !r.ok).length };
      log(`${svc} key rotation step ${n}: ${JSON.stringify(steps[n])}`);
    }
    // Deploying the same files again changes nothing: no task replaced.
    const tasksBefore = await taskIds();
    await run('sh', [`${WORK}/stack.sh`, 'stack-deploy.sh', STACK], { env: { ...process.env, PORTICO_STACK_WAIT: '1' }, timeout: 300000 });
    await sleep(5000);
    const unchanged = (await taskIds()) === tasksBefore;
    const res = await load.stop();
    const after = { old: await probeRegistries(oldKeys), new: await probeRegistries(probeKeys(`new-${svc}`)) };
    const secretsLeft = (await stackSecrets()).filter((n) => n.endsWith(oldPub) || n.endsWith(oldSecret));
    const lost = await sessionsKept();
    const failed = res.filter((r) => !r.ok);
    const fig = figures[`${svc}_key_rotation`] = {
      logins: res.length, failed: failed.length, steps, redeploy_restarted_nothing: unchanged,
      ping_old_key: after.old, ping_new_key: after.new, old_secrets_left: secretsLeft, errors: errorsOf(res), sessions_lost: lost,
    };
    log(`${svc} key rotation:`, JSON.stringify(fig));
    const problems = [];
    if (failed.length) problems.push(`${failed.length} of ${res.length} logins failed: ${errorsOf(res).join('; ')}`);
    if (!unchanged) problems.push('deploying unchanged files replaced tasks');
    if (probed && (after.old.length !== 2 || after.old.some((c) => c !== 'TIMEOUT'))) problems.push(`the old ${svc} key was answered: ${after.old.join(', ')}`);
    if (after.new.length !== 2 || after.new.some((c) => c !== 'OK')) problems.push(`the new keys: ${after.new.join(', ')}`);
    if (secretsLeft.length) problems.push(`Swarm secrets of the old key left: ${secretsLeft.join(', ')}`);
    problems.push(...rowsLost(rowsBefore, await dbCounts()));
    if (lost.length) problems.push(`sessions lost: ${lost.join(', ')}`);
    expect(!problems.length, problems.join('; '));
    return `${describe(res)}; seconds per step ${Object.values(steps).map((x) => x.seconds).join(', ')}${probed ? '; old key: no answer from either registry' : ''}`;
  });
}

function summary() {
  const pass = results.filter((r) => r.ok).length;
  const fail = results.length - pass;
  writeFileSync(`${ARTIFACTS}/figures.json`, JSON.stringify({ figures, steps: results }, null, 2));
  console.log('\n==== three-node swarm figures');
  console.log(JSON.stringify(figures, null, 2));
  console.log('\n==== three-node swarm steps');
  for (const r of results) console.log(`${r.ok ? 'ok  ' : 'FAIL'} ${String(r.secs).padStart(6)}s  ${r.name}${r.ok ? '' : ': ' + r.detail}`);
  console.log(`drive: ${pass} passed, ${fail} failed`);
  process.exitCode = fail ? 1 : 0;
}

main().catch((e) => {
  console.error('drive: crashed:', e);
  process.exitCode = 2;
});
