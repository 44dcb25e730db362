// Login throughput and signed-in page speed, printed, never asserted.
//
//   node tests/bench/logins.mjs     (make bench runs it)
//
// 1. Complete logins per second at 1, 16 and 64 concurrent clients: start
//    (GET /login/start/{id}), authorize at the emulator (auto-approve, one
//    of its bench users per login), callback (code exchange, identity,
//    user, tokens, session); p50 and p99 of one whole login. The clients
//    are build/bench/login_load (C, libcurl multi, one thread), so the load
//    generator costs little of the machine it measures.
// 2. The whole browser path at the same levels (login page, start,
//    authorize, callback, account page with repositories; a Node client
//    with a fresh cookie jar per login), next to the figures of 1.
// 3. Signed-in requests per second with wrk: GET / (a session lookup) and
//    GET /account (session, account record, repository list from the
//    broker and Bitbucket), next to a civetweb hello-world measured in the
//    same run, and the ratio. /account is measured with the web's caches
//    as configured (the default) and once more with both turned off.
//
// The emulator runs with --keep-alive, as Bitbucket's Tomcat keeps
// connections open; the system tests run it without.
//
// Environment: PORTICO_BENCH_SECONDS (default 5) per measurement,
// PORTICO_BENCH_BROKERS (default 2); PORTICO_WEB_THREADS,
// PORTICO_SESSION_CACHE_SECONDS, PORTICO_REPOSITORY_CACHE_SECONDS and the
// rest reach the services as usual; PORTICO_BENCH_LOG_LEVEL (default warn)
// is their log level.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startPortico, freePort, waitFor, ROOT } from '../system/harness.mjs';
import { Client } from '../system/client.mjs';
import { setupAdmin, createIntegration, startLogin, authorizeAuto } from '../system/login_lib.mjs';

const SECONDS = Number(process.env.PORTICO_BENCH_SECONDS || 5);
const BROKERS = Number(process.env.PORTICO_BENCH_BROKERS || 2);
const LEVELS = [1, 16, 64];
const BENCH_USERS = 200; // user0 .. user199 in the emulator
const BENCH_DIR = join(ROOT, 'build', 'bench');

const fmt = (n, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : '-');
// Asynchronous, so that this process keeps reading the services' logs
// meanwhile (a full pipe would stall them).
const run = async (cmd, args) => (await promisify(execFile)(cmd, args, { encoding: 'utf8' })).stdout;

// Build a helper next to the others when it is missing or older than its source.
function build(name, src, libs) {
  const bin = join(BENCH_DIR, name);
  if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(BENCH_DIR, { recursive: true });
    execFileSync('cc', ['-std=c17', '-D_GNU_SOURCE', '-O2', '-o', bin, src, ...libs]);
  }
  return bin;
}

async function loginLevel(loader, sys, integrationId, clients) {
  const out = await run(loader, [sys.webUrl, String(integrationId), String(clients), String(SECONDS), String(BENCH_USERS)]);
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`login_load said: ${out}`);
  const r = Object.fromEntries(line.slice(7).split(' ').map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)]));
  return r;
}

