// Login throughput and signed-in page speed, printed, never asserted.
//
//   node tests/bench/logins.mjs     (make bench runs it)
//
// 1. Complete logins per second at 1, 16 and 64 concurrent clients: start
//    (GET /login/start/{id}), authorize at the emulator (auto-approve, one
//    of its bench users per login), callback (code exchange, identity,
//    user, tokens, session); p50 and p99 of one whole login.
// 2. Signed-in requests per second with wrk: GET / (a session lookup) and
//    GET /account (session, registry, broker, Bitbucket's repository list),
//    next to a civetweb hello-world measured in the same run.
//
// Environment: PORTICO_BENCH_SECONDS (default 5) per measurement,
// PORTICO_BENCH_BROKERS (default 2); PORTICO_WEB_THREADS reaches the web as
// usual. civetweb keeps a worker thread on each keep-alive connection, so
// with more concurrent clients than web threads, requests wait for idle
// connections to time out: the 64-client figures show it with the default.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startPortico, freePort, waitFor, ROOT } from '../system/harness.mjs';
import { Client } from '../system/client.mjs';
import { setupAdmin, createIntegration, startLogin, authorizeAuto } from '../system/login_lib.mjs';

const SECONDS = Number(process.env.PORTICO_BENCH_SECONDS || 5);
const BROKERS = Number(process.env.PORTICO_BENCH_BROKERS || 2);
const LEVELS = [1, 16, 64];
const BENCH_USERS = 200; // user0 .. user199 in the emulator

const pct = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN);
const fmt = (n, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : '-');

async function oneLogin(base, integrationId, user) {
  const c = new Client(base);
  const s = await startLogin(c, integrationId);
  const callback = await authorizeAuto(c, s.location, user);
  const r = await c.get(callback);
  if (r.status !== 303 || !c.cookie('portico_session')) throw new Error(`callback ${r.status}`);
}

async function loginLevel(sys, integrationId, concurrency) {
  const latencies = [];
  let errors = 0;
  let next = 0;
  const end = Date.now() + SECONDS * 1000;
  const t0 = Date.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (Date.now() < end) {
      const user = `user${next++ % BENCH_USERS}`;
      const s = process.hrtime.bigint();
      try {
        await oneLogin(sys.webUrl, integrationId, user);
        latencies.push(Number(process.hrtime.bigint() - s) / 1e6);
      } catch {
        errors++;
      }
    }
  }));
  const secs = (Date.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  return { concurrency, logins: latencies.length, errors, perSecond: latencies.length / secs, p50: pct(latencies, 50), p99: pct(latencies, 99) };
}

function wrk(url, { connections = 16, cookie } = {}) {
  const args = ['-t2', `-c${connections}`, `-d${SECONDS}s`, '--latency'];
  if (cookie) args.push('-H', `Cookie: ${cookie}`);
  args.push(url);
  const out = execFileSync('wrk', args, { encoding: 'utf8' });
  const num = (re) => { const m = out.match(re); return m ? m[1] : '-'; };
  const non2xx = num(/Non-2xx or 3xx responses: (\d+)/);
  return { rps: Number(num(/Requests\/sec:\s+([\d.]+)/)), p50: num(/^\s+50%\s+(\S+)/m), p99: num(/^\s+99%\s+(\S+)/m), non2xx: non2xx === '-' ? 0 : Number(non2xx) };
}

async function startHello() {
  const bin = join(ROOT, 'build', 'bench', 'hello');
  const src = join(ROOT, 'tests', 'bench', 'hello.c');
  if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(join(ROOT, 'build', 'bench'), { recursive: true });
    execFileSync('cc', ['-std=c17', '-D_GNU_SOURCE', '-O2', '-o', bin, src, '-lcivetweb', '-lpthread']);
  }
  const port = await freePort();
  const proc = spawn(bin, [`127.0.0.1:${port}`], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}/`;
  await waitFor(async () => (await fetch(url)).status === 200, { what: 'hello world' });
  return { url, stop: () => new Promise((res) => { proc.on('exit', res); proc.kill('SIGTERM'); }) };
}

const sys = await startPortico({
  name: 'bench-logins', brokers: BROKERS, autoApprove: 'user0',
  env: { PORTICO_LOG_LEVEL: 'warn' },
});
let hello;
try {
  const admin = await setupAdmin(sys);
  const integration = await createIntegration(admin, sys.emulator, { name: 'Bench Bitbucket' });
  await oneLogin(sys.webUrl, integration.id, 'user0'); // warm up

  const threads = process.env.PORTICO_WEB_THREADS || '32 (default)';
  console.log(`logins (${SECONDS} s each, ${BROKERS} broker processes of 8 workers, web threads ${threads}; start + authorize + callback + session)`);
  console.log('  clients   logins/s   p50 ms   p99 ms   logins   errors');
  for (const n of LEVELS) {
    const r = await loginLevel(sys, integration.id, n);
    console.log(`  ${String(n).padStart(7)}   ${fmt(r.perSecond).padStart(8)}   ${fmt(r.p50).padStart(6)}   ${fmt(r.p99).padStart(6)}   ${String(r.logins).padStart(6)}   ${String(r.errors).padStart(6)}`);
  }

  const c = new Client(sys.webUrl);
  const s = await startLogin(c, integration.id);
  const r = await c.get(await authorizeAuto(c, s.location, 'jdoe'));
  if (r.status !== 303) throw new Error(`bench login failed: ${r.status}`);
  const cookie = `portico_session=${c.cookie('portico_session')}`;
  hello = await startHello();
  console.log(`signed-in pages (wrk, 16 connections, ${SECONDS} s each; same run, same machine)`);
  console.log('  target                                  req/s    p50      p99      non-2xx');
  for (const [name, url, opts] of [
    ['civetweb hello world (baseline)', hello.url, {}],
    ['portico GET / signed in', `${sys.webUrl}/`, { cookie }],
    ['portico GET /account signed in', `${sys.webUrl}/account`, { cookie }],
    ['portico GET /healthz (no session)', `${sys.webUrl}/healthz`, {}],
  ]) {
    const w = wrk(url, opts);
    console.log(`  ${name.padEnd(38)} ${fmt(w.rps, 0).padStart(7)}   ${w.p50.padEnd(8)} ${w.p99.padEnd(8)} ${w.non2xx}`);
  }
} finally {
  if (hello) await hello.stop();
  await sys.stop();
}
