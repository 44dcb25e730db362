// The system-test harness: starts PostgreSQL, the Bitbucket emulator and the
// four Portico services as real processes on loopback, on free ports, and
// stops them again. Every test file gets its own private system.
import '../compat.mjs';
import { spawn, spawnSync, execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, mkdirSync, writeFileSync, createWriteStream, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import assert from 'node:assert/strict';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = process.env.PORTICO_TEST_BIN || join(ROOT, 'build', 'bin');
// The services run built with AddressSanitizer (tests/run-sanitize.sh sets
// ASAN_OPTIONS): their memory use says nothing of Portico's.
export const SANITIZED = Boolean(process.env.ASAN_OPTIONS);
const OWN_BIN = join(ROOT, 'build', 'bin');
export const ARTIFACTS = join(ROOT, 'tests', 'artifacts');

// Ports for the services. A port is free when asked for but taken only
// when its service binds it, so two things must not take it meanwhile:
//  - this test process handing the same port out again (a broker once got
//    the registry's health port and never started): handedOut;
//  - the kernel giving it to an outgoing connection as its source port,
//    which it does from the ephemeral range (ip_local_port_range) to any
//    process on the machine (a web once found its listening port taken and
//    never started). So the ports come from just below that range, where
//    the kernel hands out nothing on its own.
const handedOut = new Set();

function portRange() {
  let lo = 32768;
  try {
    lo = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || lo;
  } catch {
    // not Linux: the default range's start
  }
  return lo > 11024 ? [lo - 10000, lo - 1] : [1024, Math.max(1025, lo - 1)];
}
const PORT_RANGE = portRange();

// Whether a port can be bound on loopback now.
export function portBindable(port) {
  return new Promise((res) => {
    const s = net.createServer();
    s.unref();
    s.once('error', () => res(false));
    s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
  });
}

export async function freePort() {
  const [lo, hi] = PORT_RANGE;
  for (let i = 0; i < 500; i++) {
    const port = lo + Math.floor(Math.random() * (hi - lo + 1));
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if (await portBindable(port)) return port;
  }
  throw new Error(`freePort: no free port in ${lo}-${hi}`);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(fn, { timeout = 20000, interval = 100, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      if (e.fatal) throw e;
      last = e;
    }
    await sleep(interval);
  }
  throw new Error(`timed out waiting for ${what}${last ? ': ' + last.message : ''}`);
}

async function httpStatus(url, timeoutMs = 2000) {
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), timeoutMs);
  try {
    const r = await fetch(url, { signal: ac.signal, redirect: 'manual' });
    await r.arrayBuffer();
    return r.status;
  } finally {
    clearTimeout(t);
  }
}