// CPU time (user + system, ms) of the services, and of PostgreSQL (the
// postmaster and its backends), from /proc.
const TICK_MS = 10; // USER_HZ 100
function ticksOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
  } catch { return { ppid: 0, ticks: 0 }; }
}
function cpuNow(sys) {
  let services = 0;
  for (const p of Object.values(sys.procs)) services += ticksOf(p.child.pid).ticks;
  let postgres = 0;
  try {
    const master = Number(readFileSync(join(sys.pg.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      const t = ticksOf(d);
      if (Number(d) === master || t.ppid === master) postgres += t.ticks;
    }
  } catch { /* no figure */ }
  return { services: services * TICK_MS, postgres: postgres * TICK_MS };
}

// The whole browser path, as a person's browser walks it: the login page,
// its "Log in with" link (start), Bitbucket's authorize (the emulator
// approves at once), the callback, and the page it ends on (the account
// page with the repositories). A fresh cookie jar per login.
async function browserLogin(user) {
  const c = new Client(sys.webUrl);
  const page = await c.get('/login');
  const link = page.text.match(/<a class="button" href="([^"]+)">Log in with/);
  if (page.status !== 200 || !link) throw new Error(`login page: ${page.status}`);
  const start = await c.get(link[1].replace(/&amp;/g, '&'));
  if (start.status !== 303) throw new Error(`start: ${start.status}`);
  const back = await c.get(start.location, { headers: { 'x-emulator-user': user } });
  if (back.status !== 302 && back.status !== 303) throw new Error(`authorize: ${back.status}`);
  const done = await c.get(back.location);
  if (done.status !== 303) throw new Error(`callback: ${done.status}`);
  const landing = await c.get(new URL(done.location, back.location).toString());
  if (landing.status !== 200 || !landing.text.includes('<table class="repositories">')) throw new Error(`landing: ${landing.status}`);
}

async function browserLevel(clients) {
  const lat = [];
  let errors = 0, next = 0;
  const until = Date.now() + SECONDS * 1000;
  const c0 = cpuNow(sys);
  const t0 = Date.now();
  await Promise.all(Array.from({ length: clients }, async () => {
    while (Date.now() < until) {
      const t = performance.now();
      try {
        await browserLogin(`user${next++ % BENCH_USERS}`);
        lat.push(performance.now() - t);
      } catch {
        errors++;
      }
    }
  }));
  const secs = (Date.now() - t0) / 1000;
  const c1 = cpuNow(sys);
  lat.sort((a, b) => a - b);
  const q = (f) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(f * lat.length))] : NaN);
  const n = lat.length || 1;
  return { per_second: lat.length / secs, p50_ms: q(0.5), p99_ms: q(0.99), logins: lat.length, errors,
    services_ms: (c1.services - c0.services) / n, postgres_ms: (c1.postgres - c0.postgres) / n };
}

async function wrk(url, { connections = 16, cookie } = {}) {
  const args = ['-t2', `-c${connections}`, `-d${SECONDS}s`, '--latency'];
  if (cookie) args.push('-H', `Cookie: ${cookie}`);
  args.push(url);
  const out = await run('wrk', args);
  const num = (re) => { const m = out.match(re); return m ? m[1] : '-'; };
  const non2xx = num(/Non-2xx or 3xx responses: (\d+)/);
  return { rps: Number(num(/Requests\/sec:\s+([\d.]+)/)), p50: num(/^\s+50%\s+(\S+)/m), p99: num(/^\s+99%\s+(\S+)/m), non2xx: non2xx === '-' ? 0 : Number(non2xx) };
}

