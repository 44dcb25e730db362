// Two of everything on loopback against one PostgreSQL: two webs (behind a
// relay, as behind a load balancer), two registries, two brokers, two
// bitbucket services. Clients are given each service's instances as an
// endpoint list. Logins work through either web; a change made through one
// web is honoured by the other within the session cache time; registries
// share the database's once-only work; /admin/status lists every instance;
// and with one instance of each service killed mid-stream, logins go on
// and no session is lost.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { startPortico, waitFor, sleep } from './harness.mjs';
import { Client, csrfFrom } from './client.mjs';
import { setupAdmin, createIntegration, startLogin, authorizeAuto, text } from './login_lib.mjs';

const SESSION_CACHE_S = 2;
let sys, admin, A;

// A browser in front of several webs: one cookie jar whatever web answers.
class Browser extends Client {
  cookieHeader() { return super.cookieHeader(this.base); }
  storeCookies(url, headers) { return super.storeCookies(this.base, headers); }
}

before(async () => {
  sys = await startPortico({
    name: 'replicas', webs: 2, registries: 2, bitbuckets: 2, brokers: 2, autoApprove: 'jdoe', readyTimeout: 60000,
    env: {
      PORTICO_LOGIN_RATE_PER_MINUTE: '100000', PORTICO_CALLBACK_RATE_PER_MINUTE: '100000',
      PORTICO_SESSION_CACHE_SECONDS: String(SESSION_CACHE_S), PORTICO_SWEEP_INTERVAL_S: '1',
    },
  });
  admin = await setupAdmin(sys);
  A = await createIntegration(admin, sys.emulator, { name: 'Bitbucket A' });
});

after(async () => {
  if (sys) await sys.stop();
});

// The whole login with every hop on web `i` (the callback URL names the
// public address, the relay: the same request goes to web i instead).
async function loginThrough(i, user = 'jdoe') {
  const c = new Browser(sys.webUrls[i], { origin: sys.webUrl });
  const start = await startLogin(c, A.id);
  const callback = await authorizeAuto(c, start.location, user);
  const r = await c.get(callback.replace(sys.webUrl, sys.webUrls[i]));
  assert.equal(r.status, 303, `callback on web ${i + 1}: ${r.status} ${text(r.text).slice(0, 300)}`);
  return c;
}

const signedIn = async (c, i) => {
  const r = await c.get(`${sys.webUrls[i]}/account`);
  return r.status === 200;
};

test('two registries started together on an empty database apply each migration once', () => {
  const applied = (svc) => (sys.log(svc).match(/applied schema migration/g) || []).length;
  const a = applied('registry'), b = applied('registry-2');
  assert.ok(a + b > 0, 'the migrations ran');
  // Under the advisory lock the second registry finds the schema current.
  assert.ok(a === 0 || b === 0, `both registries applied migrations (${a} and ${b})`);
});

test('a login through either web is a session on both', async () => {
  for (const i of [0, 1]) {
    const c = await loginThrough(i, `user${i + 10}`);
    assert.ok(await signedIn(c, 0), `a login through web ${i + 1} is signed in on web 1`);
    assert.ok(await signedIn(c, 1), `a login through web ${i + 1} is signed in on web 2`);
  }
});

test('a logout through one web is honoured by the other within the session cache time', async () => {
  const c = await loginThrough(0, 'user20');
  assert.ok(await signedIn(c, 1)); // web 2 now holds the session in its cache
  const page = await c.get(`${sys.webUrls[0]}/account`);
  const r = await c.post(`${sys.webUrls[0]}/logout`, { csrf: csrfFrom(page.text) });
  assert.ok(r.status === 303 || r.status === 302, `logout: ${r.status}`);
  assert.equal(await signedIn(c, 0), false, 'the web that logged out forgets at once');
  await sleep(SESSION_CACHE_S * 1000 + 500);
  assert.equal(await signedIn(c, 1), false, 'the other web forgets within the session cache time');
});