class Proc {
  constructor(name, cmd, args, env, logDir) {
    this.name = name;
    this.cmd = cmd;
    this.args = args;
    this.env = env;
    this.logPath = join(logDir, `${name}.log`);
    this.output = '';
    this.start();
  }
  start() {
    this.exit = null;
    const log = createWriteStream(this.logPath, { flags: 'a' });
    this.child = spawn(this.cmd, this.args, { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const take = (d) => {
      const s = d.toString();
      log.write(s);
      if (this.output.length < 4e6) this.output += s;
    };
    this.child.stdout.on('data', take);
    this.child.stderr.on('data', take);
    this.killed = false;
    this.exited = new Promise((res) => this.child.on('exit', (code, signal) => {
      log.end();
      // A crash nobody asked for is said where the test runner's output
      // (and tests/run-all.sh's summary of failures) shows it.
      this.exit = { code, signal };
      if ((signal || code) && !this.killed) console.error(`[harness] ${this.name} ${this.state}; its log: ${this.logPath}`);
      res({ code, signal });
    }));
  }
  kill(signal = 'SIGTERM') {
    this.killed = true;
    if (this.child.exitCode === null && this.child.signalCode === null) {
      // unshare --fork keeps SIGTERM from itself: the signal goes to the
      // service it started, and unshare ends with it.
      let target = null;
      if (this.cmd === 'unshare') {
        try {
          target = Number(readFileSync(`/proc/${this.child.pid}/task/${this.child.pid}/children`, 'utf8').trim().split(/\s+/)[0]) || null;
        } catch { /* gone meanwhile */ }
      }
      if (target) {
        try { process.kill(target, signal); } catch { /* gone meanwhile */ }
      } else {
        this.child.kill(signal);
      }
    }
    return this.exited;
  }
  // "running", "died of SIGSEGV", "exited with code 2"
  get state() {
    if (!this.exit) return 'running';
    return this.exit.signal ? `died of ${this.exit.signal}` : `exited with code ${this.exit.code}`;
  }
  get alive() {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
}

export const SERVICES = ['web', 'registry', 'broker', 'bitbucket'];

// Make a CURVE key pair (NAME.cert, NAME.cert_secret) for each service in
// dir, or for the names given ("web.2" is a second key of the web).
export function makeBusKeys(dir, names = SERVICES) {
  for (const n of names) {
    const svc = n.split('.')[0];
    execFileSync(join(OWN_BIN, `portico-${svc}`), ['bus-keygen', n], { env: { ...process.env, PORTICO_BUS_KEYS_DIR: dir }, stdio: ['ignore', 'ignore', 'inherit'] });
  }
}

// Start a private PostgreSQL cluster; returns { conninfo, dir, port, stop }.
// Not with execFileSync: a test process blocked for the seconds this takes
// runs none of fetch's timers, and then sends its next request on a pooled
// connection the server has closed meanwhile ("other side closed").
const pgsh = (...args) => promisify(execFile)('bash', [join(ROOT, 'scripts', 'pg.sh'), ...args], { encoding: 'utf8' });
export async function startPostgres() {
  const dir = mkdtempSync(join(tmpdir(), 'portico-pg-'));
  const port = String(await freePort());
  const { stdout } = await pgsh('start', dir, port);
  return {
    dir, port, conninfo: stdout.trim().split('\n').pop(),
    async stop() {
      await pgsh('stop', dir).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// Start the emulator; returns { url, proc, admin(path, body) }.
export async function startEmulator({ version = '8.9.0', autoApprove, accessTtl, logDir, context = '/bitbucket', extraArgs = [] } = {}) {
  const port = await freePort();
  const args = ['--listen', `127.0.0.1:${port}`, '--context', context, '--version', version, '--quiet'];
  if (autoApprove) args.push('--auto-approve', autoApprove);
  if (accessTtl) args.push('--access-ttl', String(accessTtl));
  args.push(...extraArgs);
  const proc = new Proc(`emulator-${port}`, join(BIN, 'bitbucket-emulator'), args, process.env, logDir);
  const url = `http://127.0.0.1:${port}${context}`;
  await waitFor(async () => (await httpStatus(`${url}/rest/api/1.0/application-properties`)) === 200, { what: 'the emulator' });
  const admin = async (path, body, method = 'POST') => {
    const r = await fetch(`${url}/emulator/${path}`, {
      method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    let json; try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: r.status, json, text };
  };
  return { url, port, proc, admin, stop: () => proc.kill() };
}

// A TCP relay on a free loopback port to the given local ports in turn,
// skipping one that refuses: what a load balancer in front of several webs
// does. Returns { url, port, close }.
export async function startEdge(ports) {
  let next = 0;
  const sockets = new Set();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    client.pause();
    const attempt = (left) => {
      if (left === 0 || client.destroyed) return client.destroy();
      const up = net.connect(ports[next++ % ports.length], '127.0.0.1');
      sockets.add(up);
      let connected = false;
      up.on('close', () => sockets.delete(up));
      up.on('connect', () => {
        connected = true;
        client.pipe(up);
        up.pipe(client);
        client.resume();
      });
      up.on('error', () => (connected ? client.destroy() : attempt(left - 1)));
      client.on('close', () => up.destroy());
      up.on('end', () => client.end());
    };
    attempt(ports.length);
  });
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  const port = server.address().port;
  return {
    url: `http://127.0.0.1:${port}`, port,
    close: () => { for (const s of sockets) s.destroy(); server.close(); },
  };
}

// Start the whole system. Options:
//   brokers: number of broker processes (1)
//   webs, registries, bitbuckets: instances of each (1); the first is named
//     after its service ("web"), the others "web-2" and so on; with several
//     webs, webUrl is a relay in front of them all (webUrls: each one)
//   emulatorVersion, autoApprove, accessTtl: for the demo Bitbucket
//   emulatorArgs: more command-line arguments for it (the benchmark's --keep-alive)
//   env: extra environment for every service
//   httpHost: the address the webs listen on ("127.0.0.1"; "[::]" takes
//     IPv6 clients too, while webUrl stays on 127.0.0.1)
//   readyTimeout: how long to wait for each web to be ready (20000 ms)
//   brokerPidNamespace: start each broker as process 1 of its own PID
//     namespace (needs root: canUnsharePid())
// A test file that must run inside a network namespace of its own (unshare
// -n, as root) runs itself again there, with PORTICO_TEST_NETNS=1, after
// the shell commands of setup (loopback up at least). Returns why it cannot
// (a string: the caller skips with it) or spawnSync's result of that run.
export const IN_NETNS = process.env.PORTICO_TEST_NETNS === '1';
export function runInNetns(fileUrl, setup, timeout = 150000) {
  const probe = spawnSync('unshare', ['-n', 'sh', '-c', setup], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    return `no network namespace here (unshare -n, ip): ${(probe.stderr || String(probe.error)).trim().split('\n')[0]}`;
  }
  // A run of its own, not a child of this one's test runner.
  const env = { ...process.env, PORTICO_TEST_NETNS: '1' };
  delete env.NODE_TEST_CONTEXT;
  return spawnSync('unshare', ['-n', 'sh', '-c', `${setup} && exec node --test --test-reporter=tap "$0"`, fileURLToPath(fileUrl)], {
    encoding: 'utf8', env, timeout,
  });
}
// The test that does so: skipped with the reason, or passing when every
// test of the run inside passed.
export function netnsTest(name, fileUrl, setup) {
  test(name, (t) => {
    const r = runInNetns(fileUrl, setup);
    if (typeof r === 'string') {
      t.skip(r);
      return;
    }
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`.slice(-4000));
    assert.match(r.stdout, /# pass [1-9]/);
    assert.match(r.stdout, /# fail 0/);
  });
}

// Whether this user may start a process in a PID namespace of its own.
export function canUnsharePid() {
  return spawnSync('unshare', ['--pid', '--fork', 'true']).status === 0;
}

export async function startPortico(opts = {}) {
  const name = opts.name || `sys-${Date.now()}-${randomBytes(2).toString('hex')}`;
  const logDir = join(ARTIFACTS, 'logs', name);
  mkdirSync(logDir, { recursive: true });
  const pg = opts.postgres || (await startPostgres());
  const emulator = opts.noEmulator ? null : await startEmulator({ version: opts.emulatorVersion, autoApprove: opts.autoApprove, accessTtl: opts.accessTtl, logDir, extraArgs: opts.emulatorArgs || [] });
  const dir = mkdtempSync(join(tmpdir(), 'portico-sys-'));
  const keyFile = join(dir, 'secret.key');
  writeFileSync(keyFile, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
  // The bus's CURVE key pairs, one per service (each binary makes its own).
  const busKeys = join(dir, 'bus-keys');
  makeBusKeys(busKeys);
  const [webPort, regPort, bbPort, brokerPort, regHealth, bbHealth, opsPort] = await Promise.all(Array.from({ length: 7 }, freePort));
  // Further instances of each service ("web-2", "registry-2", ...) get
  // ports of their own; clients are given every instance's endpoint as a
  // comma-separated list, as a DNS name standing for all of them would be.
  const extra = async (n, count) => Promise.all(Array.from({ length: Math.max(0, n - 1) }, () => Promise.all(Array.from({ length: count }, freePort))));
  const webs = [[webPort, opsPort, brokerPort], ...(await extra(opts.webs ?? 1, 3))];
  const registries = [[regPort, regHealth], ...(await extra(opts.registries ?? 1, 2))];
  const bitbuckets = [[bbPort, bbHealth], ...(await extra(opts.bitbuckets ?? 1, 2))];
  const list = (ports) => ports.map((p) => `tcp://127.0.0.1:${p}`).join(',');
  const setupToken = opts.setupToken || randomBytes(24).toString('base64url');
  const webUrls = webs.map(([p]) => `http://127.0.0.1:${p}`);
  // Several webs stand behind one address, as behind an operator's load
  // balancer: a TCP relay in this process.
  const edge = webs.length > 1 ? await startEdge(webs.map(([p]) => p)) : null;
  const webUrl = edge ? edge.url : webUrls[0];
  // /metrics and the detailed /readyz: the web's operations listener.
  const opsUrl = `http://127.0.0.1:${opsPort}`;
  const base = {
    ...process.env,
    PORTICO_LOG_LEVEL: process.env.PORTICO_LOG_LEVEL || 'info',
    PORTICO_PUBLIC_URL: opts.publicUrl || webUrl,
    PORTICO_HTTP_ADDR: `${opts.httpHost || '127.0.0.1'}:${webPort}`,
    PORTICO_OPS_ADDR: `127.0.0.1:${opsPort}`,
    PORTICO_DATABASE_URL: pg.conninfo,
    PORTICO_SECRET_KEY_FILE: keyFile,
    PORTICO_BUS_KEYS_DIR: busKeys,
    PORTICO_SETUP_TOKEN: setupToken,
    PORTICO_REGISTRY_BIND: `tcp://127.0.0.1:${regPort}`,
    PORTICO_REGISTRY_ENDPOINT: list(registries.map(([p]) => p)),
    PORTICO_BITBUCKET_BIND: `tcp://127.0.0.1:${bbPort}`,
    PORTICO_BITBUCKET_ENDPOINT: list(bitbuckets.map(([p]) => p)),
    PORTICO_BROKER_BIND: `tcp://127.0.0.1:${brokerPort}`,
    PORTICO_BROKER_ENDPOINT: list(webs.map(([, , p]) => p)),
    // The emulators listen on loopback, which an integration may reach only
    // as an exception the operator names.
    PORTICO_BITBUCKET_ALLOW: '127.0.0.1',
    ...(opts.env || {}),
  };
  const procs = {};
  const sys = {
    name, logDir, webUrl, webUrls, opsUrl, regHealthUrl: `http://127.0.0.1:${regHealth}`, edge, setupToken, keyFile, busKeys, pg, emulator,
    emulatorUrl: emulator ? emulator.url : null,
    env: base, procs,
    start(svc, extraEnv = {}) {
      const env = { ...base, ...extraEnv };
      const bin = join(BIN, `portico-${svc.replace(/-\d+$/, '')}`);
      // brokerPidNamespace: each broker is process 1 of a PID namespace of
      // its own, as in a container, on this host's name (host networking).
      procs[svc] = opts.brokerPidNamespace && svc.startsWith('broker')
        ? new Proc(svc, 'unshare', ['--pid', '--fork', '--kill-child=SIGTERM', bin], env, logDir)
        : new Proc(svc, bin, [], env, logDir);
      return procs[svc];
    },
    async startBroker(extraEnv = {}) {
      const n = Object.keys(procs).filter((k) => k.startsWith('broker')).length;
      const health = await freePort();
      return sys.start(`broker-${n + 1}`, { PORTICO_HEALTH_ADDR: `127.0.0.1:${health}`, ...extraEnv });
    },
    kill(svc, signal = 'SIGTERM') { return procs[svc].kill(signal); },
    // Start a stopped service again with the same environment.
    async restart(svc) {
      const p = procs[svc];
      if (p.alive) await p.kill('SIGTERM');
      p.start();
      return p;
    },
    // Waits for every web's /readyz; a service running when the wait
    // began that exits meanwhile ends it at once, named, with the end of
    // its log.
    async ready(timeout = 20000) {
      const running = Object.values(procs).filter((p) => !p.exit);
      const gone = () => running.find((p) => p.exit && !p.killed);
      for (const u of webUrls) {
        await waitFor(async () => {
          const p = gone();
          if (p) {
            const tail = p.output.trim().split('\n').slice(-3).join('\n');
            throw Object.assign(new Error(`${p.name} ${p.state} before the system was ready:\n${tail}`), { fatal: true });
          }
          return (await httpStatus(`${u}/readyz`)) === 200;
        }, { timeout, what: `web /readyz at ${u}` });
      }
      return true;
    },
    readyz: () => httpStatus(`${webUrl}/readyz`),
    log(svc) { return procs[svc] ? procs[svc].output : ''; },
    allLogs() { return Object.values(procs).map((p) => p.output).join('\n'); },
    async stop() {
      await Promise.all(Object.values(procs).map((p) => p.kill('SIGTERM')));
      if (emulator) await emulator.stop();
      if (edge) edge.close();
      if (!opts.postgres) await pg.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const nth = (svc, i) => (i === 0 ? svc : `${svc}-${i + 1}`);
  sys.healthUrls = {};
  registries.forEach(([bind, health], i) => {
    sys.healthUrls[nth('registry', i)] = `http://127.0.0.1:${health}`;
    sys.start(nth('registry', i), { PORTICO_REGISTRY_BIND: `tcp://127.0.0.1:${bind}`, PORTICO_HEALTH_ADDR: `127.0.0.1:${health}` });
  });
  bitbuckets.forEach(([bind, health], i) => {
    sys.healthUrls[nth('bitbucket', i)] = `http://127.0.0.1:${health}`;
    sys.start(nth('bitbucket', i), { PORTICO_BITBUCKET_BIND: `tcp://127.0.0.1:${bind}`, PORTICO_HEALTH_ADDR: `127.0.0.1:${health}` });
  });
  webs.forEach(([http, ops, bind], i) => sys.start(nth('web', i), {
    PORTICO_HTTP_ADDR: `${opts.httpHost || '127.0.0.1'}:${http}`, PORTICO_OPS_ADDR: `127.0.0.1:${ops}`, PORTICO_BROKER_BIND: `tcp://127.0.0.1:${bind}`,
  }));
  for (let i = 0; i < (opts.brokers ?? 1); i++) await sys.startBroker(opts.brokerEnv || {});
  if (opts.waitReady !== false) {
    try {
      await sys.ready(opts.readyTimeout || 60000);
    } catch (e) {
      // First each service in a line (CI's summary shows a failure's
      // first lines only), then the end of each log.
      const lines = Object.entries(procs).map(([k, p]) => `${k}: ${p.state}; last: ${p.output.trim().split('\n').pop().slice(0, 160)}`);
      const tail = lines.join('\n') + '\n' + Object.entries(procs).map(([k, p]) => `--- ${k} ---\n${p.output.slice(-2000)}`).join('\n');
      await sys.stop();
      throw new Error(`${e.message}\n${tail}`);
    }
  }
  return sys;
}