async function startHello() {
  const bin = build('hello', join(ROOT, 'tests', 'bench', 'hello.c'), ['-lcivetweb', '-lpthread']);
  const port = await freePort();
  const proc = spawn(bin, [`127.0.0.1:${port}`], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}/`;
  await waitFor(async () => (await fetch(url)).status === 200, { what: 'hello world' });
  return { url, stop: () => new Promise((res) => { proc.on('exit', res); proc.kill('SIGTERM'); }) };
}

async function signIn(sys, integrationId, user) {
  // Node's fetch may reuse a keep-alive connection the web is just closing
  // (it closes idle ones after 2 s): try again on a fresh one.
  for (let attempt = 1; ; attempt++) {
    try {
      const c = new Client(sys.webUrl);
      const s = await startLogin(c, integrationId);
      const r = await c.get(await authorizeAuto(c, s.location, user));
      if (r.status !== 303 || !c.cookie('portico_session')) throw new Error(`bench login failed: ${r.status}`);
      return `portico_session=${c.cookie('portico_session')}`;
    } catch (e) {
      if (attempt === 3) throw e;
    }
  }
}

const loader = build('login_load', join(ROOT, 'tests', 'bench', 'login_load.c'), ['-lcurl']);
const sys = await startPortico({
  name: 'bench-logins', brokers: BROKERS, autoApprove: 'user0',
  emulatorArgs: ['--keep-alive', '--threads', '128'],
  // One load generator is one client: lift the per-client budgets that
  // would otherwise (rightly) stop it.
  env: {
    PORTICO_LOG_LEVEL: process.env.PORTICO_BENCH_LOG_LEVEL || 'warn',
    PORTICO_LOGIN_RATE_PER_MINUTE: '100000', PORTICO_CALLBACK_RATE_PER_MINUTE: '100000',
    PORTICO_PENDING_LOGINS_PER_BROWSER: '1000', PORTICO_PENDING_LOGINS_MAX: '10000000',
    PORTICO_MAX_CONNECTIONS_PER_CLIENT: '1024',
  },
});
let hello;
try {
  const admin = await setupAdmin(sys);
  const integration = await createIntegration(admin, sys.emulator, { name: 'Bench Bitbucket' });
  await loginLevel(loader, sys, integration.id, 4); // warm up: every bench user exists afterwards

  const threads = process.env.PORTICO_WEB_THREADS || '128 (default)';
  console.log(`logins (${SECONDS} s each, ${BROKERS} broker processes of ${process.env.PORTICO_BROKER_WORKERS || 8} workers, web threads ${threads}; start + authorize + callback + session)`);
  console.log('  clients   logins/s   p50 ms   p99 ms   logins   errors   CPU ms/login: services  postgres');
  const narrow = {};
  for (const n of LEVELS) {
    const c0 = cpuNow(sys);
    const r = await loginLevel(loader, sys, integration.id, n);
    const c1 = cpuNow(sys);
    const per = Math.max(r.logins, 1);
    narrow[n] = r;
    console.log(`  ${String(n).padStart(7)}   ${fmt(r.per_second).padStart(8)}   ${fmt(r.p50_ms).padStart(6)}   ${fmt(r.p99_ms).padStart(6)}   ${String(r.logins).padStart(6)}   ${String(r.errors).padStart(6)}   ${fmt((c1.services - c0.services) / per, 2).padStart(21)}  ${fmt((c1.postgres - c0.postgres) / per, 2).padStart(8)}`);
  }
  // The same logins the way a browser makes them (login page, start,
  // authorize, callback, the account page with its repositories), next to
  // the narrow path above measured in this run: the gap is what the two
  // extra pages cost, plus a load generator in Node instead of C.
  console.log(`whole browser path (${SECONDS} s each; login page + start + authorize + callback + account page with repositories, fresh browser each)`);
  console.log('  clients   logins/s   p50 ms   p99 ms   logins   errors   CPU ms/login: services  postgres   / narrow path logins/s');
  for (const n of LEVELS) {
    const r = await browserLevel(n);
    console.log(`  ${String(n).padStart(7)}   ${fmt(r.per_second).padStart(8)}   ${fmt(r.p50_ms).padStart(6)}   ${fmt(r.p99_ms).padStart(6)}   ${String(r.logins).padStart(6)}   ${String(r.errors).padStart(6)}   ${fmt(r.services_ms, 2).padStart(21)}  ${fmt(r.postgres_ms, 2).padStart(8)}   ${fmt(r.per_second / narrow[n].per_second, 2).padStart(8)}`);
  }

  const cookie = await signIn(sys, integration.id, 'jdoe');
  hello = await startHello();
  console.log(`signed-in pages (wrk, 16 connections, ${SECONDS} s each; same run, same machine)`);
  console.log('  target                                      req/s    p50      p99      non-2xx   / hello');
  const rows = [
    ['civetweb hello world (baseline)', hello.url, {}],
    ['portico GET / signed in', `${sys.webUrl}/`, { cookie }],
    ['portico GET /account signed in', `${sys.webUrl}/account`, { cookie }],
    ['portico GET /healthz (no session)', `${sys.webUrl}/healthz`, {}],
  ];
  let base;
  const show = (name, w) => {
    base ??= w.rps;
    console.log(`  ${name.padEnd(42)} ${fmt(w.rps, 0).padStart(7)}   ${w.p50.padEnd(8)} ${w.p99.padEnd(8)} ${String(w.non2xx).padStart(7)}   ${fmt(w.rps / base, 3)}`);
  };
  for (const [name, url, opts] of rows) show(name, await wrk(url, opts));

  // The same page with the web's caches off: every request asks the
  // registry for the session and the account, and the broker (and so
  // Bitbucket) for the repositories.
  await sys.kill('web');
  sys.start('web', { PORTICO_SESSION_CACHE_SECONDS: '0', PORTICO_REPOSITORY_CACHE_SECONDS: '0' });
  await sys.ready();
  show('portico GET /account, web caches off', await wrk(`${sys.webUrl}/account`, { cookie }));
  const cache = (v, d) => (v === undefined ? `${d} s (default)` : `${v} s`);
  console.log(`  (caches: sessions ${cache(process.env.PORTICO_SESSION_CACHE_SECONDS, 5)}, repository lists ${cache(process.env.PORTICO_REPOSITORY_CACHE_SECONDS, 30)})`);
} finally {
  if (hello) await hello.stop();
  await sys.stop();
}