test('registries take turns at the sweep: one holding its lock makes the others skip', async () => {
  const skipped = async (svc) => {
    const m = (await (await fetch(`${sys.healthUrls[svc]}/metrics`)).text()).match(/^portico_registry_sweeps_skipped_total (\d+)/m);
    return m ? Number(m[1]) : 0;
  };
  const before0 = await skipped('registry'), before1 = await skipped('registry-2');
  // Hold the sweep's lock from another session, as a third registry would.
  const pg = spawn('psql', ['-h', sys.pg.dir, '-p', String(sys.pg.port), '-U', 'portico', '-d', 'portico', '-Xq'], { stdio: ['pipe', 'ignore', 'inherit'] });
  pg.stdin.write('SELECT pg_advisory_lock(7075821340022370132);\n');
  try {
    await waitFor(async () => (await skipped('registry')) > before0 && (await skipped('registry-2')) > before1, { what: 'both registries skipping the sweep', timeout: 15000 });
  } finally {
    pg.stdin.end('\\q\n');
    await new Promise((res) => pg.on('exit', res));
  }
});

test('/admin/status lists every instance of every service', async () => {
  const statusRows = async () => {
    const r = await admin.get('/admin/status');
    assert.equal(r.status, 200);
    return [...r.text.matchAll(/<tr><td>(web|registry|bitbucket|broker)<\/td><td>([^<]*)<\/td><td>([^<]*)<\/td><td>([^<]*)<\/td><td><span class="badge (\w+)">/g)]
      .map((m) => ({ service: m[1], instance: m[2], version: m[3], where: m[4], badge: m[5] }));
  };
  // Webs report themselves every few seconds: wait for the second one.
  let rows = [];
  await waitFor(async () => {
    rows = await statusRows();
    return rows.filter((x) => x.service === 'web' && x.badge === 'ok').length === 2;
  }, { what: 'both webs on the status page', timeout: 20000 }).catch(() => {});
  for (const svc of ['web', 'registry', 'bitbucket', 'broker']) {
    const mine = rows.filter((x) => x.service === svc);
    assert.equal(mine.length, 2, `${svc}: ${JSON.stringify(mine)}`);
    assert.equal(new Set(mine.map((x) => x.instance)).size, 2, `${svc} instances are told apart`);
    assert.ok(mine.every((x) => x.badge === 'ok' && x.instance), `${svc} instances are ready: ${JSON.stringify(mine)}`);
  }
  assert.ok(rows.filter((x) => x.service !== 'broker').every((x) => x.version), 'versions are shown');
});

test('one instance of each service killed mid-stream: logins resume, no session is lost', async () => {
  const sessions = [];
  const failures = [];
  const TOTAL = 40, KILL_AT = 12, TAIL = 12;
  let killed = false;
  for (let n = 0; n < TOTAL; n++) {
    if (n === KILL_AT) {
      // Without warning: the processes cannot say goodbye.
      await Promise.all(['web-2', 'registry-2', 'bitbucket-2', 'broker-2'].map((p) => sys.kill(p, 'SIGKILL')));
      killed = true;
    }
    const c = new Browser(sys.webUrl);
    try {
      const start = await startLogin(c, A.id);
      const r = await c.get(await authorizeAuto(c, start.location, `user${100 + n}`));
      if (r.status !== 303) throw new Error(`callback ${r.status}: ${text(r.text).slice(0, 200)}`);
      sessions.push(c);
    } catch (e) {
      failures.push({ n, killed, error: e.message });
    }
  }
  // Logins before the kill all worked; after it, the last ones all do.
  assert.deepEqual(failures.filter((f) => f.n < KILL_AT), []);
  assert.deepEqual(failures.filter((f) => f.n >= TOTAL - TAIL), [], JSON.stringify(failures));
  console.log(`logins: ${sessions.length} made, ${failures.length} failed at the kill`);
  // Only the logins under way at the kill may fail.
  assert.ok(failures.length <= 4, JSON.stringify(failures));
  // Every session made, before or after the kill, is still one.
  for (const c of sessions) assert.ok(await signedIn(c, 0), 'a session made during the run is still signed in');
});
